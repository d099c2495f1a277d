"""How a front connection refuses: an error answered after what is pending, then a hang-up.

FrontConnection (http1) calls in here only once it has decided to refuse: a malformed or
oversized request head, a protocol upgrade, a bug in a parser callback, a request too slow to
arrive, or a body announced with `Expect: 100-continue` that is over its limit. A request that is
answered normally never reaches this module, so the hot path pays nothing for it.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import httptools

from shadowlab.dataplane import wire
from shadowlab.dataplane.request import Request
from shadowlab.dataplane.wire import CONNECTION_CLOSE

if TYPE_CHECKING:
    from shadowlab.dataplane.http1 import FrontConnection

# Records keep the name they had while this code lived in http1: log filters know the front
# connection's failures by it.
log = logging.getLogger("shadowlab.dataplane.http1")


class HeadTooLarge(Exception):
    """A request head over the cap; raised in a parser callback or after a read."""


def parse_failed(
    conn: FrontConnection,
    exc: HeadTooLarge | httptools.HttpParserUpgrade | httptools.HttpParserError,
) -> None:
    """Answer what feeding the parser raised. httptools reports an exception raised in one of
    our callbacks as a parser error whose context is that exception."""
    if isinstance(exc, HeadTooLarge):
        reject(conn, 431, "Request header fields too large")
    elif isinstance(exc, httptools.HttpParserUpgrade):
        # We speak no other protocol; answer what was parsed, then hang up.
        stop_reading_then_close(conn)
    else:
        cause = exc.__context__
        if isinstance(cause, HeadTooLarge):
            reject(conn, 431, "Request header fields too large")
        elif cause is not None:
            log.error("data plane request callback failed", exc_info=cause)
            reject(conn, 500, "Internal error")
        else:
            reject(conn, 400, f"Malformed HTTP request: {exc}")


def reject(conn: FrontConnection, status: int, text: str) -> None:
    """A protocol-level error: answer it after what is pending, then close."""
    if conn.req is not None:
        conn.guard.release(conn.req)
    conn.req = None
    req = Request(b"")
    req.keep_alive = False
    conn.pending.append(req)
    stop_reading_then_close(conn)
    conn.respond(req, wire.text_response(status, text, CONNECTION_CLOSE), close=True)


def refuse_before_body(conn: FrontConnection, req: Request) -> None:
    """`req` is too large and its client waits for permission to send the body (Expect:
    100-continue): answer with the route's "too large" error now instead of reading the body."""
    conn.req = None
    req.keep_alive = False
    req.connection_header = CONNECTION_CLOSE
    conn.pending.append(req)
    stop_reading_then_close(conn)
    conn.dispatch(req)


def stop_reading_then_close(conn: FrontConnection) -> None:
    """Read no more requests; close once what is pending has been answered."""
    conn.closing = True
    conn.reading_paused = True
    if conn.transport is not None and not conn.lost:
        conn.transport.pause_reading()
    if not conn.pending:
        conn.close()
