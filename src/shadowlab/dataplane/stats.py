"""Per-variant counters of the data plane: plain ints bumped on the event loop, read anywhere.

They stay cheap on purpose (an attribute increment per event); the metrics part turns them
into SageMaker's per-minute CloudWatch-style numbers.
"""

from __future__ import annotations


class VariantStats:
    """One production variant of one endpoint.

    invocations: requests routed to the variant. invocation_4xx / invocation_5xx: the model
    answered with that class of status (SageMaker's Invocation4XXErrors / Invocation5XXErrors).
    model_errors: every request answered with ModelError (a non-2xx model status, a timeout,
    a connection the model dropped). unavailable: answered ServiceUnavailable (no instance, no
    connection).
    """

    __slots__ = (
        "invocation_4xx",
        "invocation_5xx",
        "invocations",
        "model_errors",
        "unavailable",
        "variant_header",
    )

    def __init__(self, variant: str) -> None:
        self.variant_header = variant.encode("ascii", "replace")  # for x-Amzn-Invoked-...
        self.invocations = 0
        self.invocation_4xx = 0
        self.invocation_5xx = 0
        self.model_errors = 0
        self.unavailable = 0

    def as_dict(self) -> dict[str, int]:
        return {
            "invocations": self.invocations,
            "invocation_4xx": self.invocation_4xx,
            "invocation_5xx": self.invocation_5xx,
            "model_errors": self.model_errors,
            "unavailable": self.unavailable,
        }


class ShadowStats:
    """One shadow variant of one endpoint.

    sent = completed + errors + timeouts + in_flight. completed: the shadow answered 2xx.
    errors: it answered non-2xx, or could not be reached, or dropped the connection (a shadow
    with no live instance counts here too: a copy was due and could not go). timeouts: no
    answer within the copy timeout. dropped: the copy was due but the in-flight limit was
    full, so it was never sent.
    """

    __slots__ = ("completed", "dropped", "errors", "in_flight", "sent", "timeouts")

    def __init__(self) -> None:
        self.sent = 0
        self.completed = 0
        self.errors = 0
        self.timeouts = 0
        self.dropped = 0
        self.in_flight = 0

    def as_dict(self) -> dict[str, int]:
        return {
            "sent": self.sent,
            "completed": self.completed,
            "errors": self.errors,
            "timeouts": self.timeouts,
            "dropped": self.dropped,
            "in_flight": self.in_flight,
        }
