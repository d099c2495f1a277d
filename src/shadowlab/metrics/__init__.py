"""Per-variant, per-minute metrics with SageMaker's names and units, and their exposition.

The data plane bumps counters and appends latencies (`dataplane.stats`); `MetricsAggregator`
takes them every second into minute cells with DDSketch latency sketches; `MetricsService`
samples the workers' CPU and memory and upserts the cells into the store; `variant_metrics`
reads any window back across replicas; `Exposition` renders `GET /metrics` for Prometheus.
"""

from __future__ import annotations

import os
import secrets
import socket

from shadowlab.metrics.aggregate import LiveVariant, MetricsAggregator
from shadowlab.metrics.prometheus import Exposition
from shadowlab.metrics.query import MinuteMetrics, VariantMetrics, metrics_json, variant_metrics
from shadowlab.metrics.service import MetricsService
from shadowlab.metrics.sketch import RELATIVE_ACCURACY, LatencySketch, merged

__all__ = [
    "RELATIVE_ACCURACY",
    "Exposition",
    "LatencySketch",
    "LiveVariant",
    "MetricsAggregator",
    "MetricsService",
    "MinuteMetrics",
    "VariantMetrics",
    "merged",
    "metrics_json",
    "new_replica_id",
    "variant_metrics",
]


def new_replica_id() -> str:
    """A name for this server process's metric rows: host, pid and a random part.

    New for every process on purpose: a restarted server must not overwrite the rows its
    predecessor wrote for the same minute (each row is a replica's whole count for its minute);
    with its own rows, readers simply add both.
    """
    return f"{socket.gethostname()[:40]}-{os.getpid()}-{secrets.token_hex(4)}"
