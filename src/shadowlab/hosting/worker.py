"""One model instance: loads a model directory and serves SageMaker's container contract.

    python -m shadowlab.hosting.worker --model-dir DIR [--host H] [--port P]
        [--ready-fd N | --ready-file PATH] [--max-body-bytes N] [--parent-pid PID]
        [--run-as UID:GID] [--max-open-files N] [--max-address-space-mb N]

`GET /ping` answers 200 once the model is loaded; `POST /invocations` runs the model. With
`--port 0` the kernel picks the port, and the worker reports it as one JSON line, `{"port": N}`,
on the ready fd/file once it listens, or `{"error": "..."}` (then exits 3) when the model does
not load. The container's `Environment` arrives as this process's environment. Logs go to stderr.
Before the model loads, the worker confines itself (see `isolation`): it becomes `--run-as`,
asks to die with `--parent-pid`, and lowers its resource limits.

Predictions run one at a time, as in one SageMaker model server worker. While a model is fast
they run inline on the event loop (a thread hop would cost more than the prediction); once they
take longer than INLINE_BUDGET they move to one dedicated thread (`predictthread`), so `/ping`
and request parsing stay responsive during long predictions.

No work is done for nobody: the queue in front of that thread is bounded (`max_queue`, from
`SHADOWLAB_WORKER_MAX_QUEUE`, default 100 as the MMS model server's job queue); a request that
finds it full is answered 503 at once. A request whose client hung up while it waited, or whose
deadline (`X-Shadowlab-Timeout-Ms`, sent by the data plane) passed while it waited, is not run.
Refusals carry `X-Shadowlab-Shed`, which tells the data plane the model never ran. `GET
/shadowlab/worker` returns this worker's counters as JSON, so tests and operators can see what
it ran and what it skipped.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
import time
from pathlib import Path

import uvloop

from shadowlab.hosting.httpserver import (
    Answer,
    HttpConnection,
    Request,
    render,
    render_error,
    render_stream_head,
)
from shadowlab.hosting.isolation import apply_limits, die_with_parent, run_as
from shadowlab.hosting.predictthread import PredictionThread
from shadowlab.hosting.runtime import (
    CUSTOM_ATTRIBUTES,
    InvocationError,
    ModelLoadError,
    ModelRuntime,
    RequestContext,
)
from shadowlab.hosting.streaming import StreamedOutput, StreamedResponse

__all__ = ["MAX_BODY_BYTES", "ModelServer", "main"]

log = logging.getLogger("shadowlab.hosting.worker")

# InvokeEndpoint's payload limit for real-time endpoints (6 MiB).
MAX_BODY_BYTES = 6 * 1024 * 1024
# Recent mean prediction time above which predictions leave the event loop.
INLINE_BUDGET = 0.001
MAX_QUEUE_VARIABLE = "SHADOWLAB_WORKER_MAX_QUEUE"
DEFAULT_MAX_QUEUE = 100
_TIMEOUT_HEADER = b"x-shadowlab-timeout-ms"
_SHED_QUEUE_FULL = b"X-Shadowlab-Shed: queue-full\r\n"
_SHED_EXPIRED = b"X-Shadowlab-Shed: expired\r\n"
_SHED_CLIENT_GONE = b"X-Shadowlab-Shed: client-gone\r\n"  # nobody reads it; for the logs
LOAD_FAILED_EXIT = 3
_CUSTOM_ATTRIBUTES = CUSTOM_ATTRIBUTES.encode()
_CUSTOM_ATTRIBUTES_HEADER = b"X-Amzn-SageMaker-Custom-Attributes: "


class WorkerCounters:
    """What this worker did with the invocations it received.

    received = ran + rejected + expired + abandoned + queued, where `ran` counts finished runs
    and `queued` (reported by the server) those waiting or running. late: runs that finished
    after their deadline (the caller had given up: wasted work).
    """

    __slots__ = ("abandoned", "expired", "late", "ran", "received", "rejected")

    def __init__(self) -> None:
        self.received = 0
        self.ran = 0
        self.rejected = 0  # the queue was full
        self.expired = 0  # the deadline passed while queued
        self.abandoned = 0  # the client hung up while queued
        self.late = 0

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.__slots__}


class ModelServer:
    """Routes requests to the runtime; the `Responder` of every connection."""

    def __init__(
        self,
        runtime: ModelRuntime,
        loop: asyncio.AbstractEventLoop,
        max_queue: int = DEFAULT_MAX_QUEUE,
    ) -> None:
        self.runtime = runtime
        self.loop = loop
        self.max_queue = max_queue
        self.thread = PredictionThread(loop)
        self.mean_seconds = 0.0
        self.counters = WorkerCounters()

    def __call__(self, request: Request) -> Answer | asyncio.Future[Answer]:
        path, method = request.path, request.method
        if path == b"/invocations":
            if method != b"POST":
                return self._error(request, 405, "use POST /invocations")
            self.counters.received += 1
            deadline = _deadline(request)
            thread = self.thread
            if thread.busy or self.mean_seconds > INLINE_BUDGET:
                if thread.busy >= self.max_queue:
                    self.counters.rejected += 1
                    message = f"the model server's queue is full ({self.max_queue} requests)"
                    return self._error(request, 503, message, _SHED_QUEUE_FULL)
                # Queue behind the thread's work so predictions never overlap.
                return thread.submit(self._invoke, request, deadline)
            result = self._invoke(request, deadline)
            if isinstance(result, StreamedResponse):
                thread.pump(result)
            return result
        if path == b"/ping":
            if method not in (b"GET", b"HEAD"):
                return self._error(request, 405, "use GET /ping")
            return render(200, keep_alive=request.keep_alive, http10=request.http10)
        if path == b"/shadowlab/worker" and method == b"GET":
            counters = {**self.counters.as_dict(), "queued": self.thread.busy, "pid": os.getpid()}
            body = json.dumps(counters).encode()
            return render(
                200,
                body,
                b"application/json",
                keep_alive=request.keep_alive,
                http10=request.http10,
            )
        return self._error(
            request, 404, "only /ping, /invocations and GET /shadowlab/worker are served"
        )

    def _invoke(self, request: Request, deadline: float | None) -> Answer:
        # Checked when the model is about to run, which is after any wait in the queue.
        if request.abandoned:
            self.counters.abandoned += 1
            return self._error(request, 503, "the client went away", _SHED_CLIENT_GONE)
        if deadline is not None and time.monotonic() >= deadline:
            self.counters.expired += 1
            return self._error(request, 503, "the request's deadline passed", _SHED_EXPIRED)
        try:
            return self._run(request)
        finally:
            self.counters.ran += 1
            if deadline is not None and time.monotonic() > deadline:
                self.counters.late += 1

    def _run(self, request: Request) -> Answer:
        content_type = request.header(b"content-type")
        accept = request.header(b"accept")
        request_attributes = request.header(_CUSTOM_ATTRIBUTES)
        context = None
        if self.runtime.wants_context:
            headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in request.headers}
            context = RequestContext(str(self.runtime.model_dir), headers)
        started = time.perf_counter()
        try:
            body, response_type = self.runtime.invoke(
                request.body,
                content_type.decode("latin-1") if content_type is not None else None,
                accept.decode("latin-1") if accept is not None else None,
                context,
            )
            extra = b""
            attributes = request_attributes  # echoed unless the model answers with its own
            if context is not None and CUSTOM_ATTRIBUTES in context.response_headers:
                attributes = _header_value(context.response_headers[CUSTOM_ATTRIBUTES])
            if attributes is not None:
                extra = _CUSTOM_ATTRIBUTES_HEADER + attributes + b"\r\n"
            framed_type = _header_value(response_type)
        except InvocationError as exc:
            status = exc.status if 400 <= exc.status <= 599 else 500
            if status >= 500:
                log.warning("invocation failed: %s", exc.message, exc_info=exc.__cause__)
            return self._error(request, status, exc.message)
        finally:
            elapsed = time.perf_counter() - started
            self.mean_seconds += (elapsed - self.mean_seconds) * 0.2
        if isinstance(body, StreamedOutput):
            head = render_stream_head(
                200, framed_type, extra, keep_alive=request.keep_alive, http10=request.http10
            )

            def error(status: int, message: str) -> bytes:
                return self._error(request, status, message)

            return StreamedResponse(
                head, body, lambda: request.abandoned, error, chunked=not request.http10
            )
        return render(
            200, body, framed_type, extra, keep_alive=request.keep_alive, http10=request.http10
        )

    @staticmethod
    def _error(request: Request, status: int, message: str, extra: bytes = b"") -> bytes:
        return render_error(
            status, message, keep_alive=request.keep_alive, http10=request.http10, extra=extra
        )


def _deadline(request: Request) -> float | None:
    """The monotonic time after which nobody waits for this answer, if the caller said."""
    raw = request.header(_TIMEOUT_HEADER)
    if raw is None or not raw.isdigit() or not raw.isascii():
        return None
    return time.monotonic() + int(raw) / 1000.0


def _header_value(value: str) -> bytes:
    # Values come from model code; a CR or LF would let it forge headers or split the response.
    if "\r" in value or "\n" in value:
        raise InvocationError(500, f"model returned an invalid header value {value!r}")
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError as exc:
        raise InvocationError(500, f"model returned a non-latin-1 header value {value!r}") from exc


async def serve(
    runtime: ModelRuntime,
    host: str,
    port: int,
    max_body: int,
    on_listening: ReadyReporter,
    grace: float = 10.0,
) -> None:
    """Serve until SIGTERM/SIGINT (or the parent dies), then finish what was read."""
    loop = asyncio.get_running_loop()
    app = ModelServer(runtime, loop, _max_queue())
    connections: set[HttpConnection] = set()
    server = await loop.create_server(
        lambda: HttpConnection(app, max_body, connections), host, port, backlog=1024
    )
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    parent = os.getppid()
    watchdog = loop.create_task(_watch_parent(parent, stop))
    bound = server.sockets[0].getsockname()[1]
    log.info("serving %s on %s:%d (pid %d)", runtime.model_dir, host, bound, os.getpid())
    on_listening({"port": bound})
    try:
        await stop.wait()
    finally:
        watchdog.cancel()
        server.close()
        for connection in list(connections):
            connection.close_when_done()
        deadline = loop.time() + grace
        while connections and loop.time() < deadline:
            await asyncio.sleep(0.02)
        await server.wait_closed()
        app.thread.shutdown()
        log.info("stopped")


def _max_queue() -> int:
    raw = os.environ.get(MAX_QUEUE_VARIABLE, "")
    if raw.strip().isascii() and raw.strip().isdigit() and int(raw) > 0:
        return int(raw)
    if raw:
        log.warning("ignoring %s=%r: not a positive integer", MAX_QUEUE_VARIABLE, raw)
    return DEFAULT_MAX_QUEUE


async def _watch_parent(parent: int, stop: asyncio.Event) -> None:
    # A supervisor that dies without stopping us (SIGKILL, crash) must not leave a worker
    # holding a port and memory: once reparented, shut down.
    while os.getppid() == parent:
        await asyncio.sleep(1.0)
    log.warning("parent process %d is gone; shutting down", parent)
    stop.set()


class ReadyReporter:
    """Writes the single ready/error JSON line to the fd or file the supervisor gave."""

    def __init__(self, fd: int | None, path: Path | None) -> None:
        self.fd = fd
        self.path = path

    def __call__(self, message: dict[str, object]) -> None:
        line = json.dumps(message).encode() + b"\n"
        if self.fd is not None:
            try:
                os.write(self.fd, line)
            finally:
                os.close(self.fd)  # EOF tells the reader the message is complete
                self.fd = None
        if self.path is not None:
            # Write then rename, so a reader polling the file never sees half a message.
            partial = self.path.with_name(self.path.name + ".partial")
            partial.write_bytes(line)
            partial.replace(self.path)
            self.path = None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m shadowlab.hosting.worker")
    parser.add_argument("--model-dir", required=True, type=Path)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)  # SageMaker's container port
    parser.add_argument("--ready-fd", type=int)
    parser.add_argument("--ready-file", type=Path)
    parser.add_argument("--max-body-bytes", type=int, default=MAX_BODY_BYTES)
    parser.add_argument("--log-level", default=os.environ.get("SHADOWLAB_WORKER_LOG_LEVEL", "INFO"))
    parser.add_argument("--parent-pid", type=int, help="exit unless this is still the parent")
    parser.add_argument("--run-as", metavar="UID:GID", help="drop to this user (from root)")
    parser.add_argument("--max-open-files", type=int, default=0, help="RLIMIT_NOFILE (0: as is)")
    parser.add_argument("--max-address-space-mb", type=int, default=0, help="RLIMIT_AS (0: as is)")
    args = parser.parse_args(argv)
    if args.run_as:
        run_as(args.run_as)
    if args.parent_pid is not None:
        die_with_parent(args.parent_pid)
    apply_limits(args.max_open_files, args.max_address_space_mb)
    logging.basicConfig(
        stream=sys.stderr,
        level=args.log_level.upper(),
        format="%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s",
    )
    report = ReadyReporter(args.ready_fd, args.ready_file)
    try:
        runtime = ModelRuntime.load(args.model_dir)
    except ModelLoadError as exc:
        log.error("model failed to load: %s", exc, exc_info=exc.__cause__)
        report({"error": str(exc)})
        return LOAD_FAILED_EXIT
    except Exception as exc:  # anything else at load time is still the model's failure
        log.exception("model failed to load")
        report({"error": f"{type(exc).__name__}: {exc}"})
        return LOAD_FAILED_EXIT
    try:
        uvloop.run(serve(runtime, args.host, args.port, args.max_body_bytes, report))
    except OSError as exc:
        log.error("cannot listen on %s:%d: %s", args.host, args.port, exc)
        if report.fd is not None or report.path is not None:
            report({"error": f"cannot listen on {args.host}:{args.port}: {exc}"})
        return 4
    return 0


if __name__ == "__main__":
    sys.exit(main())
