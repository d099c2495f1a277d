"""Persistence only: SQLAlchemy 2 Core over SQLite (embedded) or PostgreSQL (shared)."""

from shadowlab.store.records import (
    ENDPOINT_CONFIGS,
    ENDPOINTS,
    EXPERIMENTS,
    MODELS,
    ListQuery,
    NoState,
    Record,
    RecordKind,
)
from shadowlab.store.store import AlreadyExists, StaleRecord, Store

__all__ = [
    "ENDPOINTS",
    "ENDPOINT_CONFIGS",
    "EXPERIMENTS",
    "MODELS",
    "AlreadyExists",
    "ListQuery",
    "NoState",
    "Record",
    "RecordKind",
    "StaleRecord",
    "Store",
]
