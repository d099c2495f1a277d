"""Raw-socket helpers for tests that play a client byte by byte."""

from __future__ import annotations

import socket


def read_until_closed(sock: socket.socket, limit_s: float = 10.0) -> bytes:
    """Everything the server sends until it closes (a reset counts as closed)."""
    data = b""
    sock.settimeout(limit_s)
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass
    return data
