"""An already-running model server named by `SHADOWLAB_UPSTREAM_URL`, used instead of a worker.

Such a server speaks the same container contract (`/ping`, `/invocations`); hosting only checks
that it answers `/ping` before the variant counts as up. The probe is a few bytes over an asyncio
stream: no HTTP client library is worth its import here.

The server connects only to hosts on its allow-list (`UpstreamHosts`, setting `upstream_hosts`,
loopback by default). This is the check that counts: CreateModel refuses such URLs too, but a
model stored earlier or under another list reaches this point. A refused host is never
connected to, so its FailureReason is the same whether a port is open, closed or filtered.
"""

from __future__ import annotations

import asyncio
import contextlib
from urllib.parse import urlsplit

from shadowlab.domain.environment import UPSTREAM_URL_VARIABLE, UpstreamHosts

__all__ = ["UPSTREAM_URL_VARIABLE", "UpstreamError", "UpstreamHosts", "parse_upstream_url", "ping"]


class UpstreamError(Exception):
    pass


def parse_upstream_url(url: str, allowed: UpstreamHosts) -> tuple[str, int]:
    """`http://host:port` -> (host, port); the data plane speaks plain HTTP to a host and port,
    so schemes, paths and credentials that it could not honour are refused here, and so is a
    host that `allowed` does not list."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise UpstreamError(f"{UPSTREAM_URL_VARIABLE} {url!r}: {exc}") from exc
    if parts.scheme != "http" or not parts.hostname:
        raise UpstreamError(f"{UPSTREAM_URL_VARIABLE} {url!r}: expected http://host:port")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        raise UpstreamError(
            f"{UPSTREAM_URL_VARIABLE} {url!r}: only http://host:port is supported (no path, "
            "query or credentials); the server must answer /ping and /invocations at its root"
        )
    if not allowed.allows(parts.hostname):
        raise UpstreamError(allowed.refusal(parts.hostname))
    return parts.hostname, port if port is not None else 80


async def ping(host: str, port: int, timeout: float = 5.0) -> None:
    """Raise UpstreamError unless `GET /ping` answers 200 within `timeout` seconds."""
    try:
        status_line = await asyncio.wait_for(_get_ping(host, port), timeout)
    except TimeoutError:
        raise UpstreamError(f"no answer within {timeout:g}s") from None
    except OSError as exc:
        raise UpstreamError(str(exc) or type(exc).__name__) from exc
    parts = status_line.split(None, 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/"):
        raise UpstreamError(f"not an HTTP response: {status_line[:100]!r}")
    if parts[1] != b"200":
        raise UpstreamError(f"answered {status_line.decode('latin-1').strip()}")


async def _get_ping(host: str, port: int) -> bytes:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        host_header = f"[{host}]" if ":" in host else host
        request = f"GET /ping HTTP/1.1\r\nHost: {host_header}:{port}\r\nConnection: close\r\n\r\n"
        writer.write(request.encode())
        await writer.drain()
        return await reader.readline()
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
