"""An S3 outage in the middle of the load loses nothing and delivers in order afterwards.

Two kinds of outage, each against its own moto server process: the store hangs (moto is
SIGSTOPped: connections are accepted, nothing answers, requests time out; SIGCONT resumes it,
with the abandoned PUTs still queued in its socket) and the store goes away (the port, a proxy
in front of moto, is closed: connections are refused and open ones cut; then it listens again
on the same port). Restarting moto itself would also erase what it stored, which would make
"nothing lost" unverifiable, hence the proxy.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shadowlab.capture.config import CaptureConfig
from shadowlab.capture.options import WriterOptions
from shadowlab.capture.stores import S3ObjectStore
from shadowlab.capture.writer import CaptureWriter
from tests.capture.support import MotoServer, TcpProxy, event, record, s3_client


class RecordingStore(S3ObjectStore):
    """Remembers the data files whose PUT succeeded, in order."""

    def __init__(self, client: Any) -> None:
        super().__init__(client)
        self.stored: list[str] = []

    def put_file(self, bucket: str, key: str, path: Path, *, kms_key_id: str | None = None) -> None:
        super().put_file(bucket, key, path, kms_key_id=kms_key_id)
        self.stored.append(key)


@pytest.fixture
def own_moto(tmp_path: Path) -> Iterator[MotoServer]:
    server = MotoServer(tmp_path).start()
    yield server
    server.stop()


@pytest.mark.parametrize("kind", ["hang", "refused"])
def test_outage_mid_load_loses_nothing(kind: str, own_moto: MotoServer, tmp_path: Path) -> None:
    proxy = TcpProxy(own_moto.port).start() if kind == "refused" else None
    client = s3_client(proxy.url if proxy else own_moto.url)
    try:
        client.create_bucket(Bucket="outage")
        store = RecordingStore(client)
        options = WriterOptions(
            flush_interval=0.1, max_file_age=0.2, backoff_initial=0.05, backoff_max=0.4
        )
        writer = CaptureWriter(store, tmp_path / "spool", options)
        writer.start()
        config = CaptureConfig(destination="s3://outage/cap", csv_content_types=("text/csv",))
        submitted: Counter[str] = Counter()
        started = time.monotonic()
        outage = (0.4, 2.4)  # longer than a PUT takes to time out (~1.5 s with this client)
        phase = "before"
        while (elapsed := time.monotonic() - started) < 3.0:
            if phase == "before" and elapsed >= outage[0]:
                phase = "during"
                if proxy:
                    proxy.stop()
                else:
                    own_moto.pause()
            elif phase == "during" and elapsed >= outage[1]:
                phase = "after"
                assert writer.stats()["pending_files"] > 2  # windows waited in the spool
                if proxy:
                    proxy.start()
                else:
                    own_moto.resume()
            for _ in range(20):
                ev = event()
                writer.submit(record(ev), config)
                writer.submit(record(ev, role="shadow", variant="cand"), config)
                submitted["prod"] += 1
                submitted["cand"] += 1
            time.sleep(0.01)
        assert writer.stop(timeout=30)
        stats = writer.stats()

        assert stats["upload_failures"] > 0 and stats["upload_retries"] > 0
        assert stats["dropped"] == 0
        got: Counter[str] = Counter()
        seen: set[tuple[str, str]] = set()
        for info in store.list("outage", "cap/ep/"):
            variant = info.key.split("/")[2]
            for line in store.iter_lines("outage", info.key):
                got[variant] += 1
                seen.add((variant, json.loads(line)["eventMetadata"]["eventId"]))
        assert got == submitted
        assert len(seen) == sum(submitted.values())  # no record twice
        assert stats["records_uploaded"] == sum(submitted.values())
        # In order: each variant's windows were stored in the order they were opened (the
        # hang may store a file twice when an abandoned PUT completes late: same key).
        for variant in submitted:
            keys = [key for key in store.stored if key.split("/")[2] == variant]
            assert keys == sorted(keys)
    finally:
        client.close()
        if proxy:
            proxy.stop()
