"""The data plane: InvokeEndpoint on a raw asyncio.Protocol server, variant routing, shadows."""

from shadowlab.dataplane.asgi import ASGIApp
from shadowlab.dataplane.mirror import MirrorSettings
from shadowlab.dataplane.observer import InvocationEvent, InvocationObserver, InvocationRecord
from shadowlab.dataplane.pool import PoolLimits
from shadowlab.dataplane.routing import EndpointRoute, RoutingTable, ShadowRoute, VariantRoute
from shadowlab.dataplane.server import DataPlaneServer

__all__ = [
    "ASGIApp",
    "DataPlaneServer",
    "EndpointRoute",
    "InvocationEvent",
    "InvocationObserver",
    "InvocationRecord",
    "MirrorSettings",
    "PoolLimits",
    "RoutingTable",
    "ShadowRoute",
    "VariantRoute",
]
