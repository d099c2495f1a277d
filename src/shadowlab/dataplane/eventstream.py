"""AWS event-stream messages (`application/vnd.amazon.eventstream`): the encoding side.

botocore ships the decoder (`botocore.eventstream.EventStreamBuffer`) but no encoder, and
InvokeEndpointWithResponseStream answers in this framing. One message is:

    prelude   total length (uint32), headers length (uint32), CRC32 of those 8 bytes (uint32)
    headers   per header: name length (uint8), name, value type (uint8), value
    payload   raw bytes
    trailer   CRC32 of every byte before it (uint32)

all big-endian, CRC32 as zlib computes it. Only string-valued headers (type 7: uint16 length,
UTF-8) are needed here. tests/dataplane/test_eventstream.py reads every kind of message back
with botocore's own parser, so these bytes are exactly what boto3 accepts.
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Iterable

__all__ = [
    "CONTENT_TYPE",
    "encode_message",
    "exception_event",
    "http_chunk",
    "payload_part",
]

CONTENT_TYPE = b"application/vnd.amazon.eventstream"
_STRING = 7
_PRELUDE = struct.Struct("!II")
_UINT32 = struct.Struct("!I")
MAX_HEADER_VALUE = 0xFFFF  # a string header's length field is a uint16


def _header(name: str, value: str) -> bytes:
    raw_name = name.encode("utf-8")
    raw_value = value.encode("utf-8")
    if len(raw_name) > 0xFF or len(raw_value) > MAX_HEADER_VALUE:
        raise ValueError(f"event-stream header {name!r} is too long")
    return (
        bytes((len(raw_name),))
        + raw_name
        + bytes((_STRING,))
        + struct.pack("!H", len(raw_value))
        + raw_value
    )


def encode_headers(headers: Iterable[tuple[str, str]]) -> bytes:
    return b"".join(_header(name, value) for name, value in headers)


def encode_message(header_block: bytes, payload: bytes) -> bytes:
    """One message from pre-encoded headers (`encode_headers`) and a payload."""
    total = 12 + len(header_block) + len(payload) + 4
    prelude = _PRELUDE.pack(total, len(header_block))
    prelude += _UINT32.pack(zlib.crc32(prelude))
    # The trailer covers prelude, headers and payload; crc32 is incremental, so no joined copy
    # of a large payload is made just to checksum it.
    crc = zlib.crc32(payload, zlib.crc32(header_block, zlib.crc32(prelude)))
    return b"".join((prelude, header_block, payload, _UINT32.pack(crc)))


# PayloadPart's headers never change: encoded once.
_PAYLOAD_PART = encode_headers(
    (
        (":event-type", "PayloadPart"),
        (":content-type", "application/octet-stream"),
        (":message-type", "event"),
    )
)


def payload_part(data: bytes) -> bytes:
    """A `PayloadPart` event whose `Bytes` (the event payload) is `data`."""
    return encode_message(_PAYLOAD_PART, data)


def exception_event(exception_type: str, fields: dict[str, str]) -> bytes:
    """A modelled stream exception (`ModelStreamError`, `InternalStreamFailure`): botocore
    raises it as EventStreamError with this code and the payload's `Message`."""
    headers = encode_headers(
        (
            (":exception-type", exception_type),
            (":content-type", "application/json"),
            (":message-type", "exception"),
        )
    )
    return encode_message(headers, json.dumps(fields).encode("utf-8"))


def http_chunk(data: bytes) -> bytes:
    """`data` as one HTTP/1.1 chunk: one event per chunk, so a client's chunked reader hands
    each event over as soon as it arrives."""
    return b"%x\r\n%s\r\n" % (len(data), data)
