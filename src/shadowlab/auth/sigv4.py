"""Verify AWS Signature Version 4 on requests, with botocore's signer as the reference.

A request is accepted when its `Authorization` header names a known access key, a credential
scope of the expected service and a region botocore knows, a time within the allowed skew, and a
signature equal to the one botocore computes for the same method, path, query, signed headers
and body with that key's secret. The canonical request and the string to sign are
`botocore.auth.SigV4Auth`'s, so shadowlab verifies exactly what boto3 and the AWS CLI sign. The
derived signing key (auth/signing_key.py) is cached per key/date/region/service: deriving it
costs four HMACs per request and changes once a day.

botocore stays the reference, but is not on the hot path: for what SDKs send to SageMaker (a
path botocore would neither re-encode nor normalise, lower-case signed header names),
`shadowlab.auth.canonical` builds the same canonical request and string to sign without
botocore's general machinery, which was most of a verification's cost. For anything else, and
for every S3 request, it declines and botocore builds them. A property test holds the fast
path's output equal to botocore's on every input it accepts (tests/auth/test_canonical.py).

Failures are AWS's, code and message: MissingAuthenticationTokenException (no header),
IncompleteSignatureException (a header that is not a SigV4 one), UnrecognizedClientException
(unknown access key), InvalidSignatureException (scope, time or signature wrong); each also
carries a `reason` so that the S3 API can answer in S3's words (SignatureDoesNotMatch ...).

One verifier serves several signing services (SageMaker's "sagemaker" and the embedded S3 API's
"s3"), each with its own regions. S3 requests are signed by `botocore.auth.S3SigV4Auth`: the path
is not URI-encoded a second time, and `X-Amz-Content-SHA256` is required and carries the payload
hash or one of S3's placeholders (UNSIGNED-PAYLOAD; STREAMING-UNSIGNED-PAYLOAD-TRAILER, whose body
is aws-chunked with a trailing checksum that the S3 API verifies after decoding it).
"""

from __future__ import annotations

import calendar
import hmac
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from hashlib import sha256
from typing import TypeVar

from botocore.auth import (
    SIGV4_TIMESTAMP,
    STREAMING_UNSIGNED_PAYLOAD_TRAILER,
    UNSIGNED_PAYLOAD,
)

from shadowlab.auth import canonical
from shadowlab.auth.signing_key import TERMINATOR, SigningKey, derive
from shadowlab.awsprotocol.scope import split_scope
from shadowlab.errors import ServiceError

__all__ = ["AuthFailure", "Caller", "SigV4Verifier", "known_regions"]

_ALGORITHM = "AWS4-HMAC-SHA256"
_BASIC_ISO8601 = re.compile(r"\d{8}T\d{6}Z")  # 20261202T083000Z
_ECHO_LIMIT = 128  # echoed client values are cut so that an error stays small
_K = TypeVar("_K")
_V = TypeVar("_V")
_CACHE_LIMIT = 1024  # entries per cache below; a full cache starts again (what repeats returns)
_NAMES_LIMIT = 512  # characters of a SignedHeaders value worth remembering (SDKs send < 200)
# The Authorization header as SDKs write it; anything else takes the general parse, which this
# one equals where it matches (tests/auth/test_sigv4_fast.py).
_USUAL_AUTHORIZATION = re.compile(
    r"AWS4-HMAC-SHA256 Credential=([^,\s]+), ?SignedHeaders=([^,\s]+), ?Signature=([^,\s]+)"
)
# Payload hashes S3 accepts in place of the body's SHA-256: the body is not signed (the first)
# or is aws-chunked with a checksum trailer that is verified once decoded (the second).
S3_UNSIGNED_PAYLOADS = frozenset({UNSIGNED_PAYLOAD, STREAMING_UNSIGNED_PAYLOAD_TRAILER})
_SIGNATURE_MISMATCH = (
    "The request signature we calculated does not match the signature you provided. Check your "
    "AWS Secret Access Key and signing method. Consult the service documentation for details."
)


