"""Both batch encoders (native and Python) against the one-record-at-a-time encoding they
replaced, byte for byte.

``previous_line`` is ``RecordEncoder.encode`` as it was before records were encoded a batch at a
time (issue 11's throughput work), kept here as the reference. Header values then arrived
decoded (latin-1) from the data plane; they now arrive as bytes, and are read the same way.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import subprocess
import sys
import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shadowlab.capture.config import CaptureConfig, media_type
from shadowlab.capture.record import NATIVE, RecordEncoder
from shadowlab.dataplane.observer import (
    EVENT,
    INFERENCE_TIME,
    OUTCOME,
    STATUS,
    InvocationEvent,
    InvocationRecord,
    invocation_event,
    invocation_record,
    new_event_id,
)
from tests.capture.support import expected_encoding

_escape = json.encoder.encode_basestring_ascii
_UNIQUE = itertools.count()


def _text(value: bytes | None) -> str | None:
    return value.decode("latin-1") if value else None


def previous_payload(
    config: CaptureConfig, mode: str, body: bytes, content_type: str | None
) -> str:
    observed = content_type or "application/octet-stream"
    kind = media_type(observed)
    encoding = expected_encoding(config, kind)
    if encoding != "BASE64":
        try:
            data = _escape(body.decode("utf-8"))
        except UnicodeDecodeError:
            encoding = "BASE64"
    if encoding == "BASE64":
        data = f'"{base64.b64encode(body).decode("ascii")}"'
    return (
        f'{{"observedContentType":{_escape(observed)},"mode":"{mode}","data":{data},'
        f'"encoding":"{encoding}"}}'
    )


def previous_line(record: InvocationRecord, config: CaptureConfig) -> bytes:
    event, _, _, status, body, content_type, error, _, outcome = record
    _, event_id, inference_id_sent, inference_time, request_body, request_type, *_ = event
    answered = outcome == "answered"
    output = ""
    if answered:
        output = '"endpointOutput":' + previous_payload(config, "OUTPUT", body, _text(content_type))
    if config.capture_input:
        capture = '"endpointInput":' + previous_payload(
            config, "INPUT", request_body, _text(request_type)
        )
        if config.capture_output and answered:
            capture += "," + output
    else:
        capture = output
    inference_id = _text(inference_id_sent)
    metadata = (
        _escape(event_id)
        if inference_id is None
        else f'{_escape(event_id)},"inferenceId":{_escape(inference_id)}'
    )
    extension = ""
    if not answered or not 200 <= status < 300:
        reason = "null" if error is None else _escape(error)
        extension = (
            f',"shadowlab":{{"outcome":"{outcome}","status":{int(status)},"error":{reason}}}'
        )
    when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(inference_time)))
    return (
        f'{{"captureData":{{{capture}}},"eventMetadata":{{"eventId":{metadata},'
        f'"inferenceTime":"{when}"}},"eventVersion":"0"{extension}}}\n'
    ).encode("ascii")


# Payloads: unicode (astral, U+2028, combining), control characters, quotes and backslashes,
# CSV lines, JSON documents, and bytes that are not UTF-8 (they must go BASE64).
_TEXT = st.text(
    alphabet=st.sampled_from('ab,;\n\r\t"\\/\x00\x1f\x7f é€\u2028\U0001f600{}[]:0123'),
    max_size=40,
)
_BODIES = st.one_of(
    _TEXT.map(str.encode),
    st.lists(st.lists(st.integers(-99, 99).map(str), max_size=4).map(",".join), max_size=3)
    .map("\n".join)
    .map(str.encode),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=3).map(json.dumps).map(str.encode),
    st.binary(max_size=24),
)
_TYPES = st.sampled_from(
    [
        None,
        b"",
        b"text/csv",
        b"Text/CSV; charset=utf-8",
        b"application/json",
        b"application/jsonlines",
        b"application/x-npy",
        b"image/\xe9",  # a latin-1 header byte
    ]
)
_CONFIGS = st.builds(
    lambda inputs, outputs, csv, js: CaptureConfig(
        destination="s3://b/p",
        capture_input=inputs or not outputs,
        capture_output=outputs,
        csv_content_types=("text/csv",) if csv else (),
        json_content_types=("application/json",) if js else (),
    ),
    st.booleans(),
    st.booleans(),
    st.booleans(),
    st.booleans(),
)


@st.composite
def _records(draw: Any) -> list[InvocationRecord]:
    """Records as the writer gets them: production and shadow records of the same events,
    interleaved, some events seen once, some ids chosen by the test (to be escaped)."""
    records = []
    for _ in range(draw(st.integers(1, 8))):
        event: InvocationEvent = (
            "ep",
            # Any text (to be escaped), but one id per event, as the data plane makes them.
            draw(st.one_of(st.builds(new_event_id), _TEXT)) + f"~{next(_UNIQUE)}",
            draw(st.one_of(st.none(), st.just(b""), _TEXT.map(lambda t: t.encode()))),
            draw(st.floats(0, 4e9)),
            draw(_BODIES),
            draw(_TYPES),
            None,
            (),
        )
        for role in draw(st.lists(st.sampled_from(["production", "shadow"]), min_size=1)):
            outcome = draw(st.sampled_from(["answered", "answered", "failed", "timeout", "shed"]))
            answered = outcome == "answered"
            records.append(
                (
                    event,
                    "production" if role == "production" else "shadow",
                    role,
                    draw(st.sampled_from([200, 201, 204, 400, 500])) if answered else 0,
                    draw(_BODIES) if answered else b"",
                    draw(_TYPES),
                    None if answered else draw(st.one_of(st.none(), _TEXT)),
                    0.001,
                    outcome,  # type: ignore[arg-type]
                )
            )
    return draw(st.permutations(records))


_IMPLEMENTATIONS = [
    pytest.param(
        True,
        id="native",
        marks=pytest.mark.skipif(not NATIVE, reason="capture/_lines.c is not built (no compiler)"),
    ),
    pytest.param(False, id="python"),
]


def test_the_native_encoder_is_built_in_ci() -> None:
    """CI must test the encoder production runs: a build that silently fell back fails here."""
    if os.environ.get("CI") != "true":
        pytest.skip("only CI insists (a machine without a C compiler runs the Python encoder)")
    assert NATIVE, "capture/_lines.c did not build: see `make setup`'s output"
    assert RecordEncoder(CaptureConfig(destination="s3://b/p")).native


@pytest.mark.parametrize("native", _IMPLEMENTATIONS)
@settings(max_examples=150, deadline=None)
@given(config=_CONFIGS, batches=st.lists(_records(), min_size=1, max_size=3))
def test_batches_equal_the_previous_encoding_byte_for_byte(
    native: bool, config: CaptureConfig, batches: list[list[InvocationRecord]]
) -> None:
    # One encoder across batches: its caches carry over.
    encoder = RecordEncoder(config, native=native)
    for records in batches:
        batch = encoder.encode_batch(records)
        kept = [r for r in records if r[OUTCOME] != "shed"]
        assert batch.data == b"".join(previous_line(r, config) for r in kept)
        assert batch.records == len(kept)
        assert batch.shed == len(records) - len(kept)
        assert batch.failed == sum(r[OUTCOME] == "failed" for r in kept)
        assert batch.timeout == sum(r[OUTCOME] == "timeout" for r in kept)
        assert batch.model_errors == sum(
            r[OUTCOME] == "answered" and not 200 <= r[STATUS] < 300 for r in kept
        )
        if kept:
            seconds = [int(r[EVENT][INFERENCE_TIME]) for r in kept]
            assert (batch.first, batch.last) == (min(seconds), max(seconds))
        for line in batch.data.splitlines():
            assert line.isascii() and isinstance(json.loads(line), dict)


# Bytes the native escaper must not copy as they are, and two it must: the boundaries of its
# eight-bytes-at-a-time test (`clean_prefix` in capture/_jsontext.h).
_SPECIAL = [
    b'"',
    b"\\",
    b"\x00",
    b"\x1f",
    b"\x7f",
    b"\n",
    b"\x80",
    b"\xc3\xa9",
    b"\xff",
    b" ",
    b"~",
]
_JSON_CONFIG = CaptureConfig(destination="s3://b/p", json_content_types=("application/json",))


def _json_exchange(request_body: bytes, response_body: bytes) -> InvocationRecord:
    """A production record of a JSON request answered 200 in JSON."""
    event = invocation_event(
        endpoint="ep",
        event_id=new_event_id(),
        inference_id=None,
        inference_time=1.7e9,
        request_body=request_body,
        request_content_type=b"application/json",
    )
    return invocation_record(
        event=event,
        role="production",
        variant="v",
        status=200,
        response_body=response_body,
        response_content_type=b"application/json",
        error=None,
        latency_s=0.0,
    )


@pytest.mark.parametrize("native", _IMPLEMENTATIONS)
def test_every_special_byte_at_every_position(native: bool) -> None:
    """Deterministic where Hypothesis samples: each special byte at each offset of bodies up to
    three words long, so that every byte lane of the word test and the tails are exercised."""
    records = [
        _json_exchange(body, body[::-1])
        for length in range(1, 25)
        for position in range(length)
        for special in _SPECIAL
        for body in [b"a" * position + special + b"b" * (length - position - 1)]
    ]
    batch = RecordEncoder(_JSON_CONFIG, native=native).encode_batch(records)
    assert batch.data == b"".join(previous_line(r, _JSON_CONFIG) for r in records)


@pytest.mark.parametrize("native", _IMPLEMENTATIONS)
def test_large_bodies_grow_the_buffer_as_they_escape(native: bool) -> None:
    """Bodies past the native encoder's first 64 KiB, escaping everywhere (room is reserved for
    a copy and grows at escapes), ASCII and not, text and BASE64."""
    bodies = [
        b'"' * 70_000,  # every byte escaped: six times the copy
        b'{"a": "b\\n"}' * 9_000 + b"\x01" * 5_000,
        ("é€\U0001f600\n" * 20_000).encode(),  # astral characters: 12 bytes each
        bytes(range(256)) * 400,  # not UTF-8: BASE64
    ]
    records = [_json_exchange(body, body) for body in bodies]
    batch = RecordEncoder(_JSON_CONFIG, native=native).encode_batch(records)
    assert batch.data == b"".join(previous_line(r, _JSON_CONFIG) for r in records)


@pytest.mark.parametrize("native", _IMPLEMENTATIONS)
def test_the_first_second_formatted_may_be_any_second(native: bool) -> None:
    """The per-second time cache starts empty, not at a second a record could have (-1 was):
    checked in a fresh process, where nothing was formatted before."""
    script = f"""
from shadowlab.capture.config import CaptureConfig
from shadowlab.capture.record import RecordEncoder
event = ("ep", "id", None, -1.0, b"x", b"text/csv", None, ())
record = (event, "production", "v", 200, b"y", b"text/csv", None, 0.0, "answered")
encoder = RecordEncoder(CaptureConfig(destination="s3://b/p"), native={native})
print(encoder.encode_batch([record]).data.decode())
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert json.loads(done.stdout)["eventMetadata"]["inferenceTime"] == "1969-12-31T23:59:59Z"
