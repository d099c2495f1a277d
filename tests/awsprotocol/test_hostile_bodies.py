"""Hostile input, in process: nesting, unpaired surrogates and huge values are refused with
AWS's codes and short messages; a 4xx is not logged, a 5xx is logged once."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

import pytest

from shadowlab.awsprotocol import coral
from shadowlab.awsprotocol.errors import error_response
from shadowlab.awsprotocol.json11 import parse_request
from shadowlab.awsprotocol.jsonbody import MAX_DEPTH, decode_object
from shadowlab.awsprotocol.service_models import sagemaker_model
from shadowlab.awsprotocol.validation import LISTED_VIOLATIONS, validate
from shadowlab.controlplane.handler import ControlPlaneHandler
from shadowlab.errors import (
    ECHO_LIMIT,
    MESSAGE_LIMIT,
    SerializationException,
    ServiceError,
    ValidationException,
    excerpt,
)
from shadowlab.services.context import RequestContext

TOO_DEEP = "Request body is not valid JSON: arrays and objects nest more than 64 levels deep"


def refusal(body: bytes) -> str:
    with pytest.raises(SerializationException) as caught:
        decode_object(body)
    return caught.value.message


# -- nesting -----------------------------------------------------------------------------------


@pytest.mark.parametrize("opener", ["[", '{"a":'])
def test_nesting_is_read_up_to_the_limit_and_refused_past_it(opener: str) -> None:
    closer = "]" if opener == "[" else "}"

    def body(levels: int) -> bytes:  # the outer object is one level
        inner = opener * (levels - 1) + ("" if opener == "[" else "1") + closer * (levels - 1)
        return ('{"x": ' + inner + "}").encode()

    assert decode_object(body(MAX_DEPTH))
    assert refusal(body(MAX_DEPTH + 1)) == TOO_DEEP
    assert refusal(body(100_000)) == TOO_DEEP  # the parser's own RecursionError, reported alike


def test_many_brackets_that_do_not_nest_are_fine() -> None:
    wide = {"Tags": [{"Key": str(n), "Value": "v"} for n in range(2000)], "s": "[" * 500}
    assert decode_object(json.dumps(wide).encode()) == wide


def test_a_deep_body_is_refused_before_validation() -> None:
    body = b'{"ModelName": ' + b"[" * 70 + b"]" * 70 + b"}"
    with pytest.raises(SerializationException, match="nest more than 64"):
        parse_request(sagemaker_model(), "SageMaker.DescribeModel", body)


# -- Unicode -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        rb'{"ModelName": "\ud800"}',
        rb'{"\ud800": 1}',
        rb'{"Tags": [{"Key": "k", "Value": ["x", {"deep": "a\ud800b"}]}]}',
        rb'{"a": "\ude00\ud83d"}',  # the halves of a pair, in the wrong order
    ],
)
def test_unpaired_surrogate_escapes_are_refused(body: bytes) -> None:
    message = refusal(body)
    assert message.startswith("Request body is not valid JSON: the escape \\ud")
    assert message.endswith("is an unpaired UTF-16 surrogate, which is not Unicode text")


def test_text_that_only_looks_like_a_surrogate_is_read() -> None:
    assert decode_object(rb'{"a": "\ud83d\ude00", "b": "\\ud800"}') == {
        "a": "\U0001f600",
        "b": "\\ud800",
    }
    assert decode_object(b"\xef\xbb\xbf{}") == {}  # a UTF-8 byte-order mark


def test_bytes_that_are_not_utf8_are_refused() -> None:
    assert refusal(b'{"a": "\xed\xa0\x80"}') == (
        "Request body is not valid JSON: 'utf-8' codec can't decode byte 0xed in position 7: "
        "invalid continuation byte"
    )


def test_a_surrogate_in_a_message_still_makes_valid_json() -> None:
    status, _, body = error_response(sagemaker_model(), ValidationException("a\ud800b"), "r")
    assert status == 400
    assert json.loads(body)["message"] == "a\ud800b"


# -- echoed values -----------------------------------------------------------------------------


def test_rendered_values_are_cut_at_the_echo_limit() -> None:
    assert coral.render(["a" * 10, {"k": 1}], limit=8) == "[aaaaaaa..."
    assert coral.render({"k": "v"}, limit=5) == "{k=v}"
    assert coral.render(list(range(100_000)), limit=10) == "[0, 1, 2, ..."
    assert excerpt("x" * (ECHO_LIMIT + 1)) == "x" * ECHO_LIMIT + "..."
    assert coral.element_path("map", "k" * 5000) == f"map.{'k' * ECHO_LIMIT}....member"


def test_a_top_level_string_is_not_echoed_whole() -> None:
    message = refusal(json.dumps("s" * 100_000).encode())
    assert message == f'Request body must be a JSON object, not the value "{"s" * 1023}...'


def test_no_message_outgrows_the_limit() -> None:
    assert len(ServiceError("m" * (MESSAGE_LIMIT * 2)).message) == MESSAGE_LIMIT + 3


def test_violations_past_the_listed_ones_are_counted() -> None:
    shape = sagemaker_model().operation_model("AddTags").input_shape
    arn = "arn:aws:sagemaker:us-east-1:123456789012:model/m"
    tags = [{"Key": "", "Value": "v"}] * 12
    with pytest.raises(ValidationException) as caught:
        validate(shape, {"ResourceArn": arn, "Tags": tags})
    message = caught.value.message
    assert message.startswith("12 validation errors detected: Value '' at 'tags.1.member.key'")
    assert message.count("failed to satisfy constraint") == LISTED_VIOLATIONS
    assert message.endswith("; and 2 more")


def test_a_type_mismatch_after_the_listed_violations_still_wins() -> None:
    shape = sagemaker_model().operation_model("AddTags").input_shape
    tags: list[Any] = [{"Key": "", "Value": "v"}] * 20 + [{"Key": 5, "Value": "v"}]
    with pytest.raises(SerializationException) as caught:
        validate(shape, {"ResourceArn": "arn:aws:sagemaker:us-east-1:1:model/m", "Tags": tags})
    assert caught.value.message == "Value '5' at 'tags.21.member.key' cannot be converted to String"


# -- logging -----------------------------------------------------------------------------------


def _handler(call: Any) -> ControlPlaneHandler:
    return ControlPlaneHandler({"ListModels": call}, account="1", default_region="us-east-1")


def test_client_errors_are_not_logged(caplog: pytest.LogCaptureFixture) -> None:
    def refuse(ctx: RequestContext, params: Mapping[str, Any]) -> dict[str, Any]:
        raise ValidationException("no")

    handler = _handler(refuse)
    with caplog.at_level(logging.DEBUG):
        assert handler.handle("SageMaker.ListModels", b"{}", None).status == 400
        deep = b"[" * 100_000 + b"]" * 100_000
        assert handler.handle("SageMaker.ListModels", deep, None).status == 400
    assert caplog.records == []


def test_a_server_failure_is_logged_once_with_its_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def fail(ctx: RequestContext, params: Mapping[str, Any]) -> dict[str, Any]:
        raise KeyError("bug")

    with caplog.at_level(logging.DEBUG):
        reply = _handler(fail).handle("SageMaker.ListModels", b"{}", None)
    assert reply.status == 500
    assert json.loads(reply.body)["__type"] == "InternalFailure"
    assert len(caplog.records) == 1 and caplog.records[0].exc_info is not None