class AuthFailure(ServiceError):
    """A request whose signature does not hold. AWS answers these with 403 (400 for a header
    that is not a signature at all)."""

    def __init__(self, code: str, message: str, status: int = 403, *, reason: str = "") -> None:
        super().__init__(message, code=code)
        self.status = status
        # What went wrong, independent of the service's vocabulary: missing, incomplete,
        # unknown-key, scope, time, signature, payload-hash, payload-hash-missing, payload-mode.
        self.reason = reason or code


@dataclass(frozen=True, slots=True)
class Caller:
    """Who signed a verified request, for which region and signing service."""

    access_key: str
    region: str
    service: str = "sagemaker"


def known_regions(service: str = "sagemaker") -> frozenset[str]:
    """Every region botocore's endpoint data names for `service`, in every partition."""
    import botocore.session

    session = botocore.session.get_session()
    return frozenset(
        region
        for partition in session.get_available_partitions()
        for region in session.get_available_regions(service, partition_name=partition)
    )


def _echo(value: str) -> str:
    return value if len(value) <= _ECHO_LIMIT else value[:_ECHO_LIMIT] + "..."


def _incomplete(message: str) -> AuthFailure:
    return AuthFailure("IncompleteSignatureException", message, status=400, reason="incomplete")


def _invalid(message: str, reason: str) -> AuthFailure:
    return AuthFailure("InvalidSignatureException", message, reason=reason)


