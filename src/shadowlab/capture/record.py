"""Invocations as lines of SageMaker's data-capture JSON Lines.

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
``application/octet-stream`` (always BASE64 then). Header values (content types, the inference
id) arrive as the bytes sent and are read as latin-1, as HTTP defines them.

shadowlab extension: a record whose variant gave no 2xx answer carries one more top-level key,
after the documented ones, ``"shadowlab": {"outcome": "answered"|"failed"|"timeout", "status":
<model HTTP status, 0 without an answer>, "error": <reason or null>}``. A record without an answer
(failed, timeout) has no ``endpointOutput``, exactly as an input-only capture has none, so readers
of SageMaker's format (Model Monitor included) keep working and ordinary 2xx records are
byte-for-byte SageMaker's shape. Shed copies are never encoded: the writer counts them per file.

Speed: this runs for every captured record on the capture thread, which shares the GIL (and, on a
busy server, the core) with the event loop, so every microsecond here is one the data plane
loses. Two implementations write the same bytes:

- the native one, ``_lines.encode_lines`` (``_lines.c``, built by ``make setup`` when a C compiler
  is there): each record's line laid out in one pass into one buffer, ~25x cheaper than the
  best Python below (docs/benchmarks.md, "capture"); used whenever it is importable;
- the Python one, the specification and the fallback: lines assembled from pieces with the json
  module's C string escaper (no dicts, no ``json.dumps``), what production and its shadows share
  (the input and the metadata) encoded once per event, what a content type needs once per type.

Both decide content types the same way (``_Type``, here in Python, once per distinct value).
``tests/capture/test_capture_encoding.py`` holds both byte for byte equal to the plain
one-record-at-a-time encoding (Hypothesis), and ``test_capture_record.py`` against ``json.dumps``
of the documented dict.
"""

from __future__ import annotations

import binascii
import json.encoder
import time
from collections.abc import Callable

from shadowlab.capture.config import CaptureConfig, media_type
from shadowlab.dataplane.observer import EVENT_ID, OUTCOME, InvocationEvent, InvocationRecord

EXTENSION_KEY = "shadowlab"
DEFAULT_CONTENT_TYPE = "application/octet-stream"
CSV, JSON, BASE64 = "CSV", "JSON", "BASE64"


def _native_encoder() -> Callable[..., tuple[bytes, int, int, int, int, int, int, int]] | None:
    try:
        from shadowlab.capture._lines import encode_lines
    except ImportError:  # not built (no C compiler at install time): the Python encoder serves
        return None
    return encode_lines


_encode_lines = _native_encoder()
NATIVE = _encode_lines is not None  # whether the native encoder is built and importable
_escape = json.encoder.encode_basestring_ascii  # C implementation; output is pure ASCII
# A content type's framing for _lines.c: (text, input_prefix, output_prefix, suffix, b64_suffix).
NativeEntry = tuple[bool, str, str, str, str]
_MAX_CACHED_TYPES = 256  # content-type values remembered per encoder (clients vary little)
_MAX_CACHED_EVENTS = 4096  # recent requests' encoded parts (a few ms of traffic at full load)


class _Type:
    """How one content type (as sent) is captured: the payload's framing, pre-built."""

    __slots__ = ("b64_suffix", "entry", "input_prefix", "output_prefix", "suffix", "text")

    def __init__(self, content_type: bytes | None, config: CaptureConfig, separator: str) -> None:
        observed = content_type.decode("latin-1") if content_type else DEFAULT_CONTENT_TYPE
        kind = media_type(observed)
        encoding = (
            CSV
            if kind in config.csv_content_types
            else JSON
            if kind in config.json_content_types
            else BASE64
        )
        self.text = encoding != BASE64  # data carried as text, when it is UTF-8
        head = '{"observedContentType":' + _escape(observed) + ',"mode":"'
        self.input_prefix = head + 'INPUT","data":'
        self.output_prefix = separator + head + 'OUTPUT","data":'
        self.suffix = f',"encoding":"{encoding}"}}'
        self.b64_suffix = f',"encoding":"{BASE64}"}}'
        # The same framing for the native encoder, in the order _lines.c reads it.
        self.entry = (
            self.text,
            self.input_prefix,
            self.output_prefix,
            self.suffix,
            self.b64_suffix,
        )

    def payload(self, prefix: str, body: bytes) -> str:
        """The payload object after `prefix` (``input_prefix`` or ``output_prefix``)."""
        if self.text:
            try:
                return prefix + _escape(body.decode("utf-8")) + self.suffix
            except UnicodeDecodeError:
                pass  # cannot be carried as text
        # base64's alphabet needs no JSON escaping.
        data = binascii.b2a_base64(body, newline=False).decode("ascii")
        return f'{prefix}"{data}"{self.b64_suffix}'


