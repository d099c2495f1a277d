"""Model hosting: SageMaker-contract worker processes, the built-in runtime, supervision.

`artifacts` turns a ModelDataUrl into a model directory, `runtime` loads and runs it the way the
SageMaker inference toolkit does, `worker` serves it over HTTP (`/ping`, `/invocations`) in its own
process, and `supervisor` starts, watches, restarts and scales those processes per variant.
"""
