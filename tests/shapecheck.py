"""Test helper: does a boto3-parsed response match the operation's output shape?

Contract tests call the real server through boto3 and hand the parsed response here. boto3
already drops unknown members and converts types, so this catches what it silently tolerates:
missing required members, values outside the model's constraints (a status not in the enum, a
bad ARN), and, for dicts built by hand, members the shape does not declare.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shadowlab.awsprotocol.service_models import service_model
from shadowlab.awsprotocol.validation import validation_errors


def _without_streams(shape: Any, body: dict[str, Any]) -> dict[str, Any]:
    # A payload blob (InvokeEndpoint's Body) arrives as a StreamingBody, not a value; reading
    # it here would take it from the test, so it stands in as empty bytes: presence is checked.
    out = dict(body)
    for name, member in shape.members.items():
        if member.type_name == "blob" and hasattr(out.get(name), "read"):
            out[name] = b""
    return out


def assert_output_shape(
    service_name: str, operation_name: str, response: Mapping[str, Any]
) -> None:
    """Fail, listing every problem, unless `response` (minus ResponseMetadata) fits the output
    shape of `operation_name`: declared members only, required ones present, right types,
    constraints satisfied."""
    operation = service_model(service_name).operation_model(operation_name)
    shape = operation.output_shape
    body = {key: value for key, value in response.items() if key != "ResponseMetadata"}
    if shape is None:
        assert not body, f"{operation_name} has no output shape, but the response holds {body}"
        return
    problems = validation_errors(shape, _without_streams(shape, body), strict=True)
    assert not problems, f"{operation_name} response does not fit {shape.name}:\n" + "\n".join(
        f"  - {problem}" for problem in problems
    )
