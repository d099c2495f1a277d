"""The signature gate in front of both planes: a request is handled only once its SigV4
signature holds (see `shadowlab.auth.sigv4`); the refusal is AWS's error, code and message.

Only the health check and the Prometheus scrape are open: load balancers and scrapers do not
sign, and neither route reveals or changes more than a resource's name.
"""

from __future__ import annotations

from shadowlab.auth import AuthFailure, SigV4Verifier
from shadowlab.awsprotocol.errors import encoder_for
from shadowlab.awsprotocol.service_models import sagemaker_model
from shadowlab.dataplane import wire
from shadowlab.dataplane.request import Request

UNSIGNED_PATHS = frozenset({b"/healthz", b"/metrics"})


class SignatureGate:
    """`allow_unsigned`: requests without an Authorization header pass (loopback development,
    see `auth.policy`); those with one are verified all the same."""

    def __init__(self, verifier: SigV4Verifier, *, allow_unsigned: bool = False) -> None:
        self._verifier = verifier
        self._allow_unsigned = allow_unsigned
        # The refusal is in JSON 1.1 form, which both of botocore's parsers read: JSON 1.1
        # takes the code from `__type`, REST-JSON from x-amzn-ErrorType, so one answer serves
        # the API and the runtime. The status is the failure's own (403, or 400).
        self._errors = wire.ErrorResponses(encoder_for(sagemaker_model()))
        self._request_ids = wire.RequestIds()

    @property
    def allow_unsigned(self) -> bool:
        return self._allow_unsigned

    def refusal(self, req: Request) -> bytes | None:
        """None when `req` may be handled, else the complete error response to send."""
        if req.method in (b"GET", b"HEAD") and req.url.split(b"?", 1)[0] in UNSIGNED_PATHS:
            return None
        failure = self.failure(req)
        if failure is None:
            return None
        request_id = self._request_ids.next()
        return self._errors.response(failure, request_id, req.connection_header, failure.status)

    def failure(self, req: Request, body: bytes | None = None) -> AuthFailure | None:
        """Why `req` may not be handled, or None; for callers that answer in their own words
        (the S3 API), and may pass the body decoded already. Costs a SHA-256 of the body when
        one is signed: callers with large bodies run this off the event loop."""
        if req.authorization is None and self._allow_unsigned:
            return None
        try:
            # Header bytes are decoded as http.client encodes them when botocore sends them.
            self._verifier.verify(
                req.method.decode("latin-1"),
                req.url.decode("latin-1"),
                [(name.decode("latin-1"), value.decode("latin-1")) for name, value in req.headers],
                req.body if body is None else body,
            )
        except AuthFailure as failure:
            return failure
        return None
