"""Listing captures and joining production with shadow records on eventId."""

from __future__ import annotations

import calendar
import json
from pathlib import Path

import pytest

from shadowlab.capture.config import CaptureConfig
from shadowlab.capture.options import WriterOptions
from shadowlab.capture.reader import captured_files, pairs, records, summarize
from shadowlab.capture.stores import LocalObjectStore
from shadowlab.capture.writer import CaptureWriter
from shadowlab.dataplane.observer import EVENT_ID
from tests.capture.support import event, record
from tests.capture.test_capture_record import DOCUMENTED

DESTINATION = "s3://bucket/captures"


@pytest.fixture
def captured(tmp_path: Path) -> tuple[LocalObjectStore, dict[str, list[str]]]:
    """Two hours of traffic: prod answered everything; cand-a answered or timed out; cand-b
    answered or was shed; one cand-a record without its production record.
    """
    store = LocalObjectStore(tmp_path / "s3")
    config = CaptureConfig(destination=DESTINATION, csv_content_types=("text/csv",))
    writer = CaptureWriter(store, tmp_path / "spool", WriterOptions(max_file_age=60))
    writer.start()
    start = calendar.timegm((2026, 3, 1, 9, 59, 0, 0, 0, 0))
    ids: dict[str, list[str]] = {"all": [], "timeout": [], "shed": []}
    for i in range(120):
        ev = event(at=start + i)  # 09:59:00 .. 10:00:59
        ids["all"].append(ev[EVENT_ID])
        writer.submit(record(ev, body=b"%d" % i), config)
        if i % 4 == 0:
            ids["timeout"].append(ev[EVENT_ID])
            shadow_a = record(ev, role="shadow", variant="cand-a", outcome="timeout", error="2 s")
        else:
            shadow_a = record(ev, role="shadow", variant="cand-a", body=b"a%d" % i)
        writer.submit(shadow_a, config)
        if i % 3 == 0:
            ids["shed"].append(ev[EVENT_ID])
            writer.submit(record(ev, role="shadow", variant="cand-b", outcome="shed"), config)
        else:
            writer.submit(record(ev, role="shadow", variant="cand-b", body=b"b%d" % i), config)
        if i == 30:
            writer.sync()  # more than one file per variant and hour
    orphan = event(at=start + 5, event_id="orphan")
    writer.submit(record(orphan, role="shadow", variant="cand-a"), config)
    assert writer.stop()
    return store, ids


def test_summary_per_variant(captured: tuple[LocalObjectStore, dict[str, list[str]]]) -> None:
    store, ids = captured
    summary = {name: item.as_dict() for name, item in summarize(store, DESTINATION, "ep").items()}
    assert set(summary) == {"prod", "cand-a", "cand-b"}
    assert summary["prod"]["records"] == 120 and summary["prod"]["roles"] == ["production"]
    assert summary["cand-a"]["records"] == 121
    assert summary["cand-a"]["timeout"] == len(ids["timeout"]) == 30
    assert summary["cand-b"]["records"] == 80 and summary["cand-b"]["shed"] == 40
    assert summary["cand-b"]["roles"] == ["shadow"]
    assert summary["prod"]["firstInferenceTime"] == "2026-03-01T09:59:00Z"
    assert summary["prod"]["lastInferenceTime"] == "2026-03-01T10:00:59Z"
    assert summary["prod"]["files"] == 3  # 09:59 up to the sync, 09:59 after it, 10:00
    assert all(item["bytes"] > 0 for item in summary.values())
    hours = {item.hour for item in captured_files(store, DESTINATION, "ep")}
    assert hours == {"2026/03/01/09", "2026/03/01/10"}
    assert sum(1 for _ in records(store, DESTINATION, "ep", "prod")) == 120


def test_pairs_join_on_event_id(captured: tuple[LocalObjectStore, dict[str, list[str]]]) -> None:
    store, ids = captured
    joined = list(pairs(store, DESTINATION, "ep"))
    with_production = [pair for pair in joined if pair["production"] is not None]
    assert sorted(pair["eventId"] for pair in with_production) == sorted(ids["all"])
    for pair in with_production:
        assert pair["productionVariant"] == "prod"
        assert pair["production"]["eventMetadata"]["eventId"] == pair["eventId"]
        shadows = pair["shadows"]
        assert "cand-a" in shadows
        assert ("cand-b" in shadows) == (pair["eventId"] not in ids["shed"])
        timed_out = shadows["cand-a"].get("shadowlab", {}).get("outcome") == "timeout"
        assert timed_out == (pair["eventId"] in ids["timeout"])
        for shadow in shadows.values():
            assert shadow["eventMetadata"]["eventId"] == pair["eventId"]
            expected_input = pair["production"]["captureData"]["endpointInput"]
            assert shadow["captureData"]["endpointInput"] == expected_input
    orphans = [pair for pair in joined if pair["production"] is None]
    assert [(pair["eventId"], list(pair["shadows"])) for pair in orphans] == [
        ("orphan", ["cand-a"])
    ]


def test_files_sagemaker_wrote_without_sidecars(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path / "s3")
    key = "captures/ep2/AllTraffic/2022/02/14/17/25-49-000-aaaa.jsonl"
    second = DOCUMENTED.replace("17:25:49Z", "17:25:06Z").replace("aaaaaaaa-", "bbbbbbbb-")
    store.put_bytes("bucket", key, (DOCUMENTED + "\n" + second + "\n").encode())
    summary = summarize(store, DESTINATION, "ep2")["AllTraffic"]
    assert (summary.files, summary.records, summary.roles) == (1, 2, set())
    assert summary.first_inference_time == "2022-02-14T17:25:06Z"
    assert summary.last_inference_time == "2022-02-14T17:25:49Z"
    with pytest.raises(ValueError, match="production variants"):
        list(pairs(store, DESTINATION, "ep2"))
    joined = list(pairs(store, DESTINATION, "ep2", production_variants={"AllTraffic"}))
    assert [pair["eventId"][:8] for pair in joined] == ["aaaaaaaa", "bbbbbbbb"]
    assert joined[0]["production"] == json.loads(DOCUMENTED)
    assert joined[0]["shadows"] == {}
