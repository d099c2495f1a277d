"""What crosses the pipe between the server and its capture process (see ``relay``).

Server -> capture process, on the process's stdin: frames of ``<length: u32 LE><kind: u8>``
then ``length`` bytes.

- ``RECORDS``: ``marshal`` of ``(configs, rows)``. ``configs`` introduces each capture
  configuration once, as ``(key, fields)``; a row names its configuration by that key. A row is a
  flat tuple of builtins (``Row``): what the encoder reads of an ``InvocationRecord`` and its
  ``InvocationEvent``, nothing else.
- ``SYNC``: ``<seq: u64 LE>``: seal and store everything received so far, then answer.
- End of file: stop (write everything, seal, store, answer ``stopped``, exit).

Capture process -> server, on its stdout: one JSON object per line: ``{"ready": true}``,
``{"stats": {...}}`` (the writer's counters, when they change), ``{"synced": seq, "ok": bool}``,
``{"stopped": bool}``.

Why marshal: rows are tuples of str, bytes, int, float and None, which marshal writes in C
without pickle's per-object dispatch (slightly cheaper here, measured), and both ends run the
same interpreter, which is the one thing marshal's format asks. The request body of an event
whose production and shadow records travel in the same frame is written once (marshal writes
a shared object once and refers to it after).
"""

from __future__ import annotations

import marshal
import os
import struct
from typing import BinaryIO

from shadowlab.capture.config import CaptureConfig
from shadowlab.dataplane.observer import InvocationEvent, InvocationRecord

RECORDS = 1
SYNC = 2
_HEADER = struct.Struct("<IB")
_SEQ = struct.Struct("<Q")
MAX_FRAME = 1 << 30  # a frame is one drain's records (bounded by the server's queue bytes)

# config key, endpoint, event id, inference id, inference time, request body, request content
# type, role, variant, status, response body, response content type, error, outcome
Row = tuple[
    int,
    str,
    str,
    bytes | None,
    float,
    bytes,
    bytes | None,
    str,
    str,
    int,
    bytes,
    bytes | None,
    str | None,
    str,
]
ConfigFields = tuple[str, str | None, int, bool, bool, tuple[str, ...], tuple[str, ...], bool]


def row(record: InvocationRecord, key: int) -> Row:
    """`record` as a row (``CaptureRelay._ship`` builds the same tuple inline)."""
    event = record.event
    return (
        key,
        event.endpoint,
        event.event_id,
        event.inference_id,
        event.inference_time,
        event.request_body,
        event.request_content_type,
        record.role,
        record.variant,
        record.status,
        record.response_body,
        record.response_content_type,
        record.error,
        record.outcome,
    )


def config_fields(config: CaptureConfig) -> ConfigFields:
    return (
        config.destination,
        config.kms_key_id,
        config.sampling_percentage,
        config.capture_input,
        config.capture_output,
        config.csv_content_types,
        config.json_content_types,
        config.enabled,
    )


def records_frame(configs: list[tuple[int, ConfigFields]], rows: list[Row]) -> bytes:
    payload = marshal.dumps((configs, rows), 4)
    return _HEADER.pack(len(payload), RECORDS) + payload


def sync_frame(seq: int) -> bytes:
    return _HEADER.pack(_SEQ.size, SYNC) + _SEQ.pack(seq)


def write_all(fd: int, data: bytes) -> None:
    """Blocking write of all of `data` (a pipe takes at most its buffer per call)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def read_frame(source: BinaryIO) -> tuple[int, bytes] | None:
    """The next frame's kind and payload; None at end of file (a torn frame is end of file
    too: the server died while writing it, and what it did not finish was never sent)."""
    header = source.read(_HEADER.size)
    if len(header) < _HEADER.size:
        return None
    length, kind = _HEADER.unpack(header)
    if length > MAX_FRAME:
        raise ValueError(f"capture frame of {length} bytes is beyond the bound")
    payload = source.read(length)
    if len(payload) < length:
        return None
    return kind, payload


def sync_seq(payload: bytes) -> int:
    seq: int = _SEQ.unpack(payload)[0]
    return seq


class RowDecoder:
    """Rows back into the records the writer takes, on the capture process's side. Keeps the
    configurations the server introduced (the most recent ``_MAX_CONFIGS``) and gives the
    production and shadow rows of one event one ``InvocationEvent``, as the server had."""

    _MAX_CONFIGS = 1024

    def __init__(self) -> None:
        self._configs: dict[int, CaptureConfig] = {}

    def decode(self, payload: bytes) -> list[tuple[InvocationRecord, CaptureConfig]]:
        configs, rows = marshal.loads(payload)
        for key, fields in configs:
            if len(self._configs) >= self._MAX_CONFIGS:
                del self._configs[next(iter(self._configs))]
            self._configs[key] = CaptureConfig(*fields)
        known = self._configs
        events: dict[str, InvocationEvent] = {}
        out: list[tuple[InvocationRecord, CaptureConfig]] = []
        append = out.append
        for (
            key,
            endpoint,
            event_id,
            inference_id,
            inference_time,
            request_body,
            request_type,
            role,
            variant,
            status,
            response_body,
            response_type,
            error,
            outcome,
        ) in rows:
            event = events.get(event_id)
            if event is None:
                event = events[event_id] = InvocationEvent(
                    endpoint,
                    event_id,
                    inference_id,
                    inference_time,
                    request_body,
                    request_type,
                    None,
                )
            record = InvocationRecord(
                event, role, variant, status, response_body, response_type, error, 0.0, outcome
            )
            append((record, known[key]))
        return out
