"""Records against SageMaker's documented data-capture record, key by key, encoding by encoding."""

from __future__ import annotations

import base64
import calendar
import json
import random
from typing import Any

import pytest

from shadowlab.capture.config import CaptureConfig
from shadowlab.capture.record import RecordEncoder, encode_record, iso_second
from shadowlab.dataplane.observer import EVENT_ID, InvocationRecord
from tests.capture.support import BOTH_CONFIG, event, record, reference

# The first record of the JSON Lines sample in model-monitor-data-capture-endpoint.md, verbatim.
DOCUMENTED = (
    '{"captureData":{"endpointInput":{"observedContentType":"text/csv","mode":"INPUT",'
    '"data":"69,0,153.7,109,194.0,105,256.1,114,14.1,6,1,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,'
    '0,0,0,0,0,0,0,0,0,0,0,0,0,0,1,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,1,0,1,0,1,0\\n",'
    '"encoding":"CSV"},"endpointOutput":{"observedContentType":"text/csv; charset=utf-8",'
    '"mode":"OUTPUT","data":"0.0254181120544672","encoding":"CSV"}},'
    '"eventMetadata":{"eventId":"aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee",'
    '"inferenceTime":"2022-02-14T17:25:49Z"},"eventVersion":"0"}'
)
CSV_CONFIG = CaptureConfig(destination="s3://b/p", csv_content_types=("text/csv",))


def documented_record() -> InvocationRecord:
    expected = json.loads(DOCUMENTED)
    ev = event(
        body=expected["captureData"]["endpointInput"]["data"].encode(),
        content_type="text/csv",
        event_id="aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee",
        at=calendar.timegm((2022, 2, 14, 17, 25, 49, 0, 0, 0)) + 0.731,
    )
    return record(ev, body=b"0.0254181120544672", content_type="text/csv; charset=utf-8")


def decode(line: bytes) -> dict[str, Any]:
    assert line.endswith(b"\n") and line.count(b"\n") == 1  # one JSON Lines record
    result: dict[str, Any] = json.loads(line)
    return result


def test_matches_the_documented_record_byte_for_byte() -> None:
    line = encode_record(documented_record(), CSV_CONFIG)
    assert line == DOCUMENTED.encode() + b"\n"
    got, expected = decode(line), json.loads(DOCUMENTED)
    assert list(got) == list(expected) == ["captureData", "eventMetadata", "eventVersion"]
    for side in ("endpointInput", "endpointOutput"):
        assert list(got["captureData"][side]) == list(expected["captureData"][side])
        assert got["captureData"][side] == expected["captureData"][side]
    assert got["eventMetadata"] == expected["eventMetadata"]


@pytest.mark.parametrize(
    ("content_type", "body", "encoding"),
    [
        ("text/csv", b"1,2,3\n4,5,6\n", "CSV"),
        ("text/csv; charset=utf-8", "1,\u00e9\n".encode(), "CSV"),
        ("application/json", b'{"instances": [[1, 2], [3, 4]], "s": "\\"q\\""}', "JSON"),
        ("Application/JSON; charset=utf-8", '{"k": "\u2028\u00fc"}'.encode(), "JSON"),
        ("application/x-npy", bytes(range(256)), "BASE64"),
        ("image/png", b"\x89PNG\r\n\x1a\n\x00\x00", "BASE64"),
        (None, b"\x00\x01", "BASE64"),
        ("text/csv", b"\xff\xfe not utf-8", "BASE64"),  # cannot be carried as text
    ],
)
def test_encodings(content_type: str | None, body: bytes, encoding: str) -> None:
    ev = event(body=body, content_type=content_type)
    got = decode(encode_record(record(ev, body=body, content_type=content_type), BOTH_CONFIG))
    for side, mode in (("endpointInput", "INPUT"), ("endpointOutput", "OUTPUT")):
        payload = got["captureData"][side]
        assert list(payload) == ["observedContentType", "mode", "data", "encoding"]
        assert payload["mode"] == mode
        assert payload["encoding"] == encoding
        assert payload["observedContentType"] == (content_type or "application/octet-stream")
        if encoding == "BASE64":
            assert base64.b64decode(payload["data"]) == body
        else:  # the text as is
            assert payload["data"] == body.decode("utf-8")


