"""botocore's service models for SageMaker: the specification every wire check reads from.

Loaded once per process: a model is several megabytes of JSON, and botocore's shape objects
cache their resolved members, so one shared instance keeps both the load and the lookups cheap.
"""

from __future__ import annotations

import functools

import botocore.loaders
import botocore.model


@functools.cache
def _loader() -> botocore.loaders.Loader:
    return botocore.loaders.create_loader()


@functools.cache
def service_model(service_name: str) -> botocore.model.ServiceModel:
    """Any service model botocore ships, by its name (`sagemaker`, `sagemaker-runtime` ...)."""
    # A loader rather than a botocore Session: no credential or config lookups are involved.
    description = _loader().load_service_model(service_name, "service-2")
    return botocore.model.ServiceModel(description, service_name=service_name)


@functools.cache
def sagemaker_model() -> botocore.model.ServiceModel:
    """The control-plane API (protocol `json`, JSON 1.1, target prefix `SageMaker`); cached."""
    return service_model("sagemaker")


@functools.cache
def runtime_model() -> botocore.model.ServiceModel:
    """The invocation API, `sagemaker-runtime` (protocol `rest-json`); cached."""
    return service_model("sagemaker-runtime")
