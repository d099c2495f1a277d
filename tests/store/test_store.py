"""The store on SQLite and on PostgreSQL: the same behaviour from both engines."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from shadowlab.domain.kinds import ResourceKind
from shadowlab.store import AlreadyExists, ListQuery, Record, StaleRecord, Store
from tests.conftest import fresh_database_url

MODEL = ResourceKind.MODEL


@pytest.fixture
def store(database_kind: str, tmp_path: Path) -> Iterator[Store]:
    url = fresh_database_url(database_kind, str(tmp_path))
    opened = Store.open(url or f"sqlite:///{tmp_path / 'shadowlab.db'}")
    yield opened
    opened.close()


def _record(name: str, created: float, status: str | None = None) -> Record:
    arn = f"arn:aws:sagemaker:us-east-1:123456789012:model/{name.lower()}"
    return Record("us-east-1", MODEL, name, arn, created, created, {"ModelName": name}, status)


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
