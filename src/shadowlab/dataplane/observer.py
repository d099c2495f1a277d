"""The seam for data capture: an optional observer told about every production answer and
every shadow result of the endpoints whose route asks for capture. Elsewhere (no observer, or a
route with no capture) the data plane creates no event ids and keeps no copies of shadow
response bodies, so the seam costs nothing when unused.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable
from typing import Final, Literal, Protocol

# answered: the model sent an HTTP answer (`status`, maybe non-2xx). failed: no answer (refused,
# dropped connection, unparseable, no live instance). timeout: no answer in time. shed: a shadow
# copy that was due but never ran, for lack of capacity (refused at admission or by the worker);
# it carries no response and is counted, not written, by capture.
Outcome = Literal["answered", "failed", "timeout", "shed"]


Role = Literal["production", "shadow"]

# Capture's two messages are plain tuples, built for every captured request on the event loop:
# a tuple display costs ~0.3k CPU instructions, a named tuple ~2k (its class's __new__, or
# tuple.__new__ on the class) and a slots dataclass more (docs/benchmarks.md, "capture").
# Writers build them whole, in this order (the type aliases make mypy check every field);
# readers unpack them or index them with the names below. Header values are the bytes that
# came off the wire: capture decodes them on its own thread, once per distinct value. Capture's
# native encoder reads them by position (``capture/_lines.c``), so the order is a contract: add
# fields at the end.

InvocationEvent = tuple[
    str,  # endpoint
    str,  # event id: UUID-shaped, shared by the production record and its shadow records
    bytes | None,  # inference id: X-Amzn-SageMaker-Inference-Id as sent, when the client sent one
    float,  # inference time: epoch seconds when the request arrived
    bytes,  # request body
    bytes | None,  # request content type: Content-Type as sent
    bytes | None,  # accept: Accept as sent
    tuple[object, ...],  # capture: the route's capture configurations (EndpointRoute.capture)
]
"""What production and its shadow copies share: one request as the client sent it."""

ENDPOINT: Final = 0
EVENT_ID: Final = 1
INFERENCE_ID: Final = 2
INFERENCE_TIME: Final = 3
REQUEST_BODY: Final = 4
REQUEST_CONTENT_TYPE: Final = 5
ACCEPT: Final = 6
CAPTURE: Final = 7

InvocationRecord = tuple[
    InvocationEvent,  # event
    Role,  # role
    str,  # variant
    int,  # status: the model's HTTP status; 0 when there was no answer (see error)
    bytes,  # response body
    bytes | None,  # response content type: the model's Content-Type as sent
    str | None,  # error: why there was no answer (timeout, connection refused or dropped ...)
    float,  # latency_s: from sending to the model until its answer (or the failure)
    Outcome,  # outcome
]
"""What one variant made of an event: production's answer, or a shadow copy's result."""

EVENT: Final = 0
ROLE: Final = 1
VARIANT: Final = 2
STATUS: Final = 3
RESPONSE_BODY: Final = 4
RESPONSE_CONTENT_TYPE: Final = 5
ERROR: Final = 6
LATENCY_S: Final = 7
OUTCOME: Final = 8


def invocation_event(
    *,
    endpoint: str,
    event_id: str,
    inference_id: bytes | None,
    inference_time: float,
    request_body: bytes,
    request_content_type: bytes | None,
    accept: bytes | None = None,
    capture: tuple[object, ...] = (),
) -> InvocationEvent:
    """An event with its fields named: for code off the hot path, and tests."""
    return (
        endpoint,
        event_id,
        inference_id,
        inference_time,
        request_body,
        request_content_type,
        accept,
        capture,
    )


def invocation_record(
    *,
    event: InvocationEvent,
    role: Role,
    variant: str,
    status: int,
    response_body: bytes,
    response_content_type: bytes | None,
    error: str | None,
    latency_s: float,
    outcome: Outcome = "answered",
) -> InvocationRecord:
    """A record with its fields named: for code off the hot path, and tests."""
    return (
        event,
        role,
        variant,
        status,
        response_body,
        response_content_type,
        error,
        latency_s,
        outcome,
    )


class InvocationObserver(Protocol):
    def observe(self, record: InvocationRecord) -> None:
        """Called on the data plane's event loop: must return quickly and never block."""


# Event ids: SageMaker's eventIds are UUIDs, and so are these, in the version-4 layout: the first
# 74 bits random per process (drawn again in a forked child), the last 48 (12 hex digits) a count
# from a random start. Unique within a process by construction, across processes unless two draw
# the same 74 bits. Sampling mixes the digits it reads (CaptureConfig.sampled), so counted ids
# sample as evenly as random ones. Made in C when it is built (``_eventids.c``: a few hundred CPU
# instructions; formatting in Python cost 2-3.5k, a uuid4 ~9k; docs/benchmarks.md, "capture").
_VARIANT = "89ab"
PREFIX_LENGTH = 24


class _Ids:
    """The Python version: the specification, and the fallback without the C one."""

    prefix = "0" * PREFIX_LENGTH
    counter = itertools.count()

    @classmethod
    def seed(cls, prefix: str, start: int) -> None:
        if len(prefix) != PREFIX_LENGTH or not prefix.isascii():
            raise ValueError(f"an event id prefix has {PREFIX_LENGTH} ASCII characters")
        cls.prefix, cls.counter = prefix, itertools.count(start)

    @classmethod
    def new_event_id(cls) -> str:
        return f"{cls.prefix}{next(cls.counter) & 0xFFFFFFFFFFFF:012x}"


def _native_ids() -> tuple[Callable[[], str], Callable[[str, int], None]] | None:
    try:
        from shadowlab.dataplane._eventids import new_event_id, seed
    except ImportError:  # not built (no C compiler at install time)
        return None
    return new_event_id, seed


NATIVE_IDS = _native_ids()
new_event_id: Callable[[], str]
_seed: Callable[[str, int], None]
# new_event_id() -> a UUID-shaped event id, unique (see above).
new_event_id, _seed = NATIVE_IDS or (_Ids.new_event_id, _Ids.seed)


def _new_process() -> None:
    """Draw this process's prefix and the counter's start (below 2**47: 12 hex digits for 1.4e14
    ids, 44 years at 100k a second)."""
    h = os.urandom(10).hex()
    prefix = f"{h[:8]}-{h[8:12]}-4{h[12:15]}-{_VARIANT[int(h[15], 16) & 3]}{h[16:19]}-"
    _seed(prefix, int.from_bytes(os.urandom(6)) >> 1)


_new_process()
os.register_at_fork(after_in_child=_new_process)  # a child must not repeat its parent's ids