def test_without_a_content_type_header_everything_is_base64() -> None:
    config = CaptureConfig(destination="s3://b")  # no CaptureContentTypeHeader
    ev = event(body=b"1,2", content_type="text/csv")
    got = decode(
        encode_record(record(ev, body=b'{"a": 1}', content_type="application/json"), config)
    )
    assert got["captureData"]["endpointInput"]["encoding"] == "BASE64"
    assert got["captureData"]["endpointOutput"]["encoding"] == "BASE64"
    assert base64.b64decode(got["captureData"]["endpointInput"]["data"]) == b"1,2"


def test_inference_id_only_when_given_and_capture_options() -> None:
    ev = event(inference_id="client-42")
    got = decode(encode_record(record(ev), CSV_CONFIG))
    assert list(got["eventMetadata"]) == ["eventId", "inferenceId", "inferenceTime"]
    assert got["eventMetadata"]["inferenceId"] == "client-42"
    assert "inferenceId" not in decode(encode_record(record(event()), CSV_CONFIG))["eventMetadata"]
    input_only = CaptureConfig(destination="s3://b", capture_output=False)
    assert list(decode(encode_record(record(ev), input_only))["captureData"]) == ["endpointInput"]
    output_only = CaptureConfig(destination="s3://b", capture_input=False)
    assert list(decode(encode_record(record(ev), output_only))["captureData"]) == ["endpointOutput"]


@pytest.mark.parametrize(
    ("outcome", "status", "error"),
    [("timeout", 0, "no answer in 2.0 s"), ("failed", 0, "connection refused")],
)
def test_shadow_without_an_answer_is_marked(outcome: Any, status: int, error: str) -> None:
    ev = event()
    shadow = record(ev, role="shadow", variant="candidate", outcome=outcome, error=error)
    got = decode(encode_record(shadow, CSV_CONFIG))
    assert list(got) == ["captureData", "eventMetadata", "eventVersion", "shadowlab"]
    assert list(got["captureData"]) == ["endpointInput"]  # there was no output
    assert got["shadowlab"] == {"outcome": outcome, "status": status, "error": error}
    assert got["eventMetadata"]["eventId"] == ev[EVENT_ID]


def test_non_2xx_answer_keeps_its_output_and_is_marked() -> None:
    answer = record(event(), status=500, body=b"boom", content_type="text/plain")
    got = decode(encode_record(answer, CSV_CONFIG))
    assert got["captureData"]["endpointOutput"]["encoding"] == "BASE64"
    assert got["shadowlab"] == {"outcome": "answered", "status": 500, "error": None}
    assert "shadowlab" not in decode(encode_record(record(event()), CSV_CONFIG))


def test_shed_is_not_encoded() -> None:
    with pytest.raises(ValueError, match="shed"):
        encode_record(record(event(), role="shadow", outcome="shed"), CSV_CONFIG)


def test_inference_time_format() -> None:
    assert iso_second(calendar.timegm((2022, 2, 14, 17, 25, 49, 0, 0, 0)) + 0.999) == (
        "2022-02-14T17:25:49Z"
    )
    assert iso_second(0) == "1970-01-01T00:00:00Z"
    assert iso_second(86399.5) == "1970-01-01T23:59:59Z"  # the per-second cache moves on


def test_fast_path_equals_the_obvious_encoding() -> None:
    rng = random.Random(7)
    encoder = RecordEncoder(BOTH_CONFIG)
    alphabet = 'ab,\n"\\\u00e9\u2028\t\x00{}[]:'
    for _ in range(500):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))
        body = rng.choice([text.encode(), bytes(rng.randrange(256) for _ in range(9))])
        content_type = rng.choice(["text/csv", "application/json", "image/png", None])
        rec = record(
            event(
                body=body,
                content_type=content_type,
                # A header's bytes, as a client sending UTF-8 would (read back as latin-1).
                inference_id=rng.choice([None, text.encode().decode("latin-1")]),
            ),
            body=body,
            content_type=content_type,
            status=rng.choice([200, 204, 400, 503]),
            outcome=rng.choice(["answered", "answered", "failed", "timeout"]),
            error=rng.choice([None, text]),
        )
        line = encoder.encode(rec)
        assert json.loads(line) == reference(rec, BOTH_CONFIG)
        assert line.isascii()
