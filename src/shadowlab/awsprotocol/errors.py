"""The HTTP status of an AWS error code, as the service model declares it.

Modeled errors carry `error.httpStatusCode` in botocore's model (sagemaker-runtime's ModelError
is 424, ServiceUnavailable 503); SageMaker's own errors declare none and travel as 400, which is
what AWS sends for them. Codes the model does not know are AWS's common errors.
"""

from __future__ import annotations

import botocore.model

# AWS's common errors (shared by every service, absent from the models), by HTTP status.
_COMMON_STATUS = {
    "InternalFailure": 500,
    "InternalServerError": 500,
    "ServiceUnavailable": 503,
}


def http_status_for(service: botocore.model.ServiceModel, code: str) -> int:
    """The HTTP status AWS answers `code` with: the error shape's httpStatusCode, 500 or 503
    for AWS's common server-side errors, 400 otherwise."""
    shape = service.shape_for_error_code(code)
    if shape is not None:
        declared = shape.metadata.get("error", {}).get("httpStatusCode")
        if declared is not None:
            return int(declared)
    return _COMMON_STATUS.get(code, 400)
