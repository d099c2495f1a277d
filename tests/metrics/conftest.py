"""The data-plane fixtures (model farm, routing, threaded data planes) for metrics tests."""

from tests.dataplane.conftest import farm, routing, start_dataplane

__all__ = ["farm", "routing", "start_dataplane"]
