"""The writer with real files and a real S3 server: exact counts, stop, bounds, recovery."""

from __future__ import annotations

import asyncio
import calendar
import json
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from shadowlab.capture.config import CaptureConfig
from shadowlab.capture.options import WriterOptions
from shadowlab.capture.stores import LocalObjectStore, ObjectStore, S3ObjectStore
from shadowlab.capture.writer import CaptureWriter
from shadowlab.dataplane.observer import CAPTURE, EVENT_ID
from tests.capture.support import KMS_KEY, event, record
from tests.contract.helpers import wait_for

FAST = WriterOptions(flush_interval=0.1, max_file_age=0.3, backoff_initial=0.02, backoff_max=0.2)


def stored(store: ObjectStore, bucket: str, prefix: str) -> list[tuple[str, dict[str, Any]]]:
    """(key, record) for every line of every data file under the prefix."""
    out = []
    for info in store.list(bucket, prefix):
        if info.key.endswith(".jsonl"):
            out += [(info.key, json.loads(line)) for line in store.iter_lines(bucket, info.key)]
    return out


def sidecars(store: ObjectStore, bucket: str, prefix: str) -> list[dict[str, Any]]:
    return [
        json.loads(store.get(bucket, info.key))
        for info in store.list(bucket, prefix + "/_shadowlab/")
    ]


