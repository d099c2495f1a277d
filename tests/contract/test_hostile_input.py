"""Hostile request bodies, sent signed over a real socket: each is refused with AWS's 400 and
its code and message, the error body stays small, and the server log holds no traceback.

They reproduce attacks that once answered InternalFailure (500): 100 000 nested arrays
(RecursionError in the parser), an unpaired surrogate escape (a crash measuring the string in
UTF-16) and a 2 MB name (echoed into a 4 MB error body).
"""

from __future__ import annotations

import functools
import json
from typing import Any

import botocore.session
import pytest

from shadowlab.errors import ECHO_LIMIT
from tests.awsprotocol.rawclient import assert_aws_error, post
from tests.contract.helpers import ROLE
from tests.serverproc import ServerProcess

NOT_JSON = "Request body is not valid JSON"
TOO_DEEP = f"{NOT_JSON}: arrays and objects nest more than 64 levels deep"
SURROGATE = (
    f"{NOT_JSON}: the escape \\ud800 is an unpaired UTF-16 surrogate, which is not Unicode text"
)
HUGE = 2 * 1024 * 1024
SMALL_BODY = 4096  # bytes: what any refusal of one huge value must stay under


@functools.cache
def _pattern(shape: str) -> str:
    model = botocore.session.get_session().get_service_model("sagemaker")
    return str(model.shape_for(shape).metadata["pattern"])


def refused(
    server: ServerProcess, operation: str, body: bytes, *, under: int | None = None
) -> tuple[str, str]:
    """(code, message) of a request that must be refused with 400 (and an error body smaller
    than `under` bytes), leaving no traceback in the server's log."""
    answer = post(server.port, f"SageMaker.{operation}", body)
    code, message = assert_aws_error(answer)
    if under is not None:
        assert len(answer.body) < under
    assert set(answer.json()) == {"__type", "message"}
    assert "Traceback" not in server.log_path.read_text(errors="replace")
    return code, message


def nested(depth: int, opener: str = "[", closer: str = "]") -> str:
    return opener * depth + closer * depth


# -- nesting -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("operation", "body"),
    [
        ("ListModels", nested(100_000)),  # the body itself
        ("DescribeModel", '{"ModelName": ' + nested(100_000) + "}"),
        ("ListModels", '{"x": ' + '{"a": ' * 100_000 + "1" + "}" * 100_001),  # undeclared member
        # Deeper than the limit but shallow enough for the parser: the depth check catches it.
        ("DescribeModel", '{"ModelName": ' + nested(200) + "}"),
        ("AddTags", '{"ResourceArn": "a", "Tags": [' + nested(64) + "]}"),
    ],
    ids=["top-level-100k", "member-100k", "objects-100k", "member-200", "tags-66"],
)
def test_deep_nesting_is_a_serialization_error(
    server: ServerProcess, operation: str, body: str
) -> None:
    assert refused(server, operation, body.encode()) == ("SerializationException", TOO_DEEP)


def test_nesting_up_to_the_limit_is_read(server: ServerProcess) -> None:
    # 64 levels in all (the body is one): parsed, then refused for its type, not its depth.
    code, message = refused(server, "DescribeModel", ('{"ModelName": ' + nested(63) + "}").encode())
    assert code == "SerializationException"
    assert message.startswith("Value '[[[") and message.endswith(
        "' at 'modelName' cannot be converted to String"
    )


# -- unpaired surrogates -----------------------------------------------------------------------

_TAGS = '{"ResourceArn": "arn:aws:sagemaker:us-east-1:123456789012:model/m", "Tags": [%s]}'


@pytest.mark.parametrize(
    ("operation", "body"),
    [
        ("DescribeModel", '{"ModelName": "\\ud800"}'),
        ("DescribeModel", '{"ModelName": "a\\uDBFFb"}'),  # upper case, mid-string
        ("DescribeModel", '{"ModelName": "\\udc00\\ud83d"}'),  # low before high: not a pair
        ("AddTags", _TAGS % '{"Key": "\\ud800", "Value": "v"}'),
        ("AddTags", _TAGS % '{"Key": "k", "Value": "\\ud800"}'),
        (
            "CreateEndpointConfig",
            '{"EndpointConfigName": "c", "ProductionVariants": [{"VariantName": "\\ud800"}]}',
        ),
        (
            "CreateModel",
            '{"ModelName": "m", "PrimaryContainer": {"Image": "i", '
            '"Environment": {"\\ud800": "v"}}}',
        ),
        ("ListModels", '{"Undeclared\\ud800": 1}'),
    ],
    ids=["name", "name-mid", "reversed", "tag-key", "tag-value", "nested", "map-key", "unknown"],
)
def test_unpaired_surrogate_is_a_serialization_error(
    server: ServerProcess, operation: str, body: str
) -> None:
    code, message = refused(server, operation, body.encode())
    assert code == "SerializationException"
    assert message.startswith(f"{NOT_JSON}: the escape \\u")
    assert message.endswith(" is an unpaired UTF-16 surrogate, which is not Unicode text")
    if "\\ud800" in body:
        assert message == SURROGATE


