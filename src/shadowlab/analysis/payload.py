"""Captured payloads back to values: bytes from a record, outputs parsed by content type.

A capture payload is ``{"observedContentType", "mode", "data", "encoding"}``; ``encoding`` says
how ``data`` carries the bytes (``CSV`` and ``JSON``: the text itself; ``BASE64``), the content
type says what they mean. Outputs are parsed by their media type:

- JSON (``application/json``, ``*+json``): the selector picks the prediction; JSON Lines
  (``application/jsonlines``, ``application/x-ndjson``) likewise, line by line;
- CSV (``text/csv``): every cell, row after row; a cell that reads as a number is one;
- NPY (``application/x-npy``): the array's elements in C order;
- anything else: the raw bytes, one value (compared for equality only). A payload of a known
  type that does not parse (or that the selector does not fit) also falls back to its raw bytes,
  and says why.

Outputs are **flattened**: an answer with k rows (or k elements) gives k values, compared with
the other variant's position by position. A value is a ``float`` (numbers), a ``str`` (labels:
strings, booleans ``true``/``false``, ``null``, objects as canonical JSON) or ``bytes`` (raw).
"""

from __future__ import annotations

import base64
import binascii
import csv
import io
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from shadowlab.analysis.selector import Selector, SelectorError

Value = float | str | bytes

JSON_TYPES = frozenset({"application/json", "text/json"})
JSON_LINES_TYPES = frozenset({"application/jsonlines", "application/x-ndjson", "application/jsonl"})
CSV_TYPES = frozenset({"text/csv", "application/csv"})
NPY_TYPES = frozenset({"application/x-npy"})

OK, ERROR, FAILED, TIMEOUT, MISSING = "ok", "error", "failed", "timeout", "missing"


@dataclass(frozen=True, slots=True)
class Parsed:
    """An output as values; ``problem`` is set when it fell back to its raw bytes."""

    values: list[Value]
    problem: str | None = None


def media_type(content_type: object) -> str:
    if not isinstance(content_type, str):
        return ""
    return content_type.partition(";")[0].strip().lower()


def payload_bytes(payload: Mapping[str, Any]) -> bytes:
    data = payload.get("data", "")
    if not isinstance(data, str):
        data = json.dumps(data)  # a reader that already decoded JSON data
    if payload.get("encoding") == "BASE64":
        try:
            return base64.b64decode(data, validate=False)
        except (binascii.Error, ValueError):
            return data.encode("utf-8", "replace")
    return data.encode("utf-8")


def outcome(record: Mapping[str, Any] | None) -> str:
    """``ok`` (a 2xx answer), ``error`` (a non-2xx answer), ``failed``, ``timeout``, ``missing``."""
    if record is None:
        return MISSING
    extension = record.get("shadowlab")
    if not isinstance(extension, Mapping):
        return OK
    kind = extension.get("outcome")
    if kind == "answered":
        status = extension.get("status")
        return OK if isinstance(status, int) and 200 <= status < 300 else ERROR
    return TIMEOUT if kind == TIMEOUT else FAILED


def endpoint_payload(record: Mapping[str, Any] | None, which: str) -> Mapping[str, Any] | None:
    """``which`` is ``endpointInput`` or ``endpointOutput``; ``None`` when not captured."""
    if record is None:
        return None
    capture = record.get("captureData")
    payload = capture.get(which) if isinstance(capture, Mapping) else None
    return payload if isinstance(payload, Mapping) else None


def label_of(value: Value) -> str:
    """A value as a class label: integer-valued numbers without a fraction (``1.0`` -> ``1``)."""
    if isinstance(value, float):
        if value.is_integer():
            return str(int(value))
        return repr(value)
    return value if isinstance(value, str) else value.decode("utf-8", "replace")


def label_order(label: str) -> tuple[int, float, str]:
    """Sort key: numeric labels by value first, then the others alphabetically."""
    try:
        return 0, float(label), label
    except ValueError:
        return 1, 0.0, label


def inference_time(record: Mapping[str, Any] | None) -> str | None:
    metadata = record.get("eventMetadata") if record is not None else None
    when = metadata.get("inferenceTime") if isinstance(metadata, Mapping) else None
    return when if isinstance(when, str) else None


