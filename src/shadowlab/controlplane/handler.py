"""One AWS JSON 1.1 request in, one response out: the transport-independent domain handler.

Parse and validate against botocore's model, call the service, serialise the output shape;
every failure becomes the AWS error body, never a stack trace.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from shadowlab.awsprotocol.json11 import error_response, parse_request, serialize_output
from shadowlab.awsprotocol.service_models import sagemaker_model
from shadowlab.controlplane.operations import MUTATING_PREFIXES, Handler
from shadowlab.errors import InternalFailure, ServiceError, UnknownOperationException
from shadowlab.services.context import RequestContext

log = logging.getLogger(__name__)

# SigV4: "AWS4-HMAC-SHA256 Credential=AKID/20261124/us-west-2/sagemaker/aws4_request, ..."
_CREDENTIAL_SCOPE = re.compile(r"Credential=[^/\s]+/\d{8}/([a-z0-9-]+)/")
_CONTENT_TYPE = "application/x-amz-json-1.1"


@dataclass(frozen=True)
class Reply:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


def region_of(authorization: str | None, default: str) -> str:
    match = _CREDENTIAL_SCOPE.search(authorization or "")
    return match.group(1) if match else default


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
            ctx = RequestContext(region_of(authorization, self.default_region), self.account)
            result = call(ctx, params)
            if operation.name.startswith(MUTATING_PREFIXES):
                self.on_change()
            headers = [("Content-Type", _CONTENT_TYPE), ("x-amzn-RequestId", request_id)]
            return Reply(200, headers, serialize_output(operation, result))
        except ServiceError as error:
            # The caller's mistake (or a refusal the caller must see): answered, not logged.
            return self._error_reply(error, request_id)
        except Exception:
            log.exception("control plane: unexpected failure (request %s)", request_id)
            return self._internal_failure(request_id)

    def _error_reply(self, error: ServiceError, request_id: str) -> Reply:
        try:
            return Reply(*error_response(self.service, error, request_id))
        except Exception:
            # An error whose extra fields cannot take their shape is our bug: it is answered
            # as one (500, logged once) rather than escaping into the transport.
            log.exception("control plane: cannot serialise %r (request %s)", error, request_id)
            return self._internal_failure(request_id)

    def _internal_failure(self, request_id: str) -> Reply:
        internal = InternalFailure(
            f"An internal error occurred; request id {request_id}. See the server log."
        )
        return Reply(*error_response(self.service, internal, request_id))