def test_surrogate_bytes_are_not_utf8(server: ServerProcess) -> None:
    # The same surrogate written directly as (CESU-8) bytes rather than as an escape.
    body = b'{"ModelName": "\xed\xa0\x80"}'
    assert refused(server, "DescribeModel", body) == (
        "SerializationException",
        f"{NOT_JSON}: 'utf-8' codec can't decode byte 0xed in position 15: invalid "
        "continuation byte",
    )


def test_paired_surrogates_and_escaped_backslashes_are_text(server: ServerProcess) -> None:
    # An emoji as a surrogate pair is one character; `\\ud800` is a backslash and text.
    for name in ('"\\ud83d\\ude00"', '"\\\\ud800"'):
        code, message = refused(server, "DescribeModel", f'{{"ModelName": {name}}}'.encode())
        assert code == "ValidationException"
        assert "at 'modelName' failed to satisfy constraint" in message


# -- huge values -------------------------------------------------------------------------------


def _violation(shown: str, path: str, constraint: str) -> str:
    return f"Value '{shown}' at '{path}' failed to satisfy constraint: {constraint}"


def test_huge_name_is_not_echoed(server: ServerProcess) -> None:
    body = json.dumps({"ModelName": "a" * HUGE}).encode()
    shown = "a" * ECHO_LIMIT + "..."
    assert refused(server, "DescribeModel", body, under=SMALL_BODY) == (
        "ValidationException",
        "1 validation error detected: "
        + _violation(shown, "modelName", "Member must have length less than or equal to 63"),
    )
    # Both of a name's constraints broken, both listed with the value cut short.
    body = json.dumps({"ModelName": "-" * HUGE}).encode()
    assert refused(server, "DescribeModel", body, under=SMALL_BODY) == (
        "ValidationException",
        "2 validation errors detected: "
        + _violation(
            "-" * ECHO_LIMIT + "...",
            "modelName",
            "Member must have length less than or equal to 63",
        )
        + "; "
        + _violation(
            "-" * ECHO_LIMIT + "...",
            "modelName",
            f"Member must satisfy regular expression pattern: {_pattern('ModelName')}",
        ),
    )


def test_huge_tag_value_and_map_key_are_not_echoed(server: ServerProcess) -> None:
    tags = {"ResourceArn": "arn:aws:sagemaker:us-east-1:123456789012:model/m"}
    tags["Tags"] = [{"Key": "k", "Value": "v" * HUGE}]  # type: ignore[assignment]
    body = json.dumps(tags).encode()
    assert refused(server, "AddTags", body, under=SMALL_BODY) == (
        "ValidationException",
        "1 validation error detected: "
        + _violation(
            "v" * ECHO_LIMIT + "...",
            "tags.1.member.value",
            "Member must have length less than or equal to 256",
        ),
    )
    environment = {"K" * HUGE: "v"}
    model = {"ModelName": "m", "ExecutionRoleArn": ROLE, "PrimaryContainer": {"Image": "i"}}
    model["PrimaryContainer"]["Environment"] = environment  # type: ignore[index]
    body = json.dumps(model).encode()
    code, message = refused(server, "CreateModel", body, under=SMALL_BODY)
    assert code == "ValidationException"
    assert message.startswith(
        "1 validation error detected: "
        + _violation(
            "{" + "K" * (ECHO_LIMIT - 1) + "...",
            "primaryContainer.environment",
            "Map keys must satisfy constraint: [Member must have length less than or equal to ",
        )
    )


def test_many_violations_are_counted_not_all_listed(server: ServerProcess) -> None:
    """100 000 bad tags are 100 001 violations: ten are listed, the rest counted."""
    tags: list[dict[str, Any]] = [{"Key": "", "Value": "v"}] * 100_000
    arn = "arn:aws:sagemaker:us-east-1:123456789012:model/m"
    body = json.dumps({"ResourceArn": arn, "Tags": tags}).encode()
    code, message = refused(server, "AddTags", body, under=SMALL_BODY)
    assert code == "ValidationException"
    listed = message.removeprefix("100001 validation errors detected: ").split("; ")
    assert listed[0].startswith("Value '[{Key=, Value=v}, {Key=, Value=v}")
    assert listed[0].endswith(
        "...' at 'tags' failed to satisfy constraint: Member must have length less than or "
        "equal to 50"
    )
    assert listed[1:10] == [
        _violation(
            "",
            f"tags.{n}.member.key",
            "Member must have length greater than or equal to 1",
        )
        for n in range(1, 10)
    ]
    assert listed[10] == "and 99991 more"


def test_the_server_still_answers(server: ServerProcess) -> None:
    answer = post(server.port, "SageMaker.ListModels", b"{}")
    assert answer.status == 200
    assert "Models" in answer.json()
