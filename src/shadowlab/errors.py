"""Service errors that carry their AWS error code.

Every rule the services enforce raises one of these; the transports turn them into the exact
wire form AWS uses. The HTTP status comes from the error shape in botocore's service model
(`awsprotocol.errors.http_status_for`), so this module holds codes and messages only.
"""

from __future__ import annotations

from typing import Any

# The most characters of one client-supplied value an error message repeats. AWS repeats values
# whole, and clients match on the text, so the limit keeps whole whatever a real request holds
# (names <= 63, tags <= 256, URLs and most ARNs <= 1024, a list of three model variants ~500)
# and only cuts what no real request holds: a 2 MB name no longer makes a 2 MB error body.
ECHO_LIMIT = 1024

# A last line of defence for whole messages: the longest one built on purpose (a validation
# message listing its ten violations, each with a value of up to ECHO_LIMIT characters and at
# worst the 4.5 KB instance-type enum: ~56 KB) stays below it; anything longer can only be
# client input echoed by a message that forgot `excerpt`.
MESSAGE_LIMIT = 64 * 1024


def excerpt(text: str, limit: int = ECHO_LIMIT) -> str:
    """`text` as an error message may repeat it: its first `limit` characters, then `...`."""
    return text if len(text) <= limit else text[:limit] + "..."


class ServiceError(Exception):
    """An error the caller caused or must see, with the AWS error code it travels under."""

    code: str = "InternalFailure"

    def __init__(self, message: str, *, code: str | None = None, **fields: Any) -> None:
        message = excerpt(message, MESSAGE_LIMIT)
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        # Extra members of the error shape (ModelError's OriginalStatusCode, for example).
        self.fields: dict[str, Any] = fields

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, message={self.message!r})"


class ValidationException(ServiceError):
    code = "ValidationException"


class ResourceNotFound(ServiceError):
    code = "ResourceNotFound"


class ResourceInUse(ServiceError):
    code = "ResourceInUse"


class ResourceLimitExceeded(ServiceError):
    code = "ResourceLimitExceeded"


class ConflictException(ServiceError):
    code = "ConflictException"


class UnknownOperationException(ServiceError):
    code = "UnknownOperationException"


class SerializationException(ServiceError):
    code = "SerializationException"


class InternalFailure(ServiceError):
    code = "InternalFailure"


# sagemaker-runtime (REST-JSON) errors.
class RuntimeValidationError(ServiceError):
    code = "ValidationError"


class ModelError(ServiceError):
    code = "ModelError"


class ServiceUnavailable(ServiceError):
    code = "ServiceUnavailable"
