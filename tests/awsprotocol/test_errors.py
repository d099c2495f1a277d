"""HTTP statuses come from the error shapes in the model."""

from __future__ import annotations

import pytest

from shadowlab.awsprotocol.errors import http_status_for
from shadowlab.awsprotocol.service_models import runtime_model, sagemaker_model


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("ValidationException", 400),  # not modeled in sagemaker: AWS's common client error
        ("ResourceNotFound", 400),  # modeled, no httpStatusCode
        ("ResourceInUse", 400),
        ("ResourceLimitExceeded", 400),
        ("ConflictException", 400),
        ("UnknownOperationException", 400),
        ("SerializationException", 400),
        ("InternalFailure", 500),
        ("ServiceUnavailable", 503),
    ],
)
def test_sagemaker_statuses(code: str, status: int) -> None:
    assert http_status_for(sagemaker_model(), code) == status


def test_runtime_statuses_follow_the_model() -> None:
    model = runtime_model()
    for shape in model.error_shapes:
        declared = shape.metadata["error"]["httpStatusCode"] if "error" in shape.metadata else 400
        assert http_status_for(model, shape.name) == declared
    assert http_status_for(model, "ModelError") == 424
    assert http_status_for(model, "ValidationError") == 400
    assert http_status_for(model, "ServiceUnavailable") == 503
    assert http_status_for(model, "InternalFailure") == 500


def test_models_are_loaded_once() -> None:
    assert sagemaker_model() is sagemaker_model()
    assert runtime_model() is runtime_model()
    assert sagemaker_model().metadata["targetPrefix"] == "SageMaker"
    assert runtime_model().metadata["protocol"] == "rest-json"
