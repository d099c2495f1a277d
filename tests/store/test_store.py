"""The store on SQLite and on PostgreSQL: the same behaviour from both engines."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from shadowlab.domain.kinds import ResourceKind
from shadowlab.store import MODELS, AlreadyExists, ListQuery, NoState, Record, StaleRecord, Store
from tests.conftest import fresh_database_url

MODEL = MODELS


@pytest.fixture
def store(database_kind: str, tmp_path: Path) -> Iterator[Store]:
    url = fresh_database_url(database_kind, str(tmp_path))
    opened = Store.open(url or f"sqlite:///{tmp_path / 'shadowlab.db'}")
    yield opened
    opened.close()


def _record(name: str, created: float, status: str | None = None) -> Record[NoState]:
    arn = f"arn:aws:sagemaker:us-east-1:123456789012:model/{name.lower()}"
    document = {"ModelName": name}
    return Record(
        "us-east-1",
        ResourceKind.MODEL,
        name,
        arn,
        created,
        created,
        document,
        status,
        state=NoState(),
    )


def test_insert_get_is_case_insensitive_and_unique(store: Store) -> None:
    store.insert(_record("MyModel", 1.0))
    found = store.get("us-east-1", MODEL, "mymodel")
    assert found is not None and found.name == "MyModel" and found.version == 1
    assert store.get("us-west-2", MODEL, "MyModel") is None
    with pytest.raises(AlreadyExists):
        store.insert(_record("MYMODEL", 2.0))


def test_update_is_compare_and_set(store: Store) -> None:
    store.insert(_record("m", 1.0))
    first = store.get("us-east-1", MODEL, "m")
    second = store.get("us-east-1", MODEL, "m")
    assert first is not None and second is not None
    first.document["x"] = 1
    store.update(first)
    second.document["x"] = 2
    with pytest.raises(StaleRecord):
        store.update(second)
    fresh = store.get("us-east-1", MODEL, "m")
    assert fresh is not None and fresh.document["x"] == 1 and fresh.version == 2
    with pytest.raises(StaleRecord):
        store.delete(second)
    store.delete(fresh)
    assert store.get("us-east-1", MODEL, "m") is None


def test_list_filters_sorts_and_pages_by_keyset(store: Store) -> None:
    for i, name in enumerate(["b", "a", "d", "c", "e"]):
        store.insert(_record(name, float(i), status="InService" if i % 2 else "Failed"))
    by_name = store.list_records(
        "us-east-1", MODEL, ListQuery(sort_by="name_key", descending=False)
    )
    assert [r.name for r in by_name] == ["a", "b", "c", "d", "e"]
    newest_first = store.list_records("us-east-1", MODEL, ListQuery(limit=2))
    assert [r.name for r in newest_first] == ["e", "c"]
    last = newest_first[-1]
    following = store.list_records(
        "us-east-1", MODEL, ListQuery(limit=2, after=(last.created_at, last.name_key))
    )
    assert [r.name for r in following] == ["d", "a"]
    assert [
        r.name for r in store.list_records("us-east-1", MODEL, ListQuery(status="InService"))
    ] == [
        "c",
        "a",
    ]
    window = ListQuery(created_after=0.5, created_before=3.5, sort_by="name_key", descending=False)
    assert [r.name for r in store.list_records("us-east-1", MODEL, window)] == ["a", "c", "d"]
    assert [
        r.name for r in store.list_records("us-east-1", MODEL, ListQuery(name_contains="C"))
    ] == ["c"]
    # LIKE wildcards in NameContains are literal characters, not patterns.
    assert store.list_records("us-east-1", MODEL, ListQuery(name_contains="%")) == []


def test_tags_overwrite_and_delete(store: Store) -> None:
    record = store.insert(_record("m", 1.0))
    store.put_tags(record.arn, [("a", "1"), ("b", "2")])
    store.put_tags(record.arn, [("b", "3")])
    assert store.list_tags(record.arn) == [("a", "1"), ("b", "3")]
    store.delete_tags(record.arn, ["a", "missing"])
    assert store.list_tags(record.arn) == [("b", "3")]
    store.delete(record)
    assert store.list_tags(record.arn) == []


def test_find_across_regions_and_reopen_keeps_data(store: Store, tmp_path: Path) -> None:
    store.insert(_record("m", 1.0, status="Creating"))
    other = _record("m", 2.0, status="Creating")
    other.region, other.arn = "eu-west-1", other.arn.replace("us-east-1", "eu-west-1")
    store.insert(other)
    assert {r.region for r in store.find(MODEL, statuses=["Creating"])} == {
        "us-east-1",
        "eu-west-1",
    }
    # Migrations are idempotent: opening the same database again finds everything there.
    again = Store(store.engine)
    from shadowlab.store.migrate import upgrade

    upgrade(store.engine)
    assert len(again.find(MODEL)) == 2


# -- units of work ------------------------------------------------------------------------------


def test_unit_of_work_commits_all_its_writes_together(store: Store) -> None:
    with store.unit_of_work() as uow:
        record = uow.insert(_record("m", 1.0))
        uow.put_tags(record.arn, [("a", "1")])
        # Reads in the unit see its own writes before they commit.
        mine = uow.get("us-east-1", MODEL, "m")
        assert mine is not None and uow.list_tags(record.arn) == [("a", "1")]
        mine.document["x"] = 1
        uow.update(mine)
    found = store.get("us-east-1", MODEL, "m")
    assert found is not None and found.document["x"] == 1 and found.version == 2
    assert store.list_tags(record.arn) == [("a", "1")]


def test_unit_of_work_rolls_everything_back_when_it_raises(store: Store) -> None:
    kept = store.insert(_record("kept", 1.0))
    with pytest.raises(RuntimeError), store.unit_of_work():
        record = store.insert(_record("m", 1.0))
        store.put_tags(record.arn, [("a", "1")])
        kept.document["x"] = 1
        store.update(kept)
        raise RuntimeError("the operation failed after three writes")
    assert store.get("us-east-1", MODEL, "m") is None
    assert store.list_tags(record.arn) == []
    fresh = store.get("us-east-1", MODEL, "kept")
    assert fresh is not None and "x" not in fresh.document and fresh.version == 1


def test_a_stale_version_aborts_the_whole_unit(store: Store) -> None:
    store.insert(_record("m", 1.0))
    stale = store.get("us-east-1", MODEL, "m")
    fresh = store.get("us-east-1", MODEL, "m")
    assert stale is not None and fresh is not None
    fresh.document["x"] = "other writer"
    store.update(fresh)
    with pytest.raises(StaleRecord), store.unit_of_work():
        store.insert(_record("n", 2.0))
        stale.document["x"] = "lost"
        store.update(stale)
    assert store.get("us-east-1", MODEL, "n") is None
    current = store.get("us-east-1", MODEL, "m")
    assert current is not None and current.document["x"] == "other writer"


def test_a_unit_inside_a_unit_joins_it(store: Store) -> None:
    with pytest.raises(RuntimeError), store.unit_of_work():
        with store.unit_of_work():
            store.insert(_record("inner", 1.0))
        assert store.in_unit_of_work()
        raise RuntimeError("the outer unit decides")
    assert not store.in_unit_of_work()
    assert store.get("us-east-1", MODEL, "inner") is None


def test_other_threads_keep_their_own_transactions(store: Store) -> None:
    """A unit binds the calling thread only: another thread reads what was committed, and its
    writes wait for the unit instead of failing (SQLite: one writer at a time)."""
    store.insert(_record("m", 1.0))
    entered, release = threading.Event(), threading.Event()
    seen: list[object] = []
    written: list[BaseException | None] = []

    def other_thread() -> None:
        entered.wait(5)
        seen.append(store.get("us-east-1", MODEL, "in-unit"))
        try:
            store.insert(_record("other", 3.0))
            written.append(None)
        except BaseException as exc:
            written.append(exc)

    thread = threading.Thread(target=other_thread)
    thread.start()
    with store.unit_of_work():
        store.insert(_record("in-unit", 2.0))
        entered.set()
        # Give the other thread time to read, and to block on its write where it must.
        release.wait(0.3)
    thread.join(10)
    assert seen == [None] and written == [None]
    assert {r.name for r in store.find(MODEL)} == {"m", "in-unit", "other"}
