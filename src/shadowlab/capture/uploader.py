"""The upload side of the capture writer: one thread that delivers sealed windows to the store.

Order: windows left by a previous process first (recovered from the spool directory, oldest
first), then windows in the order they were sealed. The head of the line is retried until it
succeeds, with exponential backoff, so that once a store comes back after an outage the data
arrives in the order it was captured and nothing is skipped. A window is removed from local disk
only after its data file and its sidecar are stored; a crash in between repeats the same PUTs to
the same keys (an overwrite, never a duplicate).
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Sequence
from pathlib import Path

from shadowlab.capture.spool import SpoolFile
from shadowlab.capture.stores import ObjectStore

log = logging.getLogger(__name__)


class Uploader:
    def __init__(self, store: ObjectStore, backoff_initial: float, backoff_max: float) -> None:
        self.store = store
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self._leftovers: deque[SpoolFile] = deque()
        self._sealed: deque[SpoolFile] = deque()
        self._ready = threading.Event()
        self._final = threading.Event()  # exit once nothing is left
        self._abort = threading.Event()  # exit now
        self.recovered = threading.Event()  # leftovers scanned
        self._thread: threading.Thread | None = None
        # Counters: written by the upload thread only.
        self.files_uploaded = 0
        self.records_uploaded = 0
        self.bytes_released = 0  # spool bytes removed from local disk
        self.bytes_recovered = 0  # spool bytes found at start
        self.upload_failures = 0
        self.upload_retries = 0
        self.torn_lines = 0
        self.recovered_files = 0
        self.errors = 0

    def start(self, leftovers: Sequence[Path]) -> None:
        """Recover `leftovers` (meta files of a previous process, oldest first), then upload."""
        self._thread = threading.Thread(
            target=self._run, args=(leftovers,), name="capture-upload", daemon=True
        )
        self._thread.start()

    def put(self, spool: SpoolFile) -> None:
        """A sealed window, ready to go (called by the spool thread)."""
        self._sealed.append(spool)
        self._ready.set()

    def pending(self) -> int:
        return len(self._leftovers) + len(self._sealed)

    def finish(self, timeout: float) -> bool:
        """Upload what is left within `timeout`, then stop; True when nothing is left."""
        if self._thread is None:
            return self.pending() == 0
        self._final.set()
        self._ready.set()
        self._thread.join(timeout)
        if self._thread.is_alive():
            self._abort.set()
            self._thread.join()
        self._thread = None
        return self.pending() == 0

    def _run(self, leftovers: Sequence[Path]) -> None:
        self._recover(leftovers)
        backoff = self.backoff_initial
        while not self._abort.is_set():
            queue = self._leftovers or self._sealed
            if not queue:
                if self._final.is_set():
                    return
                self._ready.wait(0.5)
                self._ready.clear()
                continue
            spool = queue[0]
            try:
                self._upload(spool)
            except Exception as exc:
                self.upload_failures += 1
                if self.upload_failures == 1 or backoff >= self.backoff_max:
                    log.warning(
                        "capture upload of %s failed (%s); retrying", spool.meta["key"], exc
                    )
                if self._abort.wait(backoff):
                    return
                self.upload_retries += 1
                backoff = min(backoff * 2, self.backoff_max)
                continue
            backoff = self.backoff_initial
            queue.popleft()

    def _upload(self, spool: SpoolFile) -> None:
        meta = spool.meta
        if spool.records and not spool.data_path.exists():
            # Removed behind our back: nothing to send, and retrying would block the line.
            self.errors += 1
            log.error("capture spool %s vanished; %d records lost", spool.data_path, spool.records)
            spool.records = 0
        if spool.records or spool.shed:
            kms = meta.get("kmsKeyId")
            if spool.records:
                self.store.put_file(meta["bucket"], meta["key"], spool.data_path, kms_key_id=kms)
            self.store.put_bytes(
                meta["bucket"], meta["sidecarKey"], spool.sidecar(), kms_key_id=kms
            )
        spool.remove()
        self.bytes_released += spool.size
        if spool.records:
            self.files_uploaded += 1
            self.records_uploaded += spool.records

    def _recover(self, leftovers: Sequence[Path]) -> None:
        try:
            for meta_path in leftovers:
                try:
                    spool, torn = SpoolFile.recover(meta_path)
                except (OSError, ValueError, KeyError):
                    self.errors += 1
                    log.exception("capture spool %s cannot be recovered; left in place", meta_path)
                    continue
                self.torn_lines += torn
                self.recovered_files += 1
                self.bytes_recovered += spool.size
                self._leftovers.append(spool)
        finally:
            self.recovered.set()
