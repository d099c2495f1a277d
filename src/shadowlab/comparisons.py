"""The server's side of comparisons: an experiment's comparison from this server's own store,
captures and metrics, for the JSON route and for the judge that decides automatic promotion.

Before reading, it makes the stores current: the metrics of the last seconds are flushed and
open capture files are sealed and stored, so a comparison sees every request up to now.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Mapping
from typing import Any

from shadowlab.analysis import Comparison
from shadowlab.capture import ObjectStore
from shadowlab.errors import ServiceError
from shadowlab.metrics.query import metrics_json
from shadowlab.reporting import compare_experiment, passed, window
from shadowlab.services.context import RequestContext
from shadowlab.services.endpoints import EndpointService
from shadowlab.services.experiments import ExperimentService
from shadowlab.services.judging import Judgement
from shadowlab.store import Store

log = logging.getLogger(__name__)


class Comparer:
    def __init__(
        self,
        store: Store,
        experiments: ExperimentService,
        endpoints: EndpointService,
        object_store: ObjectStore,
        account: str,
        make_current: Callable[[], None],
    ) -> None:
        self.store = store
        self.experiments = experiments
        self.endpoints = endpoints
        self.object_store = object_store
        self.account = account
        self.make_current = make_current  # flush metrics, seal captures (blocking; a thread)

    def compare(self, region: str, name: str) -> Comparison:
        """ResourceNotFound (a ServiceError) when there is no such experiment."""
        ctx = RequestContext(region, self.account)
        experiment = self.experiments.describe_inference_experiment(ctx, {"Name": name})
        return self._compare(ctx, experiment)

    def _compare(self, ctx: RequestContext, experiment: Mapping[str, Any]) -> Comparison:
        endpoint_name = experiment["EndpointMetadata"]["EndpointName"]
        endpoint = None
        # Deleted since: the experiment's own capture config still says where to look.
        with contextlib.suppress(ServiceError):
            endpoint = self.endpoints.describe_endpoint(ctx, {"EndpointName": endpoint_name})
        self.make_current()
        start, end = window(experiment)
        metrics = metrics_json(self.store, ctx.region, endpoint_name, start, end)
        tags = self.store.list_tags(experiment["Arn"])
        return compare_experiment(experiment, endpoint, tags, metrics, self.object_store)

    def as_json(self, region: str, name: str) -> dict[str, Any]:
        return self.compare(region, name).as_dict()

    def judge(self, region: str, experiment: Mapping[str, Any]) -> Judgement:
        """The services' `Judge`: may this experiment's shadow be promoted now?"""
        comparison = self._compare(RequestContext(region, self.account), experiment)
        verdict = comparison.verdict
        # The summary, then why each guardrail that did not pass did not (or all of them).
        telling = [r for r in verdict.guardrails if r.status != "pass"] or verdict.guardrails
        reason = "; ".join([verdict.summary, *(f"{r.name}: {r.reason}" for r in telling)])
        return Judgement(passed=passed(comparison), verdict=verdict.status, reason=reason)
