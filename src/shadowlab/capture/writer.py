"""The capture writer: a background service that takes records off the request path, encodes them
in batches and delivers them, in order and without loss, to the object store.

Path of a record::

    submit() on the event loop ──▶ bounded deque ──▶ spool thread (``windows``): sort
    a batch into windows, encode each window's share in one pass, append the lines to the
    window's local spool file, fsync ──▶ window sealed ──▶ upload thread: PUT data file and its
    sidecar (backoff while the store is down) ──▶ spool file deleted

- ``submit`` is O(1) and never blocks: a sampling test, a length test and ``deque.append``. A full
  queue (records or bytes) drops the record and counts it; nothing on the request path waits.
  Everything that can wait (decoding header values, encoding, the window's key) is done on
  the spool thread.
- A window is (destination, KMS key, endpoint, variant, hour of the inference time): one open
  spool file each. A window is sealed when it reaches ``max_file_bytes``, when it has been open
  ``max_file_age`` seconds (so captures appear in the store within about a minute), and at stop.
- The spool thread wakes every ``poll_interval`` (100 ms): on a busy server it shares the data
  plane's core, and each wake-up starts cold (caches, the GIL hand-over), so fewer, larger
  batches cost less CPU per record. It works in chunks of ``batch_records`` (256) and pauses
  ``chunk_pause`` (1 ms) after a full one, which hands the GIL back to the event loop: the
  loop is never stalled for more than a chunk (docs/benchmarks.md, capture).
- Loss bound: every drained batch is handed to the kernel at once (whole lines, one ``write``
  per window) within ``poll_interval`` of its arrival (never more than ``flush_interval``), and
  spool files are fsynced every ``flush_interval`` (1 s, the stated bound). A SIGKILL loses at
  most the records submitted in the last flush interval: in fact only those not yet drained
  from the queue, ~100 ms of traffic while the spool thread keeps up (it encodes well over
  50k records/s on one core here, far above one data-plane process's request rate; if it ever
  falls behind, the queue bound applies instead). A machine crash or power cut loses at most
  the last flush interval and poll (what was not fsynced). On ``start()`` windows left behind
  are recovered: whole lines kept, a torn last line cut and counted (``torn_lines``), then
  uploaded under the key chosen when the window opened, so an upload repeated after a crash
  overwrites and never duplicates.
- Store down: the upload thread retries the oldest sealed window with exponential backoff
  (``backoff_initial`` doubling to ``backoff_max``); recording goes on into the spool, bounded by
  ``max_spool_bytes`` (beyond it records are dropped and counted), and windows are uploaded in
  the order they were opened once the store answers again.
- Shed copies: never written, counted per window; the count goes into the window's sidecar
  object (see ``layout``) so the pairing knows which share of a shadow's traffic never ran.
- Memory: the queue is bounded in records and bytes; an open window holds at most one poll's
  lines; sealed windows are on disk, not in memory.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import time
from collections import deque
from pathlib import Path

from shadowlab.capture.config import CaptureConfig
from shadowlab.capture.options import WriterOptions
from shadowlab.capture.spool import META_SUFFIX
from shadowlab.capture.stores import ObjectStore
from shadowlab.capture.uploader import Uploader
from shadowlab.capture.windows import Queued, Windows
from shadowlab.dataplane.observer import (
    CAPTURE,
    EVENT,
    EVENT_ID,
    OUTCOME,
    REQUEST_BODY,
    RESPONSE_BODY,
    InvocationRecord,
)

log = logging.getLogger(__name__)


class CaptureWriter:
    _fast_config: CaptureConfig  # see _fast in __init__

    def __init__(
        self, store: ObjectStore, spool_dir: Path, options: WriterOptions | None = None
    ) -> None:
        self.store = store
        self.spool_dir = Path(spool_dir)
        self.options = options or WriterOptions()
        self._queue: deque[Queued] = deque()
        self._max_records = self.options.max_queue_records
        self._max_bytes = self.options.max_queue_bytes
        # Each counter has one writing thread; totals shared by two use an in/out pair.
        self._queued_in = 0  # bytes submitted (event loop)
        self._queued_out = 0  # bytes drained (spool thread)
        self._accepting = False
        # observe()'s fast path: the last route configuration tuple found to be one config at
        # 100% (forgotten when the writer stops accepting), and that config (set with it).
        self._fast: tuple[object, ...] | None = None
        self._uploader = Uploader(store, self.options.backoff_initial, self.options.backoff_max)
        self._windows = Windows(self.spool_dir, self.options, self._uploader)  # spool thread
        self._stopping = threading.Event()  # spool thread: drain, seal, exit
        self._seal_now = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock_fd = -1
        # stats (see stats())
        self.records_captured = 0
        self.shed_counted = 0
        self.dropped_queue_full = 0
        self.dropped_stopped = 0

    # -- the request path (event loop) ---------------------------------------------------------

    def observe(self, record: InvocationRecord) -> None:
        """The data plane's ``InvocationObserver``: `record` is submitted once per capture
        configuration its route carried (the event's ``CAPTURE``: the endpoint config's and
        a running experiment's may both apply, to different destinations).

        The common case, a route with one configuration capturing everything, is ``submit``
        inline: this runs for every production answer and every shadow copy on the event loop,
        where each attribute read and call counts (docs/benchmarks.md, "capture"). Such a route's
        configuration tuple is recognised once (``_learn_fast``) and then by identity. Anything
        else (sampling, several configurations, a full queue, a shed copy, stopped) goes through
        ``submit``, which decides and counts.
        """
        event = record[EVENT]
        configs = event[CAPTURE]
        if (configs is self._fast or self._learn_fast(configs)) and record[OUTCOME] != "shed":
            size = len(event[REQUEST_BODY]) + len(record[RESPONSE_BODY])
            queued_in = self._queued_in + size
            queue = self._queue
            if len(queue) < self._max_records and queued_in - self._queued_out <= self._max_bytes:
                self._queued_in = queued_in
                queue.append((record, self._fast_config, size))
                self.records_captured += 1
                return
        for config in configs:
            if isinstance(config, CaptureConfig):
                self.submit(record, config)

    def _learn_fast(self, configs: tuple[object, ...]) -> bool:
        """Whether `configs` (a route's) is one configuration capturing everything while this
        writer accepts records: then it is remembered for ``observe``'s fast path."""
        if not self._accepting or len(configs) != 1:
            return False
        config = configs[0]
        if not isinstance(config, CaptureConfig) or not config.captures_all:
            return False
        self._fast, self._fast_config = configs, config
        return True

    def submit(self, record: InvocationRecord, config: CaptureConfig) -> None:
        """Queue one record for capture; O(1), never blocks, never raises for a full queue.

        Call it from one thread (the data plane's event loop), and stop() from that thread or
        after it stopped submitting: a submit racing stop() from elsewhere is counted as
        ``dropped_stopped`` after having been counted in ``records_captured``.
        """
        # This runs for every record on the event loop, so it stays short (docs/benchmarks.md).
        event = record[EVENT]
        if not config.captures_all and not config.sampled(event[EVENT_ID]):
            return
        if not self._accepting:
            self.dropped_stopped += 1
            return
        if record[OUTCOME] == "shed":
            self._submit_shed(record, config)
            return
        size = len(event[REQUEST_BODY]) + len(record[RESPONSE_BODY])
        queued_in = self._queued_in + size
        queue = self._queue
        if len(queue) >= self._max_records or queued_in - self._queued_out > self._max_bytes:
            self.dropped_queue_full += 1
            return
        self._queued_in = queued_in
        queue.append((record, config, size))
        self.records_captured += 1

    def _submit_shed(self, record: InvocationRecord, config: CaptureConfig) -> None:
        if len(self._queue) >= self._max_records:
            self.dropped_queue_full += 1
            return
        self._queue.append((record, config, 0))
        self.shed_counted += 1

    def stats(self) -> dict[str, int]:
        """Counters for ``/shadowlab/stats``. Every record in ``records_captured`` ends up in
        ``records_written`` or in one of ``dropped_spool_full`` (spool at its bound),
        ``dropped_write_errors`` (the local disk failed) or, for a submit racing ``stop()``,
        ``dropped_stopped``; ``dropped`` is all drops, queue-full ones included. Shed copies
        are ``shed_counted``, not records. ``pending_files``: windows open or not yet stored.
        """
        windows = self._windows
        dropped = (
            self.dropped_queue_full
            + windows.dropped_spool_full
            + windows.dropped_write_errors
            + self.dropped_stopped
        )
        uploader = self._uploader
        return {
            "records_captured": self.records_captured,
            "records_written": windows.records_written,
            "bytes_written": windows.bytes_written,
            "records_uploaded": uploader.records_uploaded,
            "files_uploaded": uploader.files_uploaded,
            "shed_counted": self.shed_counted,
            "dropped": dropped,
            "dropped_queue_full": self.dropped_queue_full,
            "dropped_spool_full": windows.dropped_spool_full,
            "dropped_write_errors": windows.dropped_write_errors,
            "dropped_stopped": self.dropped_stopped,
            "upload_failures": uploader.upload_failures,
            "upload_retries": uploader.upload_retries,
            "pending_files": len(windows.open) + uploader.pending(),
            "queued_records": len(self._queue),
            "spool_bytes": windows.spool_bytes(),
            "torn_lines": uploader.torn_lines,
            "recovered_files": uploader.recovered_files,
            "internal_errors": windows.internal_errors + uploader.errors,
        }

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        """Take the spool directory (one writer per directory), then recover and upload what a
        previous process left there while accepting new records at once.
        """
        if self._thread is not None:
            raise RuntimeError("capture writer already started")
        self.spool_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.spool_dir / ".lock", os.O_CREAT | os.O_RDWR, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise RuntimeError(
                f"capture spool {self.spool_dir} is used by another writer"
            ) from None
        self._lock_fd = fd
        for stale in self.spool_dir.glob("*.tmp"):
            stale.unlink(missing_ok=True)  # a meta or a repair interrupted by the crash
        self._uploader = Uploader(
            self.store, self.options.backoff_initial, self.options.backoff_max
        )
        self._uploader.start(sorted(self.spool_dir.glob("*" + META_SUFFIX)))
        self._windows.uploader = self._uploader
        self._stopping.clear()
        self._accepting = True
        self._thread = threading.Thread(target=self._spool_loop, name="capture-spool", daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = None) -> bool:
        """Stop accepting, write everything queued, seal every window and upload all of it
        within `timeout` (``stop_timeout`` by default). Returns True when nothing is left
        behind; otherwise the rest stays in the spool directory for the next ``start()``.
        """
        if self._thread is None:
            return True
        deadline = time.monotonic() + (self.options.stop_timeout if timeout is None else timeout)
        self._accepting = False
        self._fast = None
        self._stopping.set()
        self._thread.join()  # bounded: it only drains the bounded queue to local disk
        self._thread = None
        self.dropped_stopped += len(self._queue)  # raced with stop() from another thread
        self._queue.clear()
        done = self._uploader.finish(max(0.0, deadline - time.monotonic()))
        os.close(self._lock_fd)
        self._lock_fd = -1
        return done and not self._windows.open

    def sync(self, timeout: float = 30.0) -> bool:
        """Seal every open window now and wait until all of it is in the store (tests, and
        readers that want what was captured up to now). True when everything got there.
        """
        deadline = time.monotonic() + timeout
        accepted = self.records_captured + self.shed_counted
        self._uploader.recovered.wait(timeout)
        while time.monotonic() < deadline:
            if self._windows.processed < accepted or self._windows.open:
                self._seal_now.set()
            elif not self._uploader.pending():
                return True
            time.sleep(0.01)
        return False

    # -- spool thread ----------------------------------------------------------------------------

    def _spool_loop(self) -> None:
        options = self.options
        windows = self._windows
        # Never longer than the flush interval, so that the crash bound stays what it says.
        pause = min(options.poll_interval, options.flush_interval)
        chunk_pause = min(options.chunk_pause, pause)
        next_flush = time.monotonic() + options.flush_interval
        while True:
            try:
                stopping = self._stopping.is_set()
                drained, drained_bytes = windows.drain(self._queue, options.batch_records)
                self._queued_out += drained_bytes
                now = time.monotonic()
                seal_all = stopping and not self._queue
                if self._seal_now.is_set() and not self._queue:
                    self._seal_now.clear()
                    seal_all = True
                if now >= next_flush or seal_all:
                    windows.sync_open()
                    windows.rotate(now, seal_all)
                    next_flush = now + options.flush_interval
                if seal_all and stopping:
                    return
                # Set when stopping: then both return at once and the queue drains in a go.
                self._stopping.wait(pause if drained < options.batch_records else chunk_pause)
            except Exception:
                windows.internal_errors += 1
                log.exception("capture spool thread: unexpected error; going on")
                time.sleep(options.poll_interval)
