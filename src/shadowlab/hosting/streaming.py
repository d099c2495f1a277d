"""Streamed answers of the worker: a chunked HTTP response fed piece by piece as the model yields.

When model code returns a generator (or any iterator, or an async generator) the runtime hands
back a `StreamedOutput`; the worker answers `/invocations` with `Transfer-Encoding: chunked` and
writes each piece as one chunk the moment it is produced, which is what SageMaker's
InvokeEndpointWithResponseStream relays to its caller as PayloadPart events.

The head waits for the first piece, so model code that fails before producing anything (bad
input, say) still answers with its error status, like a non-streamed answer. A failure after
that cannot change the status any more: the connection is closed without the terminating chunk,
which any HTTP client (the data plane too) reads as a broken stream.

A sync iterator runs in the worker's prediction thread (the pieces cross to the event loop with
`call_soon_threadsafe`), so a model that sleeps or computes between tokens never stalls the loop;
an async generator runs as a task on the loop. Either stops early once the client is gone.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from shadowlab.hosting.codecs import InvocationError

__all__ = ["StreamedOutput", "StreamedResponse", "is_stream"]

log = logging.getLogger("shadowlab.hosting.stream")

_LAST_CHUNK = b"0\r\n\r\n"


def is_stream(value: object) -> bool:
    """A handler result to stream: an iterator or async iterator (bytes and str are neither)."""
    return isinstance(value, Iterator | AsyncIterator)


class StreamedOutput:
    """What the runtime returns for a streamed answer: the pieces still to be produced, and how
    each becomes bytes (str is UTF-8; anything else is the runtime's error)."""

    __slots__ = ("items", "to_bytes")

    def __init__(
        self, items: Iterator[Any] | AsyncIterator[Any], to_bytes: Callable[[Any], bytes]
    ) -> None:
        self.items = items
        self.to_bytes = to_bytes


class StreamedResponse:
    """One response whose body arrives over time. Every method runs on the event loop except
    `pump_in_thread`; the connection takes the bytes ready so far with `take`, and is told
    through `on_data` when there are more (or the end)."""

    __slots__ = (
        "_error",
        "abandoned",
        "broken",
        "chunked",
        "ended",
        "head",
        "on_data",
        "output",
        "pieces",
        "started",
        "task",
    )

    def __init__(
        self,
        head: bytes,
        output: StreamedOutput,
        abandoned: Callable[[], bool],
        error: Callable[[int, str], bytes],
        *,
        chunked: bool = True,
    ) -> None:
        self.head = head  # status line and headers, through the blank line
        self.output = output
        self.abandoned = abandoned  # true once nobody will read the rest
        self._error = error  # a complete error response, for a failure before the first piece
        self.chunked = chunked  # false for an HTTP/1.0 client: raw body, closed at the end
        self.pieces: list[bytes] = []
        self.started = False
        self.ended = False
        self.broken = False  # failed after the head went out: close without the last chunk
        self.on_data: Callable[[], None] | None = None
        self.task: asyncio.Task[None] | None = None

    # -- on the loop -----------------------------------------------------------------------
    def write(self, data: bytes) -> None:
        if self.ended or not data:
            return  # an empty chunk would end a chunked body
        if not self.started:
            self.started = True
            self.pieces.append(self.head)
        self.pieces.append(b"%x\r\n%s\r\n" % (len(data), data) if self.chunked else data)
        self._notify()

    def end(self) -> None:
        if self.ended:
            return
        if not self.started:
            self.started = True
            self.pieces.append(self.head)
        if self.chunked:
            self.pieces.append(_LAST_CHUNK)
        self.ended = True
        self._notify()

    def fail(self, exc: BaseException) -> None:
        if self.ended:
            return
        status, message = 500, f"{type(exc).__name__}: {exc}"
        if isinstance(exc, InvocationError):
            status, message = exc.status if 400 <= exc.status <= 599 else 500, exc.message
        if status >= 500:
            log.warning("streamed invocation failed: %s", message, exc_info=exc)
        if self.started:
            self.broken = True
        else:
            self.started = True
            self.pieces = [self._error(status, message)]
        self.ended = True
        self._notify()

    def take(self) -> bytes:
        pieces, self.pieces = self.pieces, []
        return b"".join(pieces)

    def _notify(self) -> None:
        if self.on_data is not None:
            self.on_data()

    # -- producing ---------------------------------------------------------------------------
    def start_async(self) -> None:
        """Run an async source as a task on the running loop."""
        self.task = asyncio.get_running_loop().create_task(self._pump_async())

    async def _pump_async(self) -> None:
        items = self.output.items
        assert isinstance(items, AsyncIterator)
        try:
            async for item in items:
                if self.abandoned():
                    break
                self.write(self.output.to_bytes(item))
        except Exception as exc:
            self.fail(exc)
        else:
            self.end()
        finally:
            closer = getattr(items, "aclose", None)
            if closer is not None:
                await closer()

    def pump_in_thread(self, loop: asyncio.AbstractEventLoop) -> None:
        """Iterate a sync source here (the prediction thread); hand each piece to the loop."""
        items = self.output.items
        assert isinstance(items, Iterator)
        call = loop.call_soon_threadsafe
        try:
            for item in items:
                if self.abandoned():
                    break
                call(self.write, self.output.to_bytes(item))
        except Exception as exc:
            call(self.fail, exc)
        else:
            call(self.end)
        finally:
            closer = getattr(items, "close", None)
            if closer is not None:
                closer()  # runs the generator's `finally`: the model's cleanup happens now
