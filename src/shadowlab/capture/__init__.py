"""Data capture: production and shadow traffic in SageMaker's data-capture format.

``CaptureConfig`` (what an endpoint asks for) -> ``CaptureWriter.observe`` (on the event loop,
O(1)) -> JSON Lines records (``record``) in spool files -> an ``ObjectStore`` (local directory or
S3) under ``<destination>/<endpoint>/<variant>/yyyy/mm/dd/hh/``; ``reader`` lists and pairs them.
Nothing here imports the data plane beyond its observer types.
"""

from shadowlab.capture.config import CaptureConfig, CaptureConfigError
from shadowlab.capture.options import WriterOptions
from shadowlab.capture.reader import CapturedFile, VariantCapture, pairs, records, summarize
from shadowlab.capture.record import RecordEncoder, encode_record
from shadowlab.capture.stores import LocalObjectStore, ObjectInfo, ObjectStore, S3ObjectStore
from shadowlab.capture.writer import CaptureWriter

__all__ = [
    "CaptureConfig",
    "CaptureConfigError",
    "CaptureWriter",
    "CapturedFile",
    "LocalObjectStore",
    "ObjectInfo",
    "ObjectStore",
    "RecordEncoder",
    "S3ObjectStore",
    "VariantCapture",
    "WriterOptions",
    "encode_record",
    "pairs",
    "records",
    "summarize",
]
