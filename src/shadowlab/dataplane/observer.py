"""The seam for data capture: an optional observer told about every production answer and
every shadow result of the endpoints whose route asks for capture. Elsewhere (no observer, or a
route with no capture) the data plane creates no event ids and keeps no copies of shadow
response bodies, so the seam costs nothing when unused.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Literal, Protocol

# answered: the model sent an HTTP answer (`status`, maybe non-2xx). failed: no answer (refused,
# dropped connection, unparseable, no live instance). timeout: no answer in time. shed: a shadow
# copy that was due but never ran, for lack of capacity (refused at admission or by the worker);
# it carries no response and is counted, not written, by capture.
Outcome = Literal["answered", "failed", "timeout", "shed"]


# Not frozen: a frozen dataclass sets every field through object.__setattr__, which doubled the
# cost of building one per request (measured, docs/benchmarks.md "capture"). Treat as read-only.
@dataclass(slots=True)
class InvocationEvent:
    """What production and its shadow copies share: one request as the client sent it."""

    endpoint: str
    event_id: str  # uuid4 hex, shared by the production record and its shadow records
    inference_id: str | None  # X-Amzn-SageMaker-Inference-Id, when the client sent one
    inference_time: float  # epoch seconds when the request arrived
    request_body: bytes
    request_content_type: str | None
    accept: str | None
    # The route's capture configurations (see EndpointRoute.capture), for the observer.
    capture: tuple[object, ...] = ()


@dataclass(slots=True)
class InvocationRecord:
    event: InvocationEvent
    role: Literal["production", "shadow"]
    variant: str
    status: int  # the model's HTTP status; 0 when there was no answer (see error)
    response_body: bytes
    response_content_type: str | None
    error: str | None  # why there was no answer: timeout, connection refused or dropped ...
    latency_s: float  # from sending to the model until its answer (or the failure)
    outcome: Outcome = "answered"


class InvocationObserver(Protocol):
    def observe(self, record: InvocationRecord) -> None:
        """Called on the data plane's event loop: must return quickly and never block."""


_random_bits = random.getrandbits


def new_event_id() -> str:
    """A random (version 4) UUID string, as SageMaker's eventIds look, at a fifth of the cost of
    `str(uuid.uuid4())` (no syscall, no UUID object): it is an id, not a secret."""
    h = f"{_random_bits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[int(h[16], 16) & 3]}{h[17:20]}-{h[20:]}"


_VARIANT = "89ab"
