"""The worker's one prediction thread: what leaves the event loop, and how its answers return.

A prediction handed over here (see worker.INLINE_BUDGET for when) queues behind the thread's
earlier work, so predictions never overlap; `busy` counts those handed over and not yet done,
which is the worker's queue. A streamed answer's sync source is the prediction itself (the
model's generator computes each piece), so it is iterated here too and holds the thread like
one; an async source runs as a task on the loop instead.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import cast

from shadowlab.hosting.httpserver import Answer, Request
from shadowlab.hosting.streaming import StreamedResponse

__all__ = ["PredictionThread"]

# Records keep the name they had while this code lived in the worker module.
log = logging.getLogger("shadowlab.hosting.worker")

Predict = Callable[[Request, float | None], Answer]


class PredictionThread:
    """Hands predictions and streamed answers to one dedicated thread; all but the `_in_thread`
    step run on the event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="predict")
        self.busy = 0  # predictions handed to the thread and not yet done

    def submit(
        self, predict: Predict, request: Request, deadline: float | None
    ) -> asyncio.Future[Answer]:
        """Run `predict(request, deadline)` in the thread. The answer is its own future: a
        streamed one is handed over while the thread still runs the model's generator."""
        self.busy += 1
        answer: asyncio.Future[Answer] = self.loop.create_future()
        work = self.loop.run_in_executor(
            self.executor, self._in_thread, predict, request, deadline, answer
        )
        work.add_done_callback(lambda done: self._thread_done(done, answer))
        return answer

    def _in_thread(
        self,
        predict: Predict,
        request: Request,
        deadline: float | None,
        answer: asyncio.Future[Answer],
    ) -> None:
        result = predict(request, deadline)
        self.loop.call_soon_threadsafe(_settle, answer, result)
        if isinstance(result, StreamedResponse):
            if isinstance(result.output.items, AsyncIterator):
                self.loop.call_soon_threadsafe(result.start_async)
            else:
                result.pump_in_thread(self.loop)

    def _thread_done(self, work: asyncio.Future[None], answer: asyncio.Future[Answer]) -> None:
        self.busy -= 1
        if answer.done():
            return
        if work.cancelled():
            answer.cancel()
        elif work.exception() is not None:
            answer.set_exception(cast(BaseException, work.exception()))

    def pump(self, response: StreamedResponse) -> None:
        """A streamed answer produced on the loop (the fast path): its pieces are produced in
        the prediction thread (sync) or as a task (async), never by blocking the loop."""
        if isinstance(response.output.items, AsyncIterator):
            response.start_async()
            return
        self.busy += 1
        work = self.loop.run_in_executor(self.executor, response.pump_in_thread, self.loop)
        work.add_done_callback(self._pump_done)

    def _pump_done(self, work: asyncio.Future[None]) -> None:
        self.busy -= 1
        if not work.cancelled() and work.exception() is not None:
            log.error("streaming an answer failed", exc_info=work.exception())

    def shutdown(self) -> None:
        """Drop what is queued; a prediction already running finishes in the background."""
        self.executor.shutdown(wait=False, cancel_futures=True)


def _settle(answer: asyncio.Future[Answer], result: Answer) -> None:
    if not answer.done():
        answer.set_result(result)