class FlakyStore:
    """A local store that can be switched off, or made to lose the answer of one PUT."""

    def __init__(self, root: Path) -> None:
        self.inner = LocalObjectStore(root)
        self.down = False
        self.lose_answers = 0
        self.puts: list[str] = []

    def _check(self) -> None:
        if self.down:
            raise ConnectionError("store unreachable")

    def put_file(self, bucket: str, key: str, path: Path, *, kms_key_id: str | None = None) -> None:
        self._check()
        self.inner.put_file(bucket, key, path)
        self.puts.append(key)
        if self.lose_answers:
            self.lose_answers -= 1
            raise TimeoutError("stored, but the answer was lost")

    def put_bytes(
        self, bucket: str, key: str, data: bytes, *, kms_key_id: str | None = None
    ) -> None:
        self._check()
        self.inner.put_bytes(bucket, key, data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_exact_counts_kms_and_rotation_against_s3(s3: Any, bucket: str, tmp_path: Path) -> None:
    """Every production request and every completed or failed copy is one record, exactly; shed
    copies are counted in the sidecars; files rotate by hour, size and age; all KMS-encrypted.
    """
    store = S3ObjectStore(s3)
    config = CaptureConfig(
        destination=f"s3://{bucket}/capture",
        kms_key_id=KMS_KEY,
        csv_content_types=("text/csv",),
    )
    options = WriterOptions(
        flush_interval=0.1, max_file_age=0.3, max_file_bytes=64 << 10, poll_interval=0.01
    )
    writer = CaptureWriter(store, tmp_path / "spool", options)
    writer.start()
    hour_boundary = calendar.timegm((2026, 1, 2, 4, 0, 0, 0, 0, 0))
    outcomes: list[Any] = ["answered", "answered", "failed", "timeout", "shed"]
    expected: Counter[tuple[str, str]] = Counter()
    total = 3000
    for i in range(total):
        ev = event(at=hour_boundary - 30 + i * 0.02, body=b"%d,1.5,2.5" % i)  # 03:59:30-04:00:30
        writer.submit(record(ev), config)
        expected["prod", "answered"] += 1
        outcome = outcomes[i % len(outcomes)]
        writer.submit(record(ev, role="shadow", variant="candidate", outcome=outcome), config)
        expected["candidate", outcome] += 1
        if i % 500 == 499:
            time.sleep(0.15)  # spread over several age rotations
    assert writer.stop()
    stats = writer.stats()

    lines = stored(store, bucket, "capture/ep/")
    got = Counter(
        (key.split("/")[2], rec.get("shadowlab", {}).get("outcome", "answered"))
        for key, rec in lines
    )
    assert got == {k: v for k, v in expected.items() if k[1] != "shed"}
    pairs = Counter((key.split("/")[2], rec["eventMetadata"]["eventId"]) for key, rec in lines)
    assert set(pairs.values()) == {1}  # nothing twice
    summaries = sidecars(store, bucket, "capture")
    assert (
        sum(s["shed"] for s in summaries if s["variant"] == "candidate")
        == expected["candidate", "shed"]
    )
    assert sum(s["records"] for s in summaries) == len(lines)
    assert sum(s["timeout"] for s in summaries) == expected["candidate", "timeout"]
    assert {s["role"] for s in summaries if s["variant"] == "prod"} == {"production"}

    keys = [info.key for info in store.list(bucket, "capture/")]
    hours = {"/".join(key.split("/")[3:7]) for key in keys if key.endswith(".jsonl")}
    assert hours == {"2026/01/02/03", "2026/01/02/04"}
    assert sum(key.endswith(".jsonl") for key in keys) >= 6  # rotated by age and size
    for key in keys:
        head = s3.head_object(Bucket=bucket, Key=key)
        assert (head["ServerSideEncryption"], head["SSEKMSKeyId"]) == ("aws:kms", KMS_KEY)
    assert stats["records_captured"] == stats["records_written"] == len(lines)
    assert stats["records_uploaded"] == len(lines)
    assert stats["shed_counted"] == expected["candidate", "shed"]
    assert stats["dropped"] == stats["pending_files"] == stats["spool_bytes"] == 0
    assert list((tmp_path / "spool").glob("*.jsonl")) == []


def test_graceful_stop_mid_load_loses_nothing(s3: Any, bucket: str, tmp_path: Path) -> None:
    """The data plane's loop submits; stop() comes from that loop while the queue has a backlog,
    windows are open and uploads are in flight: everything accepted reaches S3.
    """
    store = S3ObjectStore(s3)
    config = CaptureConfig(destination=f"s3://{bucket}/graceful")
    writer = CaptureWriter(store, tmp_path / "spool", FAST)
    writer.start()
    observer = writer  # the data plane's InvocationObserver
    submitted = 0

    async def load() -> dict[str, int]:
        nonlocal submitted
        started = time.monotonic()
        while True:
            for _ in range(400):
                ev = event(capture=(config,))
                observer.observe(record(ev))
                observer.observe(record(ev, role="shadow", variant="shadow"))
                submitted += 2
            await asyncio.sleep(0)
            if time.monotonic() - started > 0.8:
                in_progress = writer.stats()
                assert writer.stop()
                return in_progress

    in_progress = asyncio.run(load())
    assert in_progress["pending_files"] > 0 and in_progress["records_captured"] > 0
    observer.observe(record(event(capture=(config,))))  # after stop: refused and counted
    stats = writer.stats()
    assert stats["records_captured"] == submitted
    assert stats["dropped"] == stats["dropped_stopped"] == 1
    lines = stored(store, bucket, "graceful/")
    assert len(lines) == submitted
    assert len({(key.split("/")[2], rec["eventMetadata"]["eventId"]) for key, rec in lines}) == (
        submitted
    )


def test_bounded_queue_counts_drops(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path / "s3")
    config = CaptureConfig(destination="s3://b/q")
    # The spool thread drains at start, then sleeps for a poll interval longer than the test.
    options = WriterOptions(max_queue_records=10, poll_interval=30.0)
    writer = CaptureWriter(store, tmp_path / "spool", options)
    writer.start()
    time.sleep(0.1)
    for _ in range(100):
        writer.submit(record(event()), config)
    stats = writer.stats()
    assert stats["records_captured"] == 10 and stats["dropped_queue_full"] == 90
    assert stats["queued_records"] == 10
    assert writer.stop()
    assert len(stored(store, "b", "q/")) == 10

    by_bytes = CaptureWriter(
        store, tmp_path / "spool2", WriterOptions(max_queue_bytes=10_000, poll_interval=30.0)
    )
    by_bytes.start()
    time.sleep(0.1)
    for _ in range(10):
        by_bytes.submit(record(event(body=bytes(3000)), body=b""), config)
    assert by_bytes.stats()["records_captured"] == 3
    assert by_bytes.stats()["dropped_queue_full"] == 7
    assert by_bytes.stop()


def test_observe_counts_as_submit_per_config(tmp_path: Path) -> None:
    """``observe`` (the data plane's entry) inlines submit's common case, one config at 100%;
    every other route (two configs, sampling, shed copies, a full queue, stopped) must count
    exactly as one ``submit`` per config does."""
    all_a = CaptureConfig(destination="s3://b/a")
    all_b = CaptureConfig(destination="s3://b/b")
    half = CaptureConfig(destination="s3://b/half", sampling_percentage=50)
    options = WriterOptions(max_queue_records=300, poll_interval=30.0)  # nothing drains
    observed = CaptureWriter(LocalObjectStore(tmp_path / "s1"), tmp_path / "spool1", options)
    submitted = CaptureWriter(LocalObjectStore(tmp_path / "s2"), tmp_path / "spool2", options)
    for writer in (observed, submitted):
        writer.start()
    time.sleep(0.1)  # past the spool thread's first drain
    routes: list[tuple[CaptureConfig, ...]] = [(all_a,), (all_a, all_b), (half,), (half, all_b)]
    for i in range(400):  # more than the queue holds: the last ones are dropped
        ev = event(capture=routes[i % len(routes)])
        records = [record(ev), record(ev, role="shadow", variant="s", outcome="shed")]
        for rec in records:
            observed.observe(rec)
            for config in ev[CAPTURE]:
                assert isinstance(config, CaptureConfig)
                submitted.submit(rec, config)
    after = record(event(capture=(all_a,)))
    stats = observed.stats()
    assert stats == submitted.stats()
    assert stats["records_captured"] > 0 and stats["shed_counted"] > 0
    assert stats["dropped_queue_full"] > 0 and stats["queued_records"] == 300
    for writer in (observed, submitted):
        assert writer.stop()
        writer.observe(after)  # stopped: refused and counted
    assert observed.stats() == submitted.stats()
    assert observed.stats()["dropped_stopped"] == 1


def test_sampling_and_disabled_configs(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path / "s3")
    half = CaptureConfig(destination="s3://b/half", sampling_percentage=50)
    off = CaptureConfig(destination="s3://b/off", enabled=False)
    writer = CaptureWriter(store, tmp_path / "spool", FAST)
    writer.start()
    kept = 0
    for _ in range(2000):
        ev = event()
        kept += half.sampled(ev[EVENT_ID])
        for config in (half, off):
            writer.submit(record(ev), config)
            writer.submit(record(ev, role="shadow", variant="s"), config)
    assert writer.stop()
    assert 800 < kept < 1200
    lines = stored(store, "b", "")
    assert len(lines) == 2 * kept  # production and shadow kept together
    assert {key.split("/")[0] for key, _ in lines} == {"half"}


def test_spool_bound_and_catch_up_in_order_after_outage(tmp_path: Path) -> None:
    store = FlakyStore(tmp_path / "s3")
    store.down = True
    config = CaptureConfig(destination="s3://b/out")
    options = WriterOptions(
        flush_interval=0.05,
        max_file_age=0.1,
        max_spool_bytes=300_000,
        backoff_initial=0.01,
        backoff_max=0.05,
    )
    writer = CaptureWriter(store, tmp_path / "spool", options)
    writer.start()
    for _ in range(20):  # ~1200 records of ~380 bytes: about 800 fit
        for _ in range(60):
            writer.submit(record(event()), config)
        time.sleep(0.05)
    deadline = time.monotonic() + 5
    while writer.stats()["queued_records"] and time.monotonic() < deadline:
        time.sleep(0.01)
    during = writer.stats()
    assert during["upload_failures"] > 0 and during["upload_retries"] > 0
    assert during["dropped_spool_full"] > 0
    assert during["spool_bytes"] <= 300_000
    store.down = False
    assert writer.sync(10)
    assert writer.stop()
    stats = writer.stats()
    lines = stored(store.inner, "b", "out/")
    assert len(lines) == stats["records_written"] == 1200 - stats["dropped_spool_full"]
    assert store.puts == sorted(store.puts)  # windows arrived in the order they were opened
    assert len(store.puts) > 3


def test_lost_answer_reupload_overwrites(tmp_path: Path) -> None:
    store = FlakyStore(tmp_path / "s3")
    store.lose_answers = 1
    writer = CaptureWriter(store, tmp_path / "spool", FAST)
    writer.start()
    for _ in range(50):
        writer.submit(record(event()), CaptureConfig(destination="s3://b/lost"))
    assert writer.stop()
    assert len(store.puts) == 2 and store.puts[0] == store.puts[1]  # the same key, twice
    assert len(stored(store.inner, "b", "lost/")) == 50
    assert writer.stats()["upload_failures"] == writer.stats()["upload_retries"] == 1


def test_recovery_cuts_a_torn_line_and_uploads_once(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    store = FlakyStore(tmp_path / "s3")
    store.down = True
    config = CaptureConfig(destination="s3://b/rec")
    first = CaptureWriter(store, spool, FAST)
    first.start()
    with pytest.raises(RuntimeError, match="used by another writer"):
        CaptureWriter(store, spool, FAST).start()
    shed = record(event(), role="shadow", variant="cand", outcome="shed")
    first.submit(shed, config)
    for _ in range(40):
        ev = event()
        first.submit(record(ev), config)
        first.submit(record(ev, role="shadow", variant="cand"), config)
    assert not first.stop(timeout=0.3)  # the store is down: left in the spool directory
    leftovers = sorted(spool.glob("*.jsonl"))
    assert len(leftovers) == 2
    with leftovers[-1].open("ab") as data:  # as if killed in the middle of a write
        data.write(b'{"captureData":{"endpointInput":{"observedCon')

    store.down = False
    second = CaptureWriter(store, spool, FAST)
    second.start()
    assert second.sync(10)
    assert second.stop()
    stats = second.stats()
    assert (stats["torn_lines"], stats["recovered_files"]) == (1, 2)
    lines = stored(store.inner, "b", "rec/")
    assert Counter(key.split("/")[2] for key, _ in lines) == {"prod": 40, "cand": 40}
    assert [s["shed"] for s in sidecars(store.inner, "b", "rec") if s["variant"] == "cand"] == [1]
    assert list(spool.glob("*.json*")) == []


def test_age_rotation_makes_captures_appear_without_stop(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path / "s3")
    writer = CaptureWriter(store, tmp_path / "spool", FAST)
    writer.start()
    try:
        for _ in range(5):
            writer.submit(record(event()), CaptureConfig(destination="s3://b/age"))
        deadline = time.monotonic() + 5
        while len(stored(store, "b", "age/")) < 5 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(stored(store, "b", "age/")) == 5
    finally:
        assert writer.stop()


def test_shed_only_window_has_a_sidecar_and_no_data_file(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path / "s3")
    writer = CaptureWriter(store, tmp_path / "spool", FAST)
    writer.start()
    config = CaptureConfig(destination="s3://b/shed")
    for _ in range(7):
        writer.submit(record(event(), role="shadow", variant="slow", outcome="shed"), config)
    assert writer.stop()
    keys = [info.key for info in store.list("b", "shed/")]
    assert len(keys) == 1 and keys[0].startswith("shed/_shadowlab/ep/slow/")
    summary = json.loads(store.get("b", keys[0]))
    assert (summary["shed"], summary["records"], summary["dataKey"]) == (7, 0, None)


class BlockedStore(LocalObjectStore):
    """A local store whose writes wait until the test sets `release` (a hung store)."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.release = threading.Event()
        self.entered = 0  # writes that started
        self.inside = 0  # writes waiting on `release` right now
        self._lock = threading.Lock()

    def _wait(self) -> None:
        with self._lock:
            self.entered += 1
            self.inside += 1
        try:
            self.release.wait(60)  # bounded, so that a failed test cannot hang the run
        finally:
            with self._lock:
                self.inside -= 1

    def put_file(self, bucket: str, key: str, path: Path, *, kms_key_id: str | None = None) -> None:
        self._wait()
        super().put_file(bucket, key, path, kms_key_id=kms_key_id)

    def put_bytes(
        self, bucket: str, key: str, data: bytes, *, kms_key_id: str | None = None
    ) -> None:
        self._wait()
        super().put_bytes(bucket, key, data, kms_key_id=kms_key_id)


def test_submit_never_waits_on_the_store(tmp_path: Path) -> None:
    """submit() runs on the event loop: with the upload thread stuck inside a store call, a
    burst of submits still returns, and every record is captured or counted as dropped; once
    the store answers, everything captured is stored."""
    store = BlockedStore(tmp_path / "s3")
    config = CaptureConfig(destination="s3://b/blocked")
    writer = CaptureWriter(store, tmp_path / "spool", FAST)
    writer.start()
    total = 5000
    try:
        writer.submit(record(event()), config)  # its window seals by age and its upload blocks
        wait_for(lambda: store.inside, lambda inside: inside >= 1, timeout=30)  # upload stuck

        failures: list[BaseException] = []

        def submit_all() -> None:
            try:
                for _ in range(total):
                    writer.submit(record(event()), config)
            except BaseException as exc:
                failures.append(exc)

        submitter = threading.Thread(target=submit_all, name="test-submitter")
        submitter.start()
        submitter.join(30)
        assert not submitter.is_alive(), "submit() waited on the store"
        assert not failures
        # Finished while the writer was still inside a store call that had not been released.
        assert not store.release.is_set() and store.inside >= 1
        stats = writer.stats()
        assert stats["records_captured"] + stats["dropped_queue_full"] == 1 + total
        assert stats["dropped_queue_full"] == 0  # 5,001 small records: far below both bounds
    finally:
        store.release.set()
        stopped = writer.stop()
    assert stopped
    stats = writer.stats()
    lines = stored(store, "b", "blocked/")
    assert len(lines) == stats["records_captured"] == stats["records_uploaded"] == 1 + total
    assert len({rec["eventMetadata"]["eventId"] for _, rec in lines}) == 1 + total
    assert stats["dropped"] == stats["pending_files"] == 0


def test_stop_without_start_and_restart(tmp_path: Path) -> None:
    writer = CaptureWriter(LocalObjectStore(tmp_path / "s3"), tmp_path / "spool", FAST)
    assert writer.stop()
    writer.start()
    assert writer.stop()
    writer.start()  # a writer can be started again after a stop
    writer.submit(record(event()), CaptureConfig(destination="s3://b/again"))
    assert writer.stop()
    assert len(stored(writer.store, "b", "again/")) == 1
    assert not [t for t in threading.enumerate() if t.name.startswith("capture-")]
