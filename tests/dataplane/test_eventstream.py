"""The event-stream encoder against botocore's own decoder and parser."""

from __future__ import annotations

import zlib
from typing import Any

import pytest
from botocore.eventstream import EventStreamBuffer, EventStreamMessage
from botocore.exceptions import EventStreamError
from botocore.parsers import EventStreamJSONParser

from shadowlab.awsprotocol.service_models import service_model
from shadowlab.dataplane import eventstream


def _decode(data: bytes, pieces: int = 1) -> list[EventStreamMessage]:
    buffer = EventStreamBuffer()
    found: list[EventStreamMessage] = []
    step = max(1, len(data) // pieces)
    for start in range(0, len(data), step):  # fed in pieces, as a network delivers them
        buffer.add_data(data[start : start + step])
        found.extend(buffer)
    return found


def _stream_shape() -> Any:
    operation = service_model("sagemaker-runtime").operation_model(
        "InvokeEndpointWithResponseStream"
    )
    return operation.output_shape.members["Body"]


def _parse(message: EventStreamMessage) -> dict[str, Any]:
    """What boto3's EventStream yields for `message` (or the error it raises)."""
    response = message.to_response_dict()
    parsed: dict[str, Any] = EventStreamJSONParser().parse(response, _stream_shape())
    if response["status_code"] != 200:
        raise EventStreamError(parsed, "InvokeEndpointWithResponseStream")
    return parsed


@pytest.mark.parametrize("payload", [b"", b"x", b"token ", bytes(range(256)) * 300])
def test_payload_part_round_trips_through_botocore(payload: bytes) -> None:
    data = eventstream.payload_part(payload)
    (message,) = _decode(data, pieces=7)
    assert message.headers[":event-type"] == "PayloadPart"
    assert message.headers[":message-type"] == "event"
    assert message.payload == payload
    assert _parse(message) == {"PayloadPart": {"Bytes": payload}}


def test_checksums_are_crc32_of_prelude_and_of_whole_message() -> None:
    data = eventstream.payload_part(b"abc")
    total = int.from_bytes(data[0:4], "big")
    assert total == len(data)
    assert int.from_bytes(data[8:12], "big") == zlib.crc32(data[:8])
    assert int.from_bytes(data[-4:], "big") == zlib.crc32(data[:-4])


def test_several_messages_back_to_back_decode_in_order() -> None:
    parts = [b"one ", b"two ", b"three"]
    data = b"".join(eventstream.payload_part(p) for p in parts)
    assert [m.payload for m in _decode(data, pieces=5)] == parts


def test_model_stream_error_is_raised_by_botocore_with_code_and_message() -> None:
    data = eventstream.exception_event(
        "ModelStreamError", {"Message": "the model hung up", "ErrorCode": "StreamBroken"}
    )
    (message,) = _decode(data)
    assert message.headers[":message-type"] == "exception"
    with pytest.raises(EventStreamError) as caught:
        _parse(message)
    assert caught.value.response["Error"] == {
        "Code": "ModelStreamError",
        "Message": "the model hung up",
    }


def test_internal_stream_failure_is_raised_by_botocore() -> None:
    data = eventstream.exception_event("InternalStreamFailure", {"Message": "shutting down"})
    with pytest.raises(EventStreamError) as caught:
        _parse(_decode(data)[0])
    assert caught.value.response["Error"]["Code"] == "InternalStreamFailure"
    assert caught.value.response["Error"]["Message"] == "shutting down"


def test_unicode_header_values_and_limits() -> None:
    block = eventstream.encode_headers([("name", "välue")])
    (message,) = _decode(eventstream.encode_message(block, b"p"))
    assert message.headers == {"name": "välue"}
    with pytest.raises(ValueError):
        eventstream.encode_headers([("n", "x" * 70_000)])


def test_http_chunk_frames_one_event() -> None:
    assert eventstream.http_chunk(b"abc") == b"3\r\nabc\r\n"
    assert eventstream.http_chunk(b"x" * 26) == b"1a\r\n" + b"x" * 26 + b"\r\n"
