"""One AWS JSON 1.1 request in, one response out: the transport-independent domain handler.

Parse and validate against botocore's model, call the service, serialise the output shape;
every failure becomes the AWS error body, never a stack trace.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from shadowlab.awsprotocol.errors import encoder_for
from shadowlab.awsprotocol.json11 import content_type, parse_request, serialize_output
from shadowlab.awsprotocol.scope import region_of
from shadowlab.awsprotocol.service_models import sagemaker_model
from shadowlab.controlplane.operations import MUTATING_PREFIXES, Handler
from shadowlab.errors import InternalFailure, ServiceError, UnknownOperationException
from shadowlab.services.context import RequestContext

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Reply:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


class ControlPlaneHandler:
    def __init__(
        self,
        operations: Mapping[str, Handler],
        *,
        account: str,
        default_region: str,
        on_change: Callable[[], None] = lambda: None,
    ) -> None:
        self.operations = operations
        self.account = account
        self.default_region = default_region
        self.on_change = on_change
        self.service = sagemaker_model()
        self.content_type = content_type(self.service)
        self.errors = encoder_for(self.service)

    def _refuse_unserved(self, target: str | None) -> None:
        """An operation of the SageMaker model that shadowlab does not serve is refused before
        its input is validated: fixing the body would not help the caller."""
        prefix, _, name = (target or "").partition(".")
        # Names outside the model are parse_request's to report (as unknown operations).
        in_model = prefix == self.service.metadata["targetPrefix"] and (
            name in self.service.operation_names
        )
        if in_model and name not in self.operations:
            raise UnknownOperationException(
                f"Operation {name} is part of the SageMaker API but not served by "
                "shadowlab. Supported: models, endpoint configs, endpoints, inference "
                "experiments and tags."
            )

    def handle(self, target: str | None, body: bytes, authorization: str | None) -> Reply:
        request_id = str(uuid.uuid4())
        try:
            self._refuse_unserved(target)
            operation, params = parse_request(self.service, target, body)
            call = self.operations[operation.name]
            # The ASGI app decoded the header as latin-1: encoding gives back the bytes sent.
            scope = authorization.encode("latin-1", "replace") if authorization else None
            ctx = RequestContext(region_of(scope, self.default_region), self.account)
            result = call(ctx, params)
            if operation.name.startswith(MUTATING_PREFIXES):
                self.on_change()
            headers = [("Content-Type", self.content_type), ("x-amzn-RequestId", request_id)]
            return Reply(200, headers, serialize_output(operation, result))
        except ServiceError as error:
            # The caller's mistake (or a refusal the caller must see): answered, not logged.
            return self._error_reply(error, request_id)
        except Exception:
            log.exception("control plane: unexpected failure (request %s)", request_id)
            return self._internal_failure(request_id)

    def _error_reply(self, error: ServiceError, request_id: str) -> Reply:
        try:
            return Reply(*self.errors.response(error, request_id))
        except Exception:
            # An error whose extra fields cannot take their shape is our bug: it is answered
            # as one (500, logged once) rather than escaping into the transport.
            log.exception("control plane: cannot serialise %r (request %s)", error, request_id)
            return self._internal_failure(request_id)

    def _internal_failure(self, request_id: str) -> Reply:
        internal = InternalFailure(
            f"An internal error occurred; request id {request_id}. See the server log."
        )
        return Reply(*self.errors.response(internal, request_id))
