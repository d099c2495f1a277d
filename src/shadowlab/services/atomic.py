"""Running an API operation, or a reconciler step, as one unit of work.

Every write is a compare-and-set on the record's version. When one finds the record changed
since it was read, the whole unit rolls back and the whole operation runs again from its
reads, so a retry never mixes what one attempt read with what another wrote.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from shadowlab.errors import ServiceError
from shadowlab.store import StaleRecord, Store

T = TypeVar("T")

# Enough for a burst of concurrent callers on one record; beyond it the caller is told to retry.
CAS_ATTEMPTS = 8


def run_atomically(
    store: Store,
    operation: Callable[[], T],
    *,
    busy: Callable[[], ServiceError],
    attempts: int = CAS_ATTEMPTS,
) -> T:
    """Run `operation` in one unit of work, again while it loses compare-and-set races; `busy()`
    is raised once `attempts` runs have lost.

    Inside a unit that is already open, `operation` runs once within it and a StaleRecord
    propagates: only the outermost unit can roll back, so only its owner can try again.
    """
    if store.in_unit_of_work():
        return operation()
    for _ in range(attempts):
        try:
            with store.unit_of_work():
                return operation()
        except StaleRecord:
            continue
    raise busy()
