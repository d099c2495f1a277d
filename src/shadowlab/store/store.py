"""The store: resources and tags.

Each call is its own short transaction, unless a unit of work is open on the calling thread:
then every call joins that unit's transaction, so an API operation commits all of its writes or
none (see `Store.unit_of_work`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, and_, create_engine, delete, event, insert, or_, select
from sqlalchemy import update as sql_update
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.pool import StaticPool

from shadowlab.domain.kinds import ResourceKind
from shadowlab.store.records import RECORD_KINDS, ListQuery, Record, RecordKind, S
from shadowlab.store.schema import resources, tags

log = logging.getLogger(__name__)


class AlreadyExists(Exception):
    """A resource of that kind and name exists already."""


class StaleRecord(Exception):
    """Someone else updated the record since it was read (compare-and-set failed)."""


# Connection execution option: the transaction will write (SQLite then takes the write lock first).
_WRITE = "shadowlab_write"
# PostgreSQL SQLSTATEs of a transaction that lost a race and may simply be run again.
_LOST_RACE = {"40001", "40P01"}  # serialization_failure, deadlock_detected


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # The driver's own transaction handling is off: it would BEGIN only before the first write,
    # so a unit of work's reads would run outside its transaction; _sqlite_begin says BEGIN.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    # WAL lets the reconciler read while a request writes; busy_timeout waits instead of failing.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _sqlite_begin(conn: Connection) -> None:
    # A writing transaction takes the write lock up front (waiting up to busy_timeout for it).
    # A deferred one would take a read snapshot first and, if another connection committed
    # meanwhile, fail at its first write with SQLITE_BUSY at once, whatever busy_timeout says.
    mode = "IMMEDIATE" if conn.get_execution_options().get(_WRITE) else "DEFERRED"
    conn.exec_driver_sql(f"BEGIN {mode}")


def create_store_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        if url == "sqlite://":
            engine = create_engine(
                url, poolclass=StaticPool, connect_args={"check_same_thread": False}
            )
        else:
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
            engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 5})
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5)


# The inventory view (migration 0003) reads a resource's status from its JSON document, as
# Describe shows it. The `status` column is the one status everything else uses: the store
# writes this copy from it and drops it when reading, so nothing above keeps two in step.
_STATUS_MEMBER = {
    ResourceKind.ENDPOINT: "EndpointStatus",
    ResourceKind.INFERENCE_EXPERIMENT: "Status",
}


def _to_record(row: Any, kind: RecordKind[S]) -> Record[S]:
    document = dict(row.document)
    document.pop(_STATUS_MEMBER.get(kind.resource, ""), None)
    return Record(
        region=row.region,
        kind=kind.resource,
        name=row.name,
        arn=row.arn,
        created_at=row.created_at,
        modified_at=row.modified_at,
        status=row.status,
        parent=row.parent,
        document=document,
        state=kind.decode(row.state),
        version=row.version,
    )


def _any_record(row: Any) -> Record[Any]:
    return _to_record(row, RECORD_KINDS[ResourceKind(row.kind)])


def _values(record: Record[Any]) -> dict[str, Any]:
    document = record.document
    member = _STATUS_MEMBER.get(record.kind)
    if member is not None:
        document = {**document, member: record.status}
    return {
        "region": record.region,
        "kind": record.kind.value,
        "name_key": record.name_key,
        "name": record.name,
        "arn": record.arn,
        "created_at": record.created_at,
        "modified_at": record.modified_at,
        "status": record.status,
        "parent": record.parent,
        "document": document,
        "state": record.state.to_json(),
    }


def _lost_race(exc: DBAPIError) -> bool:
    return getattr(exc.orig, "sqlstate", None) in _LOST_RACE


class _Bound(threading.local):
    """The connection of the unit of work open on this thread, if any."""

    connection: Connection | None = None


class Store:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._bound = _Bound()

    @classmethod
    def open(cls, url: str) -> Store:
        """Connect and bring the schema to the newest migration."""
        from shadowlab.store.migrate import upgrade

        engine = create_store_engine(url)
        upgrade(engine)
        return cls(engine)

    def close(self) -> None:
        self.engine.dispose()

    # -- transactions ---------------------------------------------------------------------------

    @contextmanager
    def unit_of_work(self) -> Iterator[Store]:
        """One transaction for everything this thread does with the store inside the block.

        Commits when the block ends, rolls everything back when it raises: a StaleRecord from a
        compare-and-set, a service error, a database failure. A unit opened inside another
        joins it (the outer one decides). Records read or written in a unit that rolled back
        are stale (their version may count a write that never happened): read them again.

        SQLite: the unit holds the write lock from its start (BEGIN IMMEDIATE), so units run one
        at a time and everything they read stays true until they commit; readers are not blocked
        (WAL). PostgreSQL: READ COMMITTED; every update checks the version it read, and a unit
        that lost a deadlock or serialization race raises StaleRecord, to be run again.
        """
        if self._bound.connection is not None:
            yield self
            return
        try:
            with self.transaction(write=True) as conn:
                self._bound.connection = conn
                try:
                    yield self
                finally:
                    self._bound.connection = None
        except DBAPIError as exc:
            if _lost_race(exc):
                raise StaleRecord(str(exc.orig)) from exc
            raise

    def in_unit_of_work(self) -> bool:
        return self._bound.connection is not None

    @contextmanager
    def transaction(self, *, write: bool) -> Iterator[Connection]:
        """The open unit of work's connection, or a short transaction of its own."""
        if self._bound.connection is not None:
            yield self._bound.connection
            return
        with self.engine.connect() as conn:
            if write:
                conn.execution_options(**{_WRITE: True})
            with conn.begin():
                yield conn

    # -- resources ------------------------------------------------------------------------------

    def insert(self, record: Record[S]) -> Record[S]:
        """Store a new record; AlreadyExists if the name is taken. Inside a unit of work the
        unit must then end (PostgreSQL refuses anything more in a transaction after an error)."""
        record.version = 1
        try:
            with self.transaction(write=True) as conn:
                conn.execute(insert(resources).values(**_values(record), version=1))
        except IntegrityError as exc:
            raise AlreadyExists(record.arn) from exc
        return record

    def get(self, region: str, kind: RecordKind[S], name: str) -> Record[S] | None:
        query = select(resources).where(
            resources.c.region == region,
            resources.c.kind == kind.resource.value,
            resources.c.name_key == name.lower(),
        )
        with self.transaction(write=False) as conn:
            row = conn.execute(query).first()
        return None if row is None else _to_record(row, kind)

    def get_by_arn(self, arn: str) -> Record[Any] | None:
        with self.transaction(write=False) as conn:
            row = conn.execute(select(resources).where(resources.c.arn == arn)).first()
        return None if row is None else _any_record(row)

    def update(self, record: Record[S]) -> Record[S]:
        """Write the record if nobody changed it since it was read; bump its version."""
        statement = (
            sql_update(resources)
            .where(
                resources.c.region == record.region,
                resources.c.kind == record.kind.value,
                resources.c.name_key == record.name_key,
                resources.c.version == record.version,
            )
            .values(**_values(record), version=record.version + 1)
        )
        with self.transaction(write=True) as conn:
            if conn.execute(statement).rowcount != 1:
                raise StaleRecord(record.arn)
        record.version += 1
        return record

    def delete(self, record: Record[Any]) -> None:
        with self.transaction(write=True) as conn:
            result = conn.execute(
                delete(resources).where(
                    resources.c.arn == record.arn, resources.c.version == record.version
                )
            )
            if result.rowcount != 1:
                raise StaleRecord(record.arn)
            conn.execute(delete(tags).where(tags.c.arn == record.arn))

    def list_records(self, region: str, kind: RecordKind[S], query: ListQuery) -> list[Record[S]]:
        c = resources.c
        conditions: list[Any] = [c.region == region, c.kind == kind.resource.value]
        if query.name_contains:
            conditions.append(c.name_key.contains(query.name_contains.lower(), autoescape=True))
        if query.created_before is not None:
            conditions.append(c.created_at < query.created_before)
        if query.created_after is not None:
            conditions.append(c.created_at > query.created_after)
        if query.modified_before is not None:
            conditions.append(c.modified_at < query.modified_before)
        if query.modified_after is not None:
            conditions.append(c.modified_at > query.modified_after)
        if query.status is not None:
            conditions.append(c.status == query.status)
        sort = c[query.sort_by]
        if query.after is not None:
            value, name_key = query.after
            if query.descending:
                conditions.append(or_(sort < value, and_(sort == value, c.name_key < name_key)))
            else:
                conditions.append(or_(sort > value, and_(sort == value, c.name_key > name_key)))
        order = (sort.desc(), c.name_key.desc()) if query.descending else (sort, c.name_key)
        statement = select(resources).where(*conditions).order_by(*order).limit(query.limit)
        with self.transaction(write=False) as conn:
            return [_to_record(row, kind) for row in conn.execute(statement)]

    def find(
        self,
        kind: RecordKind[S],
        *,
        statuses: Sequence[str] | None = None,
        parent: str | None = None,
        region: str | None = None,
    ) -> list[Record[S]]:
        """Records across regions, for the reconciler and referential checks."""
        conditions: list[Any] = [resources.c.kind == kind.resource.value]
        if statuses is not None:
            conditions.append(resources.c.status.in_(list(statuses)))
        if parent is not None:
            conditions.append(resources.c.parent == parent)
        if region is not None:
            conditions.append(resources.c.region == region)
        with self.transaction(write=False) as conn:
            rows = conn.execute(select(resources).where(*conditions).order_by(resources.c.arn))
            return [_to_record(row, kind) for row in rows]

    # -- tags -----------------------------------------------------------------------------------

    def list_tags(self, arn: str) -> list[tuple[str, str]]:
        statement = select(tags.c.key, tags.c.value).where(tags.c.arn == arn).order_by(tags.c.key)
        with self.transaction(write=False) as conn:
            return [(row.key, row.value) for row in conn.execute(statement)]

    def put_tags(self, arn: str, pairs: Sequence[tuple[str, str]]) -> None:
        """Add or overwrite tags, all in one transaction."""
        with self.transaction(write=True) as conn:
            for key, value in pairs:
                conn.execute(delete(tags).where(tags.c.arn == arn, tags.c.key == key))
                conn.execute(insert(tags).values(arn=arn, key=key, value=value))

    def delete_tags(self, arn: str, keys: Sequence[str]) -> None:
        with self.transaction(write=True) as conn:
            conn.execute(delete(tags).where(tags.c.arn == arn, tags.c.key.in_(list(keys))))