class SigV4Verifier:
    """Checks the SigV4 signature of requests to its signing services (SageMaker's API and its
    runtime both sign as "sagemaker"; the embedded S3 API as "s3").

    `regions` and `service` name one service; `services` (service -> its regions) several, the
    first of them being the one an error about a wrong service names."""

    def __init__(
        self,
        secrets: Mapping[str, str],
        *,
        regions: Iterable[str] = (),
        service: str = "sagemaker",
        services: Mapping[str, Iterable[str]] | None = None,
        max_skew_s: float = 900.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._secrets = dict(secrets)
        wanted = services if services is not None else {service: regions}
        self._regions = {name: frozenset(names) for name, names in wanted.items()}
        self._service = next(iter(self._regions))
        self._max_skew_s = max_skew_s
        self._skew_minutes = f"{max_skew_s / 60:g} min."  # for messages, made once
        self._clock = clock
        # What repeats from request to request of a client is worked out once: its signing key
        # (a day's), its credential scope checked, the time of the current second, the names
        # it signs. Each costs microseconds, a verification ~15 of them (docs/benchmarks.md).
        self._keys: dict[tuple[str, str, str, str], SigningKey] = {}
        self._scopes: dict[str, tuple[str, str, str, str, Caller]] = {}
        self._names: dict[str, frozenset[str]] = {}
        self._last_epoch: tuple[str, float] = ("", 0.0)

    def verify(
        self, method: str, target: str, headers: Sequence[tuple[str, str]], body: bytes
    ) -> Caller:
        """The caller of a request (`target` is the path and query as sent), or AuthFailure.

        `headers` are (lower-case name, value) pairs as received."""
        authorization = amz_date = http_date = content_sha = None
        for name, value in headers:
            if name == "authorization":
                authorization = value
            elif name == "x-amz-date":
                amz_date = value
            elif name == "date":
                http_date = value
            elif name == "x-amz-content-sha256":
                content_sha = value
        if authorization is None:
            raise AuthFailure(
                "MissingAuthenticationTokenException",
                "Missing Authentication Token",
                reason="missing",
            )
        has_date = amz_date is not None or http_date is not None
        names: str | None = None
        usual = _USUAL_AUTHORIZATION.fullmatch(authorization)
        if usual is not None and has_date:
            credential, names, signature = usual.groups()
            signed_names = self._names.get(names) or frozenset(names.split(";"))
        else:  # which also says what is missing
            credential, signed_names, signature = _parse_authorization(
                authorization, has_date=has_date
            )
        scope = self._scopes.get(credential) or self._check_scope(credential)
        access_key, scope_date, region, service, caller = scope
        timestamp = _timestamp(amz_date, http_date)
        self._check_time(timestamp, scope_date)
        if "host" not in signed_names:
            raise _invalid(
                "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.",
                "incomplete",
            )
        _check_payload(service, content_sha, body)
        signed: dict[str, list[str]] = {}
        for name, value in headers:
            if name in signed_names:
                signed.setdefault(name, []).append(value)  # repeated names stay repeated
        string_to_sign = canonical.string_to_sign(
            method, target, signed, body, timestamp=timestamp, region=region, service=service
        )
        key = self._signing_key(access_key, scope_date, region, service)
        if not hmac.compare_digest(key.hexdigest(string_to_sign), signature):
            raise _invalid(_SIGNATURE_MISMATCH, "signature")
        # Remembered only once a signature vouches for them, so that a caller without a secret
        # cannot fill the caches; names only when short, since names of headers a request does
        # not carry do not change its signature (botocore signs the headers present), and a
        # replayed request could list thousands.
        if credential not in self._scopes:
            _remember(self._scopes, credential, scope)
        if names is not None and len(names) <= _NAMES_LIMIT and names not in self._names:
            _remember(self._names, names, signed_names)
        return caller

    def _check_scope(self, credential: str) -> tuple[str, str, str, str, Caller]:
        """The parts of a valid credential scope and its caller, or AuthFailure."""
        parts = split_scope(credential)
        if parts is None:
            raise _incomplete(
                "Credential must have exactly 5 slash-delimited elements, e.g. "
                f"keyid/date/region/service/term, got '{_echo(credential)}'"
            )
        access_key, scope_date, region, service, terminator = parts
        if access_key not in self._secrets:
            raise AuthFailure(
                "UnrecognizedClientException",
                "The security token included in the request is invalid.",
                reason="unknown-key",
            )
        if terminator != TERMINATOR:
            raise _invalid(
                f"Credential should be scoped with a valid terminator: '{TERMINATOR}', "
                f"not '{_echo(terminator)}'.",
                "scope",
            )
        regions = self._regions.get(service)
        if regions is None:
            raise _invalid(
                f"Credential should be scoped to correct service: '{self._service}'. ", "scope"
            )
        if region not in regions:
            raise _invalid("Credential should be scoped to a valid region. ", "scope")
        return access_key, scope_date, region, service, Caller(access_key, region, service)

    def _check_time(self, timestamp: str, scope_date: str) -> None:
        if scope_date != timestamp[:8]:
            raise _invalid(
                "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date "
                f"from HTTP: '{_echo(scope_date)}' != '{timestamp[:8]}', from '{timestamp}'.",
                "scope",
            )
        last, signed_at = self._last_epoch
        if timestamp != last:  # requests of the same second share it
            signed_at = _epoch(timestamp)
            self._last_epoch = (timestamp, signed_at)
        now = self._clock()
        if signed_at < now - self._max_skew_s:
            raise _invalid(
                f"Signature expired: {timestamp} is now earlier than "
                f"{_format(now - self._max_skew_s)} ({_format(now)} - {self._skew_minutes})",
                "time",
            )
        if signed_at > now + self._max_skew_s:
            raise _invalid(
                f"Signature not yet current: {timestamp} is still later than "
                f"{_format(now + self._max_skew_s)} ({_format(now)} + {self._skew_minutes})",
                "time",
            )

    def _signing_key(self, access_key: str, date: str, region: str, service: str) -> SigningKey:
        cache_key = (access_key, date, region, service)
        key = self._keys.get(cache_key)
        if key is None:  # derived once a day per scope, not per request
            key = derive(self._secrets[access_key], date, region, service)
            _remember(self._keys, cache_key, key)
        return key


def _remember(cache: dict[_K, _V], key: _K, value: _V) -> None:
    """`cache[key] = value`, a full cache starting again (what repeats comes back at once)."""
    if len(cache) >= _CACHE_LIMIT:
        cache.clear()
    cache[key] = value


def _check_payload(service: str, content_sha: str | None, body: bytes) -> None:
    """botocore takes a given payload hash on trust; the body must match it here. S3 requires
    the header and allows its placeholders (see S3_UNSIGNED_PAYLOADS)."""
    if service == "s3":
        if content_sha is None:
            raise AuthFailure(
                "InvalidRequest",
                "Missing required header for this request: x-amz-content-sha256",
                status=400,
                reason="payload-hash-missing",
            )
        if content_sha in S3_UNSIGNED_PAYLOADS:
            return
        if content_sha.startswith("STREAMING-"):
            # Signed aws-chunked bodies (a signature per chunk): no AWS SDK sends them by
            # default, and verifying them is not implemented here.
            raise AuthFailure(
                "NotImplemented",
                f"x-amz-content-sha256 '{_echo(content_sha)}' is not supported by this server; "
                "send UNSIGNED-PAYLOAD, STREAMING-UNSIGNED-PAYLOAD-TRAILER or the body's SHA-256",
                status=501,
                reason="payload-mode",
            )
    if content_sha is not None and content_sha != sha256(body).hexdigest():
        raise _invalid(
            "The provided 'x-amz-content-sha256' header does not match the body.", "payload-hash"
        )


def _parse_authorization(header: str, *, has_date: bool) -> tuple[str, frozenset[str], str]:
    """(credential, signed header names, signature) of a SigV4 Authorization header."""
    algorithm, _, rest = header.strip().partition(" ")
    fields: dict[str, str] = {}
    if algorithm == _ALGORITHM:
        for part in rest.split(","):
            name, sep, value = part.strip().partition("=")
            if sep:
                fields[name] = value
    missing = [
        f"Authorization header requires '{name}' parameter."
        for name in ("Credential", "Signature", "SignedHeaders")
        if not fields.get(name)
    ]
    if not has_date:
        missing.append(
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header."
        )
    if missing:
        raise _incomplete(" ".join(missing) + f" Authorization={_echo(header)}")
    names = frozenset(fields["SignedHeaders"].split(";"))
    return fields["Credential"], names, fields["Signature"]


def _timestamp(amz_date: str | None, http_date: str | None) -> str:
    """The request time in SigV4's basic ISO-8601 form, from X-Amz-Date or else Date."""
    if amz_date is not None:
        if _BASIC_ISO8601.fullmatch(amz_date) is None:
            raise _incomplete(
                f"Date must be in ISO-8601 'basic format'. Got '{_echo(amz_date)}'. See "
                "http://docs.aws.amazon.com/general/latest/gr/sigv4-date-handling.html"
            )
        return amz_date
    assert http_date is not None  # _parse_authorization required one of the two
    try:
        parsed = parsedate_to_datetime(http_date)
    except (TypeError, ValueError):
        raise _incomplete(f"Date must be an RFC 1123 date. Got '{_echo(http_date)}'.") from None
    if parsed.tzinfo is None:  # "-0000": UTC, with the offset unknown
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC).strftime(SIGV4_TIMESTAMP)


def _epoch(timestamp: str) -> float:
    # strptime costs ~7 us; the fields are at fixed places once _BASIC_ISO8601 matched.
    return calendar.timegm(
        (
            int(timestamp[0:4]),
            int(timestamp[4:6]),
            int(timestamp[6:8]),
            int(timestamp[9:11]),
            int(timestamp[11:13]),
            int(timestamp[13:15]),
        )
    )


def _format(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime(SIGV4_TIMESTAMP)
