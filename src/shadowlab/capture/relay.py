"""Capture from the server's side: records leave the process that serves traffic.

``CaptureRelay`` is the data plane's observer (``observe``) and has the writer's interface
(``stats``, ``start``, ``stop``, ``sync``), but the encoding, the spool files and the uploads
run in a process of their own, the capture process (``process``): a ``CaptureWriter`` fed
through a pipe. What stays here is what
must: the O(1) ``observe`` on the event loop, and a shipping thread that every ``poll_interval``
turns queued records into flat rows and writes them to the pipe in one frame (``wire``).

Why a process: in one process the spool thread's encoding shares the GIL, the caches and, on a
busy server, the core with the event loop: capture at 100% cost 10-20% of saturated throughput
however lean the encoder was (docs/benchmarks.md, capture). Turning a record into a row and
marshalling it costs a quarter of encoding it; the rest runs where the operating system can
put it on another core.

Guarantees (on top of the writer's, which the capture process keeps):
- Bounded: the server's queue is bounded in records and bytes (``WriterOptions``); when the
  capture process falls behind, the pipe fills, the shipping thread waits, the queue fills and
  ``observe`` drops and counts (``dropped_queue_full``). Nothing on the request path waits.
- A SIGKILL of the server loses only what it had not shipped: at most one ``poll_interval``
  of records (100 ms). The capture process reads the pipe to its end, writes all of it out and
  stores it, then exits.
- A capture process that dies is started again (backoff up to ``backoff_max``); the new one
  recovers the old one's spool. Records it had received but not yet written are lost: at most
  what was shipped since it last reported, counted in ``dropped_capture_process`` (an upper
  bound, since it may have written some of them just before dying).
"""

from __future__ import annotations

import contextlib
import json
import logging
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import asdict
from pathlib import Path
from typing import cast

from shadowlab.capture import wire
from shadowlab.capture.config import CaptureConfig
from shadowlab.capture.options import WriterOptions
from shadowlab.capture.stores import StoreSpec
from shadowlab.capture.windows import Queued
from shadowlab.dataplane.observer import InvocationRecord

log = logging.getLogger(__name__)

# Counters that come from the capture process and add up over its incarnations.
_CHILD_TOTALS = (
    "records_written",
    "bytes_written",
    "records_uploaded",
    "files_uploaded",
    "dropped_spool_full",
    "dropped_write_errors",
    "upload_failures",
    "upload_retries",
    "torn_lines",
    "recovered_files",
    "internal_errors",
)
_CHILD_GAUGES = ("pending_files", "spool_bytes")  # the current process's, not summed


class _Child:
    """One incarnation of the capture process, and what it last said."""

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        self.process = process
        self.stats: dict[str, int] = {}
        self.shipped = 0  # queue entries written to its pipe
        self.synced: dict[int, bool] = {}
        self.stopped: bool | None = None
        self.said = threading.Condition()
        self.listener = threading.Thread(target=self._listen, name="capture-listen", daemon=True)
        self.listener.start()

    def settled(self) -> int:
        """Entries it has finished with (written, counted or dropped), as it last said."""
        s = self.stats
        return (
            s.get("records_written", 0)
            + s.get("shed_counted", 0)
            + s.get("dropped", 0)
            - s.get("dropped_queue_full", 0)  # never happens there: it waits for room
        )

    def close(self) -> None:
        """Its pipes, once it has exited and the listener has read everything."""
        for pipe in (self.process.stdin, self.process.stdout):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()

    def _listen(self) -> None:
        stdout = self.process.stdout
        assert stdout is not None
        for line in stdout:
            try:
                message = json.loads(line)
            except ValueError:
                continue
            with self.said:
                if "stats" in message:
                    self.stats = message["stats"]
                elif "synced" in message:
                    self.synced[int(message["synced"])] = bool(message["ok"])
                elif "stopped" in message:
                    self.stopped = bool(message["stopped"])
                self.said.notify_all()
        with self.said:
            self.said.notify_all()


