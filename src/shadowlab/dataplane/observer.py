"""The seam for data capture: an optional observer told about every production answer and
every shadow result of the endpoints whose route asks for capture. Elsewhere (no observer, or a
route with no capture) the data plane creates no event ids and keeps no copies of shadow
response bodies, so the seam costs nothing when unused.
"""

from __future__ import annotations

import os
from typing import Literal, NamedTuple, Protocol

# answered: the model sent an HTTP answer (`status`, maybe non-2xx). failed: no answer (refused,
# dropped connection, unparseable, no live instance). timeout: no answer in time. shed: a shadow
# copy that was due but never ran, for lack of capacity (refused at admission or by the worker);
# it carries no response and is counted, not written, by capture.
Outcome = Literal["answered", "failed", "timeout", "shed"]


# Built for every captured request on the event loop, so both are cheap to make: named tuples,
# and header values kept as the bytes that came off the wire (capture decodes them on its own
# thread, once per distinct value). The hot paths build them with `tuple.__new__(Class, (every
# field, in order))`: calling the class runs the Python-level __new__ that NamedTuple generates,
# a frame that cost more than the tuple (a slots dataclass's __init__ cost more still). Capture's
# native encoder reads them by position (``capture/_lines.c``), so the field order is part of
# the contract: add fields at the end (docs/benchmarks.md, "capture").
class InvocationEvent(NamedTuple):
    """What production and its shadow copies share: one request as the client sent it."""

    endpoint: str
    event_id: str  # a random UUID, shared by the production record and its shadow records
    inference_id: bytes | None  # X-Amzn-SageMaker-Inference-Id as sent, when the client sent one
    inference_time: float  # epoch seconds when the request arrived
    request_body: bytes
    request_content_type: bytes | None  # Content-Type as sent
    accept: bytes | None  # Accept as sent
    # The route's capture configurations (see EndpointRoute.capture), for the observer.
    capture: tuple[object, ...] = ()


class InvocationRecord(NamedTuple):
    event: InvocationEvent
    role: Literal["production", "shadow"]
    variant: str
    status: int  # the model's HTTP status; 0 when there was no answer (see error)
    response_body: bytes
    response_content_type: bytes | None  # the model's Content-Type as sent
    error: str | None  # why there was no answer: timeout, connection refused or dropped ...
    latency_s: float  # from sending to the model until its answer (or the failure)
    outcome: Outcome = "answered"


class InvocationObserver(Protocol):
    def observe(self, record: InvocationRecord) -> None:
        """Called on the data plane's event loop: must return quickly and never block."""


# Event ids are made a block at a time: formatting each one from 128 random bits cost ~9k CPU
# instructions here (5 slices and a join of a hex string), the largest single part of capture's
# cost on the event loop; taking one from a block costs ~1k (docs/benchmarks.md, capture).
_BLOCK = 256
_ids: list[str] = []


def _refill() -> None:
    """A block of ids: a random UUID version-4 prefix (74 random bits, shared by the block) and
    per id 12 random hex digits, distinct within the block: two ids can only be equal if two
    blocks drew the same 74 bits and then two of their ids the same 48."""
    while True:
        raw = os.urandom(10 + 6 * _BLOCK)
        tails = raw[10:].hex(" ", 6).split()
        if len(set(tails)) == _BLOCK:
            break
    h = raw[:10].hex()
    prefix = f"{h[:8]}-{h[8:12]}-4{h[12:15]}-{_VARIANT[int(h[15], 16) & 3]}{h[16:19]}-"
    _ids.extend([prefix + tail for tail in tails])


def new_event_id() -> str:
    """A UUID-shaped id (version 4 layout, as SageMaker's eventIds look), unique: see `_refill`.
    Its last 8 hex digits are uniformly random, which is what capture sampling reads.
    """
    try:
        return _ids.pop()
    except IndexError:
        _refill()
        return _ids.pop()


_VARIANT = "89ab"
os.register_at_fork(after_in_child=_ids.clear)  # a child must not hand out its parent's ids
