"""The capture process: a ``CaptureWriter`` fed by the server through a pipe (see ``relay``).

Run as ``python -m shadowlab.capture.process '<json>'`` by ``CaptureRelay``, never by hand; the
argument names the spool directory, the store (``StoreSpec``) and the writer's options. Frames
arrive on stdin (``wire``); answers and counters leave on stdout, one JSON object per line.

End of stdin means stop, whatever the reason: the server stopped, or it died (a SIGKILL closes
the pipe too). Either way this process writes out everything it received, seals and stores its
windows (up to ``stop_timeout``; the rest stays in the spool for the next start) and exits, so
a killed server loses only what it had not yet handed over. It runs in a session of its own and
ignores SIGINT: a Ctrl-C on the server's terminal stops the server, which then closes the pipe.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from shadowlab.capture import wire
from shadowlab.capture.options import WriterOptions
from shadowlab.capture.stores import StoreSpec
from shadowlab.capture.writer import CaptureWriter


class _Reporter:
    """Writes answers and, every ``period``, the writer's counters when they changed."""

    def __init__(self, writer: CaptureWriter, period: float) -> None:
        self._writer = writer
        self._period = period
        self._lock = threading.Lock()
        self._last: dict[str, int] | None = None
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="capture-stats", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def emit(self, message: dict[str, Any]) -> None:
        line = (json.dumps(message, separators=(",", ":")) + "\n").encode()
        with self._lock:
            try:
                sys.stdout.buffer.write(line)
                sys.stdout.buffer.flush()
            except (BrokenPipeError, ValueError):
                pass  # the server is gone; the spool still gets everything

    def stats(self) -> None:
        current = self._writer.stats()
        if current != self._last:
            self._last = current
            self.emit({"stats": current})

    def stop(self) -> None:
        self._done.set()
        self._thread.join()
        self.stats()

    def _run(self) -> None:
        while not self._done.wait(self._period):
            self.stats()


def serve(spool_dir: Path, store: StoreSpec, options: WriterOptions) -> int:
    writer = CaptureWriter(store.open(), spool_dir, options)
    # A capture process left by a killed server may still be storing what it had: wait for it.
    writer.start(lock_wait=options.stop_timeout + 10.0)
    reporter = _Reporter(writer, options.poll_interval)
    reporter.emit({"ready": True})
    reporter.start()
    decoder = wire.RowDecoder()
    source = sys.stdin.buffer
    room = options.max_queue_records
    while (frame := wire.read_frame(source)) is not None:
        kind, payload = frame
        if kind == wire.RECORDS:
            for record, config in decoder.decode(payload):
                # The pipe is the back-pressure: wait for room rather than drop here (the
                # server's own bounded queue drops, and counts, when this falls behind).
                while writer.queued() >= room:
                    time.sleep(0.005)
                writer.submit(record, config)
        elif kind == wire.SYNC:
            # On a thread: a sync waits for the store, and frames must keep being read
            # meanwhile, or the server's queue would fill while the store is slow.
            seq = wire.sync_seq(payload)
            threading.Thread(target=_sync, args=(writer, reporter, seq), daemon=True).start()
    done = writer.stop()
    reporter.stop()
    reporter.emit({"stopped": done})
    return 0


def _sync(writer: CaptureWriter, reporter: _Reporter, seq: int) -> None:
    ok = writer.sync()
    reporter.stats()
    reporter.emit({"synced": seq, "ok": ok})


def main(argv: list[str]) -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.basicConfig(level=logging.WARNING, format="capture process: %(levelname)s %(message)s")
    spec = json.loads(argv[1])
    return serve(
        Path(spec["spool_dir"]), StoreSpec(**spec["store"]), WriterOptions(**spec["options"])
    )


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
