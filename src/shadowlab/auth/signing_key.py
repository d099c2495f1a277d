"""SigV4's signing key: derived once per secret, day, region and service, then used for every
request's signature.

The derivation is `SigV4Auth.signature`'s (four HMACs, from "AWS4" + secret down to
"aws4_request"). A `SigningKey` then signs with HMAC-SHA256 from the key's padded inner and
outer SHA-256 states, made once (RFC 2104's construction, as hmac.py itself builds it): a
signature is two copies and updates of those, where `hmac.new` (or `hmac.digest`) costs twice
as much, looking the digest up in OpenSSL again for every call (docs/benchmarks.md, "SigV4
verification, a second pass"). Held equal to `hmac.new` by a property test.
"""

from __future__ import annotations

import hmac
from hashlib import sha256

__all__ = ["TERMINATOR", "SigningKey", "derive"]

TERMINATOR = "aws4_request"
# HMAC's inner and outer pads (RFC 2104), as translation tables, as hmac.py makes them.
_IPAD = bytes(byte ^ 0x36 for byte in range(256))
_OPAD = bytes(byte ^ 0x5C for byte in range(256))


class SigningKey:
    """HMAC-SHA256 under one key, its pads hashed once."""

    __slots__ = ("_inner", "_outer")

    def __init__(self, key: bytes) -> None:
        block = sha256().block_size
        if len(key) > block:  # never for SigV4's 32-byte keys; RFC 2104 all the same
            key = sha256(key).digest()
        key = key.ljust(block, b"\0")
        self._inner = sha256(key.translate(_IPAD))
        self._outer = sha256(key.translate(_OPAD))

    def hexdigest(self, message: str) -> str:
        """HMAC-SHA256 of `message` encoded as UTF-8, in lower-case hex."""
        inner = self._inner.copy()
        inner.update(message.encode("utf-8"))
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.hexdigest()


def derive(secret: str, date: str, region: str, service: str) -> SigningKey:
    """The signing key of `secret` for a day (YYYYMMDD), region and service."""
    k_date = _hmac(f"AWS4{secret}".encode(), date)
    k_region = _hmac(k_date, region)
    k_service = _hmac(k_region, service)
    return SigningKey(_hmac(k_service, TERMINATOR))


def _hmac(key: bytes, message: str) -> bytes:
    """HMAC-SHA256 of `message` as UTF-8: `SigV4Auth._sign`, without a signer instance."""
    return hmac.digest(key, message.encode("utf-8"), sha256)
