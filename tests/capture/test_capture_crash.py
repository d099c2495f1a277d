"""SIGKILL of a capturing process, then a restart on its spool directory (real S3 server)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from shadowlab.capture.options import WriterOptions
from shadowlab.capture.stores import S3ObjectStore
from shadowlab.capture.writer import CaptureWriter
from tests.capture.support import MotoServer

ROOT = Path(__file__).resolve().parents[2]
FLUSH_INTERVAL = 0.2


def test_sigkill_loses_at_most_the_flush_interval_and_restart_does_not_duplicate(
    moto_server: MotoServer, s3: Any, bucket: str, tmp_path: Path
) -> None:
    spool = tmp_path / "spool"
    log = (tmp_path / "child.log").open("wb")
    child = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.capture.crash_child",
            str(spool),
            moto_server.url,
            bucket,
            str(FLUSH_INTERVAL),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
    )
    log.close()
    progress: list[tuple[int, float]] = []

    def read_progress() -> None:
        assert child.stdout is not None
        for line in child.stdout:
            if not line.endswith("\n"):
                break  # a line the kill cut short
            count, when = line.split()
            progress.append((int(count), float(when)))

    reader = threading.Thread(target=read_progress)
    reader.start()
    deadline = time.monotonic() + 20
    # Let it run long enough to have uploaded windows, sealed ones waiting and an open one.
    while not (progress and progress[-1][1] - progress[0][1] >= 1.2):
        assert child.poll() is None, (tmp_path / "child.log").read_text()
        assert time.monotonic() < deadline
        time.sleep(0.02)
    killed_at = time.time()
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=10)
    reader.join()
    assert child.stdout is not None
    child.stdout.close()

    # As if the kill had also torn a write in half.
    leftovers = sorted(spool.glob("*.jsonl"))
    assert leftovers, "the kill should leave an open window behind"
    with leftovers[-1].open("ab") as data:
        data.write(b'{"captureData":{"endpointInput":{"obser')

    restarted = CaptureWriter(S3ObjectStore(s3), spool, WriterOptions(flush_interval=0.1))
    restarted.start()
    assert restarted.sync(20)
    assert restarted.stop()
    stats = restarted.stats()
    assert stats["torn_lines"] == 1
    assert stats["recovered_files"] >= 1

    store = S3ObjectStore(s3)
    ids = []
    for info in store.list(bucket, "crash/ep/prod/"):
        for line in store.iter_lines(bucket, info.key):
            ids.append(int(json.loads(line)["eventMetadata"]["eventId"], 16))  # all whole JSON
    assert len(ids) == len(set(ids)), "a record was stored twice"
    assert set(ids) == set(range(len(ids))), "only the newest records may be missing"
    durable = max(count for count, when in progress if when <= killed_at - FLUSH_INTERVAL)
    assert len(ids) >= durable, (len(ids), durable)
    lost = max(0, progress[-1][0] - len(ids))
    print(f"\nSIGKILL: {len(ids)} records kept, {lost} of the last reported lost")
