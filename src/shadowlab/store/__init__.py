"""Persistence only: SQLAlchemy 2 Core over SQLite (embedded) or PostgreSQL (shared)."""

from shadowlab.store.records import ListQuery, Record
from shadowlab.store.store import AlreadyExists, StaleRecord, Store

__all__ = ["AlreadyExists", "ListQuery", "Record", "StaleRecord", "Store"]
