"""One request as the front server parsed it, and the headers it picks out while parsing."""

from __future__ import annotations

from collections.abc import Callable


class Request:
    """One parsed request and, once known, its response bytes."""

    __slots__ = (
        "accept",
        "authorization",
        "chunks",
        "close_after",
        "connection_header",
        "content_length",
        "content_type",
        "custom_attributes",
        "endpoint",
        "expect_continue",
        "headers",
        "http_version",
        "inference_id",
        "keep_alive",
        "keep_alive_token",
        "limit",
        "method",
        "on_disconnect",
        "over_budget",
        "reserved",
        "response",
        "size",
        "stream_endpoint",
        "target_variant",
        "too_large",
        "url",
    )

    def __init__(self, url: bytes) -> None:
        self.url = url
        self.method = b""
        self.headers: list[tuple[bytes, bytes]] = []  # names lower-cased
        self.content_length = -1
        self.expect_continue = False
        self.keep_alive_token = False
        # The headers InvokeEndpoint reads, picked out while parsing to spare a second pass.
        self.content_type: bytes | None = None
        self.accept: bytes | None = None
        self.custom_attributes: bytes | None = None
        self.target_variant: bytes | None = None
        self.inference_id: bytes | None = None
        self.authorization: bytes | None = None  # its SigV4 scope names the region
        self.endpoint: bytes | None = None  # set for POST /endpoints/{name}/invocations
        self.limit = 0
        self.chunks: list[bytes] = []
        self.size = 0
        self.too_large = False
        self.reserved = 0  # body bytes charged to the connections' shared budget
        self.over_budget = False  # its body did not fit that budget (answered 503)
        self.keep_alive = True
        self.http_version = "1.1"
        self.connection_header = b""
        self.response: bytes | list[bytes] | None = None
        self.close_after = False
        self.on_disconnect: Callable[[], None] | None = None
        # `stream_endpoint` (POST /endpoints/{name}/invocations-response-stream) is left unset
        # here on purpose: assigning it would cost every InvokeEndpoint a store. It is set only
        # for streaming requests and read with `stream_endpoint_of`, off the hot path.

    stream_endpoint: bytes

    @property
    def body(self) -> bytes:
        chunks = self.chunks
        if len(chunks) == 1:
            return chunks[0]
        return b"".join(chunks)


def stream_endpoint_of(req: Request) -> bytes | None:
    """The endpoint name of an InvokeEndpointWithResponseStream request, else None."""
    return getattr(req, "stream_endpoint", None)


def head_size(req: Request) -> int:
    """The request head's size so far, as httptools handed it over (line ends included)."""
    return len(req.url) + sum(len(name) + len(value) + 4 for name, value in req.headers)


# Headers the connection itself acts on, or InvokeEndpoint reads (see Request), numbered so
# that FrontConnection.on_header does one dict lookup per header.
H_CONTENT_LENGTH, H_EXPECT, H_CONNECTION = 0, 1, 2
H_CONTENT_TYPE, H_ACCEPT, H_CUSTOM_ATTRIBUTES, H_TARGET_VARIANT, H_INFERENCE_ID = 3, 4, 5, 6, 7
H_AUTHORIZATION = 8
SPECIAL_HEADERS = {
    b"content-length": H_CONTENT_LENGTH,
    b"expect": H_EXPECT,
    b"connection": H_CONNECTION,
    b"content-type": H_CONTENT_TYPE,
    b"accept": H_ACCEPT,
    b"x-amzn-sagemaker-custom-attributes": H_CUSTOM_ATTRIBUTES,
    b"x-amzn-sagemaker-target-variant": H_TARGET_VARIANT,
    b"authorization": H_AUTHORIZATION,
    b"x-amzn-sagemaker-inference-id": H_INFERENCE_ID,
}
