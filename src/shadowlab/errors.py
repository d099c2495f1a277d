"""Service errors that carry their AWS error code.

Every rule the services enforce raises one of these; the transports turn them into the exact
wire form AWS uses. The HTTP status comes from the error shape in botocore's service model
(`awsprotocol.errors.http_status_for`), so this module holds codes and messages only.
"""

from __future__ import annotations

from typing import Any


class ServiceError(Exception):
    """An error the caller caused or must see, with the AWS error code it travels under."""

    code: str = "InternalFailure"

    def __init__(self, message: str, *, code: str | None = None, **fields: Any) -> None:
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
