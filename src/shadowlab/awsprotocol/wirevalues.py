"""Scalar conversions between JSON values and Python values, shared by validation and parsing.

Validation asks "can this be converted?" and parsing does the conversion; both go through the
functions here so that what validates is exactly what parses.
"""

from __future__ import annotations

import base64
import binascii
import calendar
import math
from datetime import UTC, datetime
from typing import Any

# Java's int and long: a JSON number outside them cannot be deserialised by AWS either.
INTEGER_RANGE = {"integer": (-(2**31), 2**31 - 1), "long": (-(2**63), 2**63 - 1)}


def is_number(value: Any) -> bool:
    # bool is an int subclass in Python; on the wire `true` is never a number.
    return isinstance(value, int | float) and not isinstance(value, bool)


def as_integer(type_name: str, value: Any) -> int | None:
    """`value` as an int for an integer/long shape, or None when it is not one (2.5, "2", true)."""
    if not is_number(value):
        return None
    if isinstance(value, float):
        if not value.is_integer():
            return None
        value = int(value)
    low, high = INTEGER_RANGE[type_name]
    return value if low <= value <= high else None


def as_float(value: Any) -> float | None:
    """`value` as a float for a float/double shape (JSON integers are fine), else None."""
    return float(value) if is_number(value) else None


def as_datetime(value: Any) -> datetime | None:
    """A timestamp member as an aware UTC datetime, or None when it cannot be one.

    boto3 sends epoch seconds (a float) for JSON protocols; other clients send ISO-8601 text,
    which AWS also accepts. An already-parsed datetime (a boto3 response) is accepted as is.
    """
    if isinstance(value, datetime):
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    if is_number(value):
        if not math.isfinite(value):
            return None
        try:
            return datetime.fromtimestamp(value, tz=UTC)
        except (OverflowError, OSError, ValueError):
            return None
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return None
        return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


def epoch_seconds(value: datetime) -> float:
    """A timestamp as the JSON protocols send it: epoch seconds, millisecond precision.

    Truncated like Java's epoch millis (and botocore's own millisecond mode), and built from
    whole seconds plus milliseconds so that no float rounding moves it across a millisecond.
    """
    aware = value if value.tzinfo else value.replace(tzinfo=UTC)
    seconds = calendar.timegm(aware.utctimetuple())
    return seconds + (aware.microsecond // 1000) / 1000


def as_bytes(value: Any) -> bytes | None:
    """A blob member: base64 text on the wire, or bytes already decoded; None if neither."""
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    if isinstance(value, str):
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            return None
    return None


def base64_text(value: bytes | bytearray | str) -> str:
    raw = value.encode() if isinstance(value, str) else bytes(value)
    return base64.b64encode(raw).decode("ascii")
