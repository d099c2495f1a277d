"""A small in-process ASGI 3 bridge: every non-invocation request goes to the app through here.

Only invocations are hot, so this side may spend a Task per request. The response is buffered
(control-plane answers are small) and framed by the front connection, which keeps pipelined
answers in order. The lifespan protocol runs on server start and stop, as uvicorn's "auto" mode
does: an app that does not speak it is simply run without it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import unquote

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# Framing is ours (we buffer and set Content-Length); the app's framing headers do not apply.
_HOP_BY_HOP = frozenset(
    {b"connection", b"keep-alive", b"transfer-encoding", b"content-length", b"upgrade"}
)


def http_scope(
    method: bytes,
    url: bytes,
    headers: list[tuple[bytes, bytes]],
    http_version: str,
    client: tuple[str, int] | None,
    server: tuple[str, int] | None,
    state: dict[str, Any],
) -> Scope:
    raw_path, _, query = url.partition(b"?")
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": http_version,
        "method": method.decode("ascii"),
        "scheme": "http",
        "path": unquote(raw_path.decode("latin-1")),
        "raw_path": raw_path,
        "query_string": query,
        "root_path": "",
        "headers": headers,
        "client": client,
        "server": server,
        # Lifespan state is shared by reference per request, as uvicorn does (shallow copy).
        "state": dict(state),
    }


class BufferedResponse:
    __slots__ = ("body", "headers", "status")

    def __init__(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body


class HttpCall:
    """One request through the app: `receive` yields the body, `send` is collected."""

    def __init__(self, app: ASGIApp, scope: Scope, body: bytes) -> None:
        self._app = app
        self._scope = scope
        self._body: bytes | None = body
        # Set when the client goes away or the response is complete; later receive() calls
        # then report http.disconnect, which is what apps listening for it expect.
        self._over = asyncio.Event()
        self._status = 0
        self._headers: list[tuple[bytes, bytes]] = []
        self._chunks: list[bytes] = []
        self._complete = False
        self.declared_length: bytes | None = None  # kept for HEAD, whose body is not sent

    def disconnect(self) -> None:
        self._over.set()

    async def _receive(self) -> Message:
        body, self._body = self._body, None
        if body is not None:
            return {"type": "http.request", "body": body, "more_body": False}
        await self._over.wait()
        return {"type": "http.disconnect"}

    async def _send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            if self._status:
                raise RuntimeError("http.response.start sent twice")
            self._status = int(message["status"])
            for raw_name, raw_value in message.get("headers", ()):
                name, value = bytes(raw_name).lower(), bytes(raw_value)
                if name == b"content-length":
                    self.declared_length = value
                if name not in _HOP_BY_HOP:
                    self._headers.append((name, value))
        elif kind == "http.response.body":
            if not self._status:
                raise RuntimeError("http.response.body sent before http.response.start")
            if self._complete:
                return
            self._chunks.append(bytes(message.get("body", b"")))
            if not message.get("more_body", False):
                self._complete = True
                self._over.set()

    async def run(self) -> BufferedResponse:
        scope = self._scope
        try:
            await self._app(scope, self._receive, self._send)
        except Exception:
            log.exception("ASGI application failed on %s %s", *_where(scope))
            return _internal_error()
        finally:
            self._over.set()
        if not self._complete:
            log.error("ASGI application gave no complete response to %s %s", *_where(scope))
            return _internal_error()
        return BufferedResponse(self._status, self._headers, b"".join(self._chunks))


def _where(scope: Scope) -> tuple[str, str]:
    return str(scope["method"]), str(scope["path"])


def _internal_error() -> BufferedResponse:
    return BufferedResponse(
        500, [(b"content-type", b"text/plain; charset=utf-8")], b"Internal Server Error"
    )


class Lifespan:
    """Runs the app's lifespan protocol: startup before serving, shutdown after."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.state: dict[str, Any] = {}
        self._inbox: asyncio.Queue[Message] = asyncio.Queue()
        self._started: asyncio.Future[None] | None = None
        self._stopped: asyncio.Future[None] | None = None
        self._task: asyncio.Task[None] | None = None
        self._supported = True

    async def startup(self) -> None:
        loop = asyncio.get_running_loop()
        self._started = loop.create_future()
        self._stopped = loop.create_future()
        self._task = loop.create_task(self._run())
        await self._inbox.put({"type": "lifespan.startup"})
        await asyncio.wait({self._started, self._task}, return_when=asyncio.FIRST_COMPLETED)
        if self._started.done():
            self._started.result()  # raises if the app sent lifespan.startup.failed
            return
        # The app returned or raised before completing startup: it does not do lifespan.
        self._supported = False
        self._started.cancel()

    async def shutdown(self, timeout_s: float = 10.0) -> None:
        if self._task is None or self._stopped is None:
            return
        if self._supported and not self._task.done():
            await self._inbox.put({"type": "lifespan.shutdown"})
            await asyncio.wait({self._stopped, self._task}, timeout=timeout_s)
        if not self._task.done():
            self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        if self._stopped.done() and not self._stopped.cancelled():
            exc = self._stopped.exception()
            if exc is not None:
                log.error("ASGI lifespan shutdown failed: %s", exc)
        else:
            self._stopped.cancel()

    async def _run(self) -> None:
        scope: Scope = {
            "type": "lifespan",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "state": self.state,
        }
        try:
            await self.app(scope, self._inbox.get, self._send)
        except Exception:
            if self._started is not None and self._started.done():
                log.exception("ASGI lifespan failed")
            else:
                log.debug("ASGI app does not support lifespan; running without it")

    async def _send(self, message: Message) -> None:
        assert self._started is not None and self._stopped is not None
        kind = message["type"]
        if kind == "lifespan.startup.complete":
            self._started.set_result(None)
        elif kind == "lifespan.startup.failed":
            self._started.set_exception(
                RuntimeError(f"ASGI startup failed: {message.get('message', '')}")
            )
        elif kind == "lifespan.shutdown.complete":
            self._stopped.set_result(None)
        elif kind == "lifespan.shutdown.failed":
            self._stopped.set_exception(
                RuntimeError(f"ASGI shutdown failed: {message.get('message', '')}")
            )
