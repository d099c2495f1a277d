"""The embedded S3 API: S3's REST-XML operations served from the local object store's tree,
on the same port as the SageMaker APIs (see `front` for which requests are S3's)."""

from shadowlab.s3api.front import S3Front
from shadowlab.s3api.handler import S3Handler

__all__ = ["S3Front", "S3Handler"]
