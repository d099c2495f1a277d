"""Operation name -> service call. The only place that knows which service owns which call."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar, cast

from shadowlab.services.context import RequestContext
from shadowlab.services.registry import Services

Handler = Callable[[RequestContext, Mapping[str, Any]], Mapping[str, object]]
Request = TypeVar("Request")


def _takes_wire(call: Callable[[RequestContext, Request], Mapping[str, object]]) -> Handler:
    """A service call as the handler calls it: with the parsed request. Each service call
    declares its operation's input shape (the TypedDict generated from botocore's model); the
    wire layer has checked the request against that same shape before any call runs."""
    return cast(Handler, call)


def operation_table(services: Services) -> dict[str, Handler]:
    m, c, e, x, t = (
        services.models,
        services.configs,
        services.endpoints,
        services.experiments,
        services.tags,
    )
    table: dict[str, Callable[[RequestContext, Any], Mapping[str, object]]] = {
        "CreateModel": m.create_model,
        "DescribeModel": m.describe_model,
        "ListModels": m.list_models,
        "DeleteModel": m.delete_model,
        "CreateEndpointConfig": c.create_endpoint_config,
        "DescribeEndpointConfig": c.describe_endpoint_config,
        "ListEndpointConfigs": c.list_endpoint_configs,
        "DeleteEndpointConfig": c.delete_endpoint_config,
        "CreateEndpoint": e.create_endpoint,
        "DescribeEndpoint": e.describe_endpoint,
        "ListEndpoints": e.list_endpoints,
        "UpdateEndpoint": e.update_endpoint,
        "UpdateEndpointWeightsAndCapacities": e.update_endpoint_weights_and_capacities,
        "DeleteEndpoint": e.delete_endpoint,
        "CreateInferenceExperiment": x.create_inference_experiment,
        "DescribeInferenceExperiment": x.describe_inference_experiment,
        "ListInferenceExperiments": x.list_inference_experiments,
        "UpdateInferenceExperiment": x.update_inference_experiment,
        "StartInferenceExperiment": x.start_inference_experiment,
        "StopInferenceExperiment": x.stop_inference_experiment,
        "DeleteInferenceExperiment": x.delete_inference_experiment,
        "AddTags": t.add_tags,
        "ListTags": t.list_tags,
        "DeleteTags": t.delete_tags,
    }
    return {name: _takes_wire(call) for name, call in table.items()}


# Calls that change state: after one, the reconciler is woken instead of waiting its interval.
MUTATING_PREFIXES = ("Create", "Update", "Delete", "Start", "Stop")