def parse_output(payload: Mapping[str, Any], selector: Selector | None) -> Parsed:
    raw = payload_bytes(payload)
    kind = media_type(payload.get("observedContentType"))
    encoding = payload.get("encoding")
    try:
        if kind in JSON_LINES_TYPES:
            values: list[Value] = []
            for line in raw.splitlines():
                if line.strip():
                    values.extend(_flatten(_select(json.loads(line), selector)))
            return Parsed(values)
        if kind in NPY_TYPES:
            array = np.load(io.BytesIO(raw), allow_pickle=False)
            return Parsed(_flatten(array.ravel().tolist()))
        # A type the capture config listed as JSON or CSV is read as such, whatever its name.
        as_json = kind in JSON_TYPES or kind.endswith("+json")
        as_csv = kind in CSV_TYPES
        if as_json or (encoding == "JSON" and not as_csv):
            return Parsed(_flatten(_select(json.loads(raw), selector)))
        if as_csv or encoding == "CSV":
            return Parsed(_csv_values(raw.decode("utf-8")))
    except (ValueError, SelectorError, UnicodeDecodeError, OSError, EOFError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return Parsed([raw], f"{kind or 'output'} not parsed: {reason}")
    return Parsed([raw])


def _select(document: Any, selector: Selector | None) -> Any:
    return document if selector is None else selector.select(document)


def _flatten(value: Any) -> list[Value]:
    out: list[Value] = []
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, list | tuple):
            stack.extend(reversed(item))
        else:
            out.append(scalar(item))
    return out


def scalar(item: Any) -> Value:
    if isinstance(item, bool):
        return "true" if item else "false"
    if isinstance(item, int | float):
        try:
            return float(item)
        except OverflowError:
            return str(item)
    if isinstance(item, str | bytes):
        return item
    if item is None:
        return "null"
    if isinstance(item, dict):
        return json.dumps(item, sort_keys=True, separators=(",", ":"))
    return str(item)


def _csv_values(text: str) -> list[Value]:
    values: list[Value] = []
    for row in csv.reader(io.StringIO(text)):
        for cell in row:
            cell = cell.strip()
            try:
                values.append(float(cell))
            except ValueError:
                values.append(cell)
    return values


# C0 and C1 controls (escape sequences) and bidirectional overrides (text that reads otherwise
# than it is): shown as escapes wherever captured text is displayed.
_CONTROLS = {
    code: f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
    for code in [*range(0x20), *range(0x7F, 0xA0), *range(0x202A, 0x202F), *range(0x2066, 0x206A)]
}
_CONTROLS.update({0x0A: "\\n", 0x0D: "\\r", 0x09: "\\t"})


def escape_controls(text: str) -> str:
    return text.translate(_CONTROLS)


def safe_text(text: str, limit: int) -> str:
    """``text`` with control characters escaped (terminals), cut to ``limit`` characters."""
    if len(text) > limit:
        text = f"{text[:limit]}... ({len(text):,} chars)"
    return text.translate(_CONTROLS)


def preview(payload: Mapping[str, Any] | None, limit: int) -> str:
    """A payload decoded for display: text as text, NPY as an array, other bytes as hex."""
    if payload is None:
        return "(not captured)"
    raw = payload_bytes(payload)
    if media_type(payload.get("observedContentType")) in NPY_TYPES:
        try:
            array = np.load(io.BytesIO(raw), allow_pickle=False)
            shown = np.array2string(array, threshold=20, edgeitems=3)
            return safe_text(f"npy {array.dtype} {array.shape}: {shown}", limit)
        except (ValueError, OSError, EOFError):
            pass
    try:
        return safe_text(raw.decode("utf-8"), limit)
    except UnicodeDecodeError:
        head = raw[: max(limit // 3, 8)].hex(" ")
        return safe_text(f"({len(raw):,} bytes) {head}", limit)


def show_value(value: Value, limit: int = 40) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, bytes):
        try:
            return safe_text(value.decode("utf-8"), limit)
        except UnicodeDecodeError:
            return safe_text(f"({len(value):,} bytes) {value[:8].hex(' ')}", limit)
    return safe_text(value, limit)
