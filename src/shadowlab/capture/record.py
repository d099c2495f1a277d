"""One invocation as one line of SageMaker's data-capture JSON Lines.

The documented record (model-monitor-data-capture-endpoint), key order included::

    {"captureData": {
        "endpointInput":  {"observedContentType", "mode": "INPUT",  "data", "encoding"},
        "endpointOutput": {"observedContentType", "mode": "OUTPUT", "data", "encoding"}},
     "eventMetadata": {"eventId", "inferenceId" (only when the client sent one), "inferenceTime"},
     "eventVersion": "0"}

``encoding`` is ``CSV`` when the content type's media type is in the config's CSV list, ``JSON``
when in its JSON list (``data`` is then the payload text as is), otherwise ``BASE64``. A CSV or
JSON payload that is not valid UTF-8 cannot be carried as text and falls back to BASE64, so what
is written always decodes back to the exact bytes. ``inferenceTime`` is UTC to the second, as in
SageMaker's example (``2022-02-14T17:25:49Z``). A request without a content type is recorded as
``application/octet-stream`` (always BASE64 then).

shadowlab extension: a record whose variant gave no 2xx answer carries one more top-level key,
after the documented ones, ``"shadowlab": {"outcome": "answered"|"failed"|"timeout", "status":
<model HTTP status, 0 without an answer>, "error": <reason or null>}``. A record without an answer
(failed, timeout) has no ``endpointOutput``, exactly as an input-only capture has none, so readers
of SageMaker's format (Model Monitor included) keep working and ordinary 2xx records are
byte-for-byte SageMaker's shape. Shed copies are never encoded: the writer counts them per file.

Speed: this runs for every captured record, so the line is assembled from pieces with the C
string escaper of the json module instead of ``json.dumps`` on nested dicts: ~2-2.5 us for a
small CSV record against ~9-10 us for ``json.dumps`` of the same dict already built (measured
here, CPython 3.11); a test checks both give the same JSON.
"""

from __future__ import annotations

import base64
import json.encoder
import time

from shadowlab.capture.config import CaptureConfig, media_type
from shadowlab.dataplane.observer import InvocationEvent, InvocationRecord

EXTENSION_KEY = "shadowlab"
DEFAULT_CONTENT_TYPE = "application/octet-stream"
CSV, JSON, BASE64 = "CSV", "JSON", "BASE64"

_escape = json.encoder.encode_basestring_ascii  # C implementation; output is pure ASCII
_MAX_CACHED_TYPES = 256  # content-type strings remembered per encoder (clients vary little)
_MAX_CACHED_INPUTS = 4096  # recent requests' encoded input (a few ms of traffic at full load)


class RecordEncoder:
    """Encodes records for one ``CaptureConfig``, remembering each content type's encoding."""

    __slots__ = ("_inputs", "_older_inputs", "_types", "config")

    def __init__(self, config: CaptureConfig) -> None:
        self.config = config
        # content type as sent -> (encoding, the type as a JSON string)
        self._types: dict[str | None, tuple[str, str]] = {}
        # event id -> its endpointInput, encoded: the production record and its shadow records
        # carry the same request, usually a few milliseconds apart, so it is encoded once. Two
        # generations (a full one is dropped whole) keep this O(1) with bounded memory.
        self._inputs: dict[str, str] = {}
        self._older_inputs: dict[str, str] = {}

    def encoding_for(self, content_type: str | None) -> str:
        return self._type(content_type)[0]

    def _type(self, content_type: str | None) -> tuple[str, str]:
        known = self._types.get(content_type)
        if known is None:
            observed = content_type or DEFAULT_CONTENT_TYPE
            kind = media_type(observed)
            if kind in self.config.csv_content_types:
                encoding = CSV
            elif kind in self.config.json_content_types:
                encoding = JSON
            else:
                encoding = BASE64
            if len(self._types) >= _MAX_CACHED_TYPES:
                self._types.clear()
            known = self._types[content_type] = (encoding, _escape(observed))
        return known

    def _payload(self, mode: str, body: bytes, content_type: str | None) -> str:
        encoding, observed = self._types.get(content_type) or self._type(content_type)
        if encoding != BASE64:
            try:
                data = _escape(body.decode("utf-8"))
            except UnicodeDecodeError:
                encoding = BASE64
        if encoding == BASE64:
            # base64's alphabet needs no JSON escaping.
            data = f'"{base64.b64encode(body).decode("ascii")}"'
        return (
            f'{{"observedContentType":{observed},"mode":"{mode}","data":{data},'
            f'"encoding":"{encoding}"}}'
        )

    def _input(self, event: InvocationEvent) -> str:
        fragment = '"endpointInput":' + self._payload(
            "INPUT", event.request_body, event.request_content_type
        )
        if len(self._inputs) >= _MAX_CACHED_INPUTS:
            self._older_inputs = self._inputs
            self._inputs = {}
        self._inputs[event.event_id] = fragment
        return fragment

    def encode(self, record: InvocationRecord) -> bytes:
        """One JSON line, newline included. Shed records have nothing to encode (ValueError)."""
        outcome = record.outcome
        if outcome == "shed":
            raise ValueError("shed copies are counted, not captured")
        event = record.event
        config = self.config
        answered = outcome == "answered"
        if config.capture_input:
            event_id = event.event_id
            capture = (
                self._inputs.get(event_id) or self._older_inputs.get(event_id) or self._input(event)
            )
            if config.capture_output and answered:
                capture += ',"endpointOutput":' + self._payload(
                    "OUTPUT", record.response_body, record.response_content_type
                )
        elif answered:
            capture = '"endpointOutput":' + self._payload(
                "OUTPUT", record.response_body, record.response_content_type
            )
        else:
            capture = ""
        inference_id = event.inference_id
        metadata = (
            _escape(event.event_id)
            if inference_id is None
            else f'{_escape(event.event_id)},"inferenceId":{_escape(inference_id)}'
        )
        extension = ""
        status = record.status
        if not answered or not 200 <= status < 300:
            error = "null" if record.error is None else _escape(record.error)
            extension = (
                f',"{EXTENSION_KEY}":{{"outcome":"{outcome}","status":{int(status)},'
                f'"error":{error}}}'
            )
        return (
            f'{{"captureData":{{{capture}}},"eventMetadata":{{"eventId":{metadata},'
            f'"inferenceTime":"{iso_second(event.inference_time)}"}},"eventVersion":"0"'
            f"{extension}}}\n"
        ).encode("ascii")


def encode_record(record: InvocationRecord, config: CaptureConfig) -> bytes:
    """Convenience for one-off use; the writer keeps one ``RecordEncoder`` per config."""
    return RecordEncoder(config).encode(record)


# The last second formatted: consecutive records nearly always share it. A tuple so that a
# reader on another thread sees a matching pair (one reference swap).
_last_second: tuple[int, str] = (-1, "")


def iso_second(epoch: float) -> str:
    """Epoch seconds -> ``2022-02-14T17:25:49Z`` (UTC, truncated to the second, as SageMaker)."""
    global _last_second
    second = int(epoch)
    cached = _last_second
    if cached[0] == second:
        return cached[1]
    text = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(second))
    _last_second = (second, text)
    return text