class EncodedBatch:
    """Lines of one batch of records, joined, and what the writer counts of them."""

    __slots__ = ("data", "failed", "first", "last", "model_errors", "records", "shed", "timeout")

    def __init__(
        self,
        data: bytes = b"",
        records: int = 0,
        failed: int = 0,
        timeout: int = 0,
        model_errors: int = 0,
        shed: int = 0,
        first: int = 1 << 62,
        last: int = -1,
    ) -> None:
        self.data = data
        self.records = records  # lines in data
        self.failed = failed
        self.timeout = timeout
        self.model_errors = model_errors  # answered with a non-2xx status
        self.shed = shed  # shed copies: counted, no line
        self.first = first  # inference-time range of the lines, whole seconds
        self.last = last


class RecordEncoder:
    """Encodes records for one ``CaptureConfig``, remembering each content type's framing and
    each recent event's shared parts. Used by one thread at a time.
    """

    __slots__ = ("_entries", "_events", "_types", "config", "native")

    def __init__(self, config: CaptureConfig, *, native: bool = NATIVE) -> None:
        """`native`: use the native encoder (the default when it is built); False forces the
        Python one (tests compare the two)."""
        if native and not NATIVE:
            raise RuntimeError("the native capture encoder (capture/_lines.c) is not built")
        self.config = config
        self.native = native
        self._types: dict[bytes | None, _Type] = {}
        self._entries: dict[bytes | None, NativeEntry] = {}  # the native encoder's view
        # event id -> (line head, line tail, second): the head holds endpointInput, the tail
        # eventMetadata and eventVersion. Production and its shadow records carry the same
        # request, usually a few milliseconds apart, so these are built once. Cleared when
        # full: a record whose event was forgotten is only encoded from scratch.
        self._events: dict[str, tuple[str, str, int]] = {}

    def _type(self, content_type: bytes | None) -> _Type:
        """A content type not seen yet (callers look in ``_types`` first)."""
        if len(self._types) >= _MAX_CACHED_TYPES:
            self._types.clear()
        separator = ',"endpointOutput":' if self.config.capture_input else '"endpointOutput":'
        kind = self._types[content_type] = _Type(content_type, self.config, separator)
        return kind

    def _event(self, event: InvocationEvent) -> tuple[str, str, int]:
        """An event's shared parts, built and remembered."""
        _, event_id, inference_id, inference_time, body, content_type, *_ = event
        if self.config.capture_input:
            kind = self._types.get(content_type) or self._type(content_type)
            try:  # the text case inline, as in encode_batch
                if not kind.text:
                    raise UnicodeError  # to the BASE64 branch
                data = _escape(body.decode("utf-8"))
                head = f'{{"captureData":{{"endpointInput":{kind.input_prefix}{data}{kind.suffix}'
            except UnicodeError:
                head = '{"captureData":{"endpointInput":' + kind.payload(kind.input_prefix, body)
        else:
            head = '{"captureData":{'
        metadata = _escape(event_id)
        if inference_id:
            metadata += ',"inferenceId":' + _escape(inference_id.decode("latin-1"))
        second = int(inference_time)
        known_second, iso = _last_second
        if second != known_second:
            iso = iso_second(second)
        tail = (
            f'}},"eventMetadata":{{"eventId":{metadata},"inferenceTime":"{iso}"}},'
            '"eventVersion":"0"'
        )
        shared = (head, tail, second)
        events = self._events
        if len(events) >= _MAX_CACHED_EVENTS:
            events.clear()
        events[event_id] = shared
        return shared

    def _entry(self, content_type: bytes | None) -> NativeEntry:
        """The native encoder's framing of a type it has not seen (it stores it through this)."""
        if len(self._entries) >= _MAX_CACHED_TYPES:
            self._entries.clear()
        kind = self._types.get(content_type) or self._type(content_type)
        self._entries[content_type] = kind.entry
        return kind.entry

    def encode_batch(self, records: list[InvocationRecord]) -> EncodedBatch:
        """The lines of `records`, in order, as one bytes object (each line ends with a newline),
        and their counts. Shed copies are counted, not encoded.
        """
        if self.native:
            assert _encode_lines is not None
            config = self.config
            return EncodedBatch(
                *_encode_lines(
                    records, config.capture_input, config.capture_output, self._entries, self._entry
                )
            )
        return self._encode_batch_python(records)

    def _encode_batch_python(self, records: list[InvocationRecord]) -> EncodedBatch:
        batch = EncodedBatch()
        lines: list[str] = []
        append = lines.append
        events, types = self._events, self._types
        with_output = self.config.capture_output
        first, last = batch.first, batch.last
        for record in records:
            event, _, _, status, body, content_type, _, _, outcome = record
            if outcome != "answered" or not 200 <= status < 300:
                if outcome == "shed":
                    batch.shed += 1
                    continue
                line, second = self._unusual(record, batch)
            else:  # SageMaker's own shape; the common case, so inline
                shared = events.get(event[EVENT_ID])
                if shared is None:
                    shared = self._event(event)
                head, tail, second = shared
                if not with_output:
                    line = f"{head}{tail}}}\n"
                else:
                    kind = types.get(content_type) or self._type(content_type)
                    try:
                        if not kind.text:
                            raise UnicodeError  # to the BASE64 branch
                        data = _escape(body.decode("utf-8"))
                        line = f"{head}{kind.output_prefix}{data}{kind.suffix}{tail}}}\n"
                    except UnicodeError:
                        line = f"{head}{kind.payload(kind.output_prefix, body)}{tail}}}\n"
            append(line)
            if second < first:
                first = second
            if second > last:
                last = second
        batch.records = len(lines)
        batch.first, batch.last = first, last
        batch.data = "".join(lines).encode("ascii")
        return batch

    def _unusual(self, record: InvocationRecord, batch: EncodedBatch) -> tuple[str, int]:
        """A record that is not a 2xx answer: marked with the extension, counted in `batch`."""
        event, _, _, status, body, content_type, error, _, outcome = record
        head, tail, second = self._events.get(event[EVENT_ID]) or self._event(event)
        output = ""
        if outcome == "answered":
            batch.model_errors += 1
            if self.config.capture_output:
                kind = self._types.get(content_type) or self._type(content_type)
                output = kind.payload(kind.output_prefix, body)
        elif outcome == "timeout":
            batch.timeout += 1
        elif outcome == "failed":
            batch.failed += 1
        else:
            raise ValueError(f"no capture record for outcome {outcome!r}")
        reason = "null" if error is None else _escape(error)
        extension = (
            f',"{EXTENSION_KEY}":{{"outcome":"{outcome}","status":{int(status)},"error":{reason}}}'
        )
        return f"{head}{output}{tail}{extension}}}\n", second

    def encode(self, record: InvocationRecord) -> bytes:
        """One JSON line, newline included. Shed records have nothing to encode (ValueError)."""
        if record[OUTCOME] == "shed":
            raise ValueError("shed copies are counted, not captured")
        return self.encode_batch([record]).data


def encode_record(record: InvocationRecord, config: CaptureConfig) -> bytes:
    """Convenience for one-off use; the writer keeps one ``RecordEncoder`` per config."""
    return RecordEncoder(config).encode(record)


# The last second formatted: consecutive records nearly always share it. A tuple so that a
# reader on another thread sees a matching pair (one reference swap); None before the first
# (any int is a second a record may have).
_last_second: tuple[int | None, str] = (None, "")


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
