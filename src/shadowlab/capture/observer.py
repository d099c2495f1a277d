"""The data plane's side of capture: the `InvocationObserver` that feeds the writer."""

from __future__ import annotations

from shadowlab.capture.config import CaptureConfig
from shadowlab.capture.writer import CaptureWriter
from shadowlab.dataplane.observer import InvocationRecord


class CaptureObserver:
    """The data plane's ``InvocationObserver``: hands every record to the writer once per capture
    configuration its route carried (``InvocationEvent.capture``: the endpoint config's and a
    running experiment's may both apply, to different destinations).
    """

    __slots__ = ("_writer",)

    def __init__(self, writer: CaptureWriter) -> None:
        self._writer = writer

    def observe(self, record: InvocationRecord) -> None:
        for config in record.event.capture:
            if isinstance(config, CaptureConfig):
                self._writer.submit(record, config)