class CaptureRelay:
    def __init__(
        self, store: StoreSpec, spool_dir: Path, options: WriterOptions | None = None
    ) -> None:
        self.store = store
        self.spool_dir = Path(spool_dir)
        self.options = options or WriterOptions()
        self._queue: deque[Queued] = deque()
        self._max_records = self.options.max_queue_records
        self._max_bytes = self.options.max_queue_bytes
        self._queued_in = 0  # bytes submitted (event loop)
        self._queued_out = 0  # bytes shipped (shipping thread)
        self._accepting = False
        self._child: _Child | None = None
        self._config_keys: dict[int, tuple[CaptureConfig, int]] = {}
        self._next_key = 0
        self._stopping = threading.Event()
        self._ship_now = threading.Event()
        self._thread: threading.Thread | None = None
        self._sync_lock = threading.Lock()  # one sync at a time; frames leave in order
        self._sync_seq = 0
        self._sync_wanted = 0  # highest seq whose SYNC frame is to be sent
        self._base: dict[str, int] = dict.fromkeys(_CHILD_TOTALS, 0)  # of dead incarnations
        self.records_captured = 0
        self.shed_counted = 0
        self.dropped_queue_full = 0
        self.dropped_stopped = 0
        self.dropped_capture_process = 0
        self.restarts = 0

    # -- the request path (event loop) ----------------------------------------------------------

    def observe(self, record: InvocationRecord) -> None:
        """The data plane's ``InvocationObserver``: queue `record` once per capture configuration
        its route carried (an endpoint config's and a running experiment's may both apply).
        O(1), never blocks, never raises for a full queue. Called from one thread, the event
        loop's; it is ``CaptureWriter.submit`` inlined, since it runs for every record.
        """
        event = record.event
        configs = cast("tuple[CaptureConfig, ...]", event.capture)
        if not self._accepting:
            self.dropped_stopped += len(configs)
            return
        queue = self._queue
        for config in configs:
            if not config.captures_all and not config.sampled(event.event_id):
                continue
            if record.outcome == "shed":
                if len(queue) >= self._max_records:
                    self.dropped_queue_full += 1
                    continue
                queue.append((record, config, 0))
                self.shed_counted += 1
                continue
            size = len(event.request_body) + len(record.response_body)
            queued_in = self._queued_in + size
            if len(queue) >= self._max_records or queued_in - self._queued_out > self._max_bytes:
                self.dropped_queue_full += 1
                continue
            self._queued_in = queued_in
            queue.append((record, config, size))
            self.records_captured += 1

    def stats(self) -> dict[str, int]:
        """The writer's counters (``CaptureWriter.stats``), from both processes, plus
        ``capture_process_restarts`` and ``dropped_capture_process`` (see the module)."""
        child = self._child
        latest = child.stats if child is not None else {}
        merged = {name: self._base[name] + latest.get(name, 0) for name in _CHILD_TOTALS}
        for name in _CHILD_GAUGES:
            merged[name] = latest.get(name, 0)
        dropped = (
            self.dropped_queue_full
            + self.dropped_stopped
            + self.dropped_capture_process
            + merged["dropped_spool_full"]
            + merged["dropped_write_errors"]
            + latest.get("dropped_stopped", 0)
        )
        unsent = child.shipped - child.settled() if child is not None else 0
        return {
            "records_captured": self.records_captured,
            **merged,
            "shed_counted": self.shed_counted,
            "dropped": dropped,
            "dropped_queue_full": self.dropped_queue_full,
            "dropped_stopped": self.dropped_stopped + latest.get("dropped_stopped", 0),
            "dropped_capture_process": self.dropped_capture_process,
            "queued_records": len(self._queue) + max(0, unsent),
            "capture_process_restarts": self.restarts,
        }

    def child_pid(self) -> int | None:
        """The running capture process's pid (None while there is none)."""
        child = self._child
        if child is None or child.process.poll() is not None:
            return None
        return child.process.pid

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        """Start the capture process (it recovers what a previous one left in the spool) and the
        shipping thread; records are accepted at once and wait in the queue until it is up."""
        if self._thread is not None:
            raise RuntimeError("capture relay already started")
        self.spool_dir.mkdir(parents=True, exist_ok=True)  # fail here, not in the child
        self._child = self._spawn()
        self._stopping.clear()
        self._accepting = True
        self._thread = threading.Thread(target=self._ship_loop, name="capture-ship", daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = None) -> bool:
        """Stop accepting, ship everything queued and let the capture process write, seal and
        store it all within `timeout`. True when nothing is left behind (the rest stays in the
        spool for the next start)."""
        if self._thread is None:
            return True
        deadline = time.monotonic() + (self.options.stop_timeout if timeout is None else timeout)
        self._accepting = False
        self._stopping.set()
        self._ship_now.set()
        self._thread.join()  # ships the rest, then closes the pipe
        self._thread = None
        child = self._child
        if child is None:
            return False
        try:
            child.process.wait(max(0.0, deadline - time.monotonic()) + 5.0)
        except subprocess.TimeoutExpired:
            log.error("capture process %d did not stop in time; killing it", child.process.pid)
            child.process.kill()
            child.process.wait()
        child.listener.join()
        child.close()
        return child.stopped is True

    def sync(self, timeout: float = 30.0) -> bool:
        """Ship everything queued, have the capture process seal and store it, and wait for it
        (tests, and readers that want what was captured up to now)."""
        if self._thread is None:
            return not self._queue
        deadline = time.monotonic() + timeout
        with self._sync_lock:
            self._sync_seq += 1
            seq = self._sync_seq
            self._sync_wanted = seq
            self._ship_now.set()
            while time.monotonic() < deadline:
                child = self._child
                if child is not None:
                    with child.said:
                        if seq in child.synced:
                            return child.synced.pop(seq)
                        child.said.wait(min(0.1, max(0.0, deadline - time.monotonic())))
                else:
                    time.sleep(0.01)
            return False

    # -- shipping thread ---------------------------------------------------------------------

    def _ship_loop(self) -> None:
        options = self.options
        pause = min(options.poll_interval, options.flush_interval)
        chunk = options.batch_records
        sent_sync = 0
        delay = options.backoff_initial
        while True:
            try:
                self._ship_now.clear()
                child = self._child
                if child is None or child.process.poll() is not None:
                    if self._stopping.is_set() and child is None:
                        return
                    child = self._restart(child)
                    if child is None:
                        self._stopping.wait(delay)
                        delay = min(delay * 2, options.backoff_max)
                        continue
                    delay = options.backoff_initial
                    sent_sync = 0  # the new incarnation has not seen any SYNC
                drained = self._ship(child, chunk)
                wanted = self._sync_wanted
                if wanted > sent_sync and not self._queue:
                    self._send(child, wire.sync_frame(wanted))
                    sent_sync = wanted
                if self._stopping.is_set() and not self._queue:
                    self._close(child)
                    return
                if drained < chunk:
                    self._ship_now.wait(pause)
                else:
                    time.sleep(options.chunk_pause)  # hand the GIL back to the event loop
            except BrokenPipeError:
                time.sleep(0.01)  # the process died; the next round starts another
            except Exception:
                log.exception("capture relay: unexpected error; going on")
                time.sleep(options.poll_interval)

    def _ship(self, child: _Child, limit: int) -> int:
        """One frame of up to `limit` queued entries; returns how many left the queue."""
        queue = self._queue
        count = min(len(queue), limit)
        if not count:
            return 0
        popleft = queue.popleft
        keys = self._config_keys
        new: list[tuple[int, wire.ConfigFields]] = []
        rows: list[wire.Row] = []
        append = rows.append
        drained_bytes = 0
        for _ in range(count):
            record, config, size = popleft()
            drained_bytes += size
            known = keys.get(id(config))
            if known is None or known[0] is not config:
                known = self._introduce(config, new)
            event = record.event
            append(  # wire.row, inlined: this runs for every record
                (
                    known[1],
                    event.endpoint,
                    event.event_id,
                    event.inference_id,
                    event.inference_time,
                    event.request_body,
                    event.request_content_type,
                    record.role,
                    record.variant,
                    record.status,
                    record.response_body,
                    record.response_content_type,
                    record.error,
                    record.outcome,
                )
            )
        self._queued_out += drained_bytes
        child.shipped += count
        self._send(child, wire.records_frame(new, rows))
        return count

    def _introduce(
        self, config: CaptureConfig, new: list[tuple[int, wire.ConfigFields]]
    ) -> tuple[CaptureConfig, int]:
        # Keyed by identity (hashing every field costs more); the entry keeps the config alive
        # so its id is not reused. Configs are few: route changes make new ones.
        if len(self._config_keys) >= 256:
            self._config_keys.clear()
        self._next_key += 1
        known = self._config_keys[id(config)] = (config, self._next_key)
        new.append((self._next_key, wire.config_fields(config)))
        return known

    def _send(self, child: _Child, frame: bytes) -> None:
        stdin = child.process.stdin
        assert stdin is not None
        wire.write_all(stdin.fileno(), frame)

    def _close(self, child: _Child) -> None:
        stdin = child.process.stdin
        if stdin is not None:
            with contextlib.suppress(BrokenPipeError):
                stdin.close()

    # -- the capture process -----------------------------------------------------------------

    def _spawn(self) -> _Child:
        spec = {
            "spool_dir": str(self.spool_dir),
            "store": asdict(self.store),
            "options": asdict(self.options),
        }
        process = subprocess.Popen(
            [sys.executable, "-m", "shadowlab.capture.process", json.dumps(spec)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            bufsize=0,
            start_new_session=True,  # signals to the server's group are the server's
        )
        return _Child(process)

    def _restart(self, dead: _Child | None) -> _Child | None:
        """Account for a capture process that died, and start another (None: not now)."""
        if dead is not None:
            dead.listener.join(timeout=1.0)
            dead.close()
            lost = max(0, dead.shipped - dead.settled())
            self.dropped_capture_process += lost
            for name in _CHILD_TOTALS:
                self._base[name] += dead.stats.get(name, 0)
            log.error(
                "capture process %d exited with %s; up to %d records lost; starting another",
                dead.process.pid,
                dead.process.returncode,
                lost,
            )
            self._child = None
        self._config_keys.clear()  # a new process knows no configuration yet
        try:
            child = self._spawn()
        except OSError:
            log.exception("capture relay: cannot start the capture process")
            return None
        self.restarts += 1
        self._child = child
        return child
