"""`Services`: the five services of the SageMaker API as one typed value.

Built once by the composition root (`shadowlab.composition.build_services`) and handed to the
operation table, which is the only place that knows which service owns which call.
"""

from __future__ import annotations

from dataclasses import dataclass

from shadowlab.services.endpoint_configs import EndpointConfigService
from shadowlab.services.endpoints import EndpointService
from shadowlab.services.experiments import ExperimentService
from shadowlab.services.models import ModelService
from shadowlab.services.tags import TagService


@dataclass(frozen=True)
class Services:
    tags: TagService
    models: ModelService
    configs: EndpointConfigService
    endpoints: EndpointService
    experiments: ExperimentService
