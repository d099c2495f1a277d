"""Default request decoding and response encoding of the built-in runtime.

These stand in for `input_fn` / `output_fn` when a model's code does not define them, covering
the content types the SageMaker scikit-learn container handles by default: CSV, JSON and NPY.
Failures are the caller's fault, so they raise `InvocationError` with a 4xx status.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import numpy as np

__all__ = [
    "CSV",
    "JSON",
    "NPY",
    "UTF8_TYPES",
    "InvocationError",
    "base_type",
    "choose_accept",
    "decode",
    "encode",
]

JSON = "application/json"
CSV = "text/csv"
NPY = "application/x-npy"
SUPPORTED = (JSON, CSV, NPY)
# The toolkit hands these to input_fn as str rather than bytes; model code relies on it.
UTF8_TYPES = frozenset({JSON, CSV})


class InvocationError(Exception):
    """A failed invocation as data: the HTTP status to answer with and a message.

    Model code may raise it too, to choose the status its client sees.
    """

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message

    def __repr__(self) -> str:
        return f"InvocationError({self.status}, {self.message!r})"


def base_type(content_type: str) -> str:
    """`Application/JSON; charset=utf-8` -> `application/json`."""
    return content_type.split(";", 1)[0].strip().lower()


def decode(data: bytes | str, content_type: str) -> Any:
    """Default `input_fn`: the request body as a numpy array."""
    kind = base_type(content_type)
    if kind == JSON:
        return _decode_json(_text(data, kind))
    if kind == CSV:
        return _decode_csv(_text(data, kind))
    if kind == NPY:
        raw = data.encode() if isinstance(data, str) else data
        try:
            return np.load(io.BytesIO(raw), allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise InvocationError(400, f"invalid {NPY} payload: {exc}") from exc
    raise InvocationError(
        415, f"content type {content_type!r} is not supported; use one of {', '.join(SUPPORTED)}"
    )


def _text(data: bytes | str, kind: str) -> str:
    if isinstance(data, str):
        return data
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvocationError(400, f"{kind} payload is not valid UTF-8: {exc}") from exc


def _decode_json(text: str) -> Any:
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise InvocationError(400, f"invalid JSON payload: {exc}") from exc
    if isinstance(value, dict):
        # TensorFlow-Serving style envelopes, which SageMaker clients commonly send.
        if "instances" in value:
            value = value["instances"]
        elif "inputs" in value:
            value = value["inputs"]
        else:
            raise InvocationError(400, 'a JSON object payload needs an "instances" or "inputs" key')
    try:
        array = np.asarray(value)
    except ValueError as exc:
        raise InvocationError(400, f"JSON payload is not a rectangular array: {exc}") from exc
    if array.ndim == 0:
        raise InvocationError(400, "JSON payload must be a list of records")
    if array.ndim == 1 and array.dtype.kind in "biuf":
        # A flat list of numbers is one record (as one CSV line is); a flat list of strings is
        # left alone, since text pipelines take one document per element.
        array = array.reshape(1, -1)
    return array


def _decode_csv(text: str) -> Any:
    if not text.strip():
        raise InvocationError(400, "empty CSV payload")
    try:
        return np.loadtxt(io.StringIO(text), delimiter=",", ndmin=2, dtype=np.float64)
    except ValueError:
        pass  # not all numeric: keep the cells as strings, for pipelines that encode them
    rows = [row for row in csv.reader(io.StringIO(text)) if row]
    if len({len(row) for row in rows}) != 1:
        raise InvocationError(400, "CSV rows have different numbers of columns")
    return np.array(rows)


def choose_accept(accept: str) -> str:
    """The first type in `accept` the default encoder can produce (`*/*` means JSON)."""
    for candidate in accept.split(","):
        kind = base_type(candidate)
        if kind in SUPPORTED:
            return kind
        if kind in ("*/*", "application/*", ""):
            return JSON
        if kind == "text/*":
            return CSV
    raise InvocationError(
        415, f"accept type {accept!r} is not supported; use one of {', '.join(SUPPORTED)}"
    )


def encode(prediction: Any, accept: str) -> tuple[bytes, str]:
    """Default `output_fn`: the prediction in the first acceptable type, with that type."""
    kind = choose_accept(accept)
    if kind == JSON:
        if isinstance(prediction, np.ndarray):
            prediction = prediction.tolist()
        return json.dumps(prediction, default=_json_default).encode(), JSON
    array = np.asarray(prediction)
    buffer = io.BytesIO()
    if kind == NPY:
        np.save(buffer, array, allow_pickle=False)
        return buffer.getvalue(), NPY
    if array.ndim > 2:
        raise InvocationError(406, f"a {array.ndim}-dimensional prediction cannot be CSV")
    np.savetxt(buffer, array.reshape(-1) if array.ndim == 0 else array, delimiter=",", fmt="%s")
    return buffer.getvalue(), CSV


def _json_default(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
