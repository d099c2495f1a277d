"""The verifier's shortcuts against what they stand for: its HMAC against `hmac.new`, its parse
of the usual Authorization header against the general one, and what it remembers between
requests (a scope, a second, a signing key) never letting through what it refuses afresh."""

from __future__ import annotations

import hmac
import time
from hashlib import sha256

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shadowlab.auth import AuthFailure
from shadowlab.auth.signing_key import SigningKey
from shadowlab.auth.sigv4 import _USUAL_AUTHORIZATION, _parse_authorization
from tests.auth.test_sigv4 import BODY, TARGET, replace, signed, verifier

_QUICK = settings(max_examples=300, deadline=None, database=None)


@_QUICK
@given(key=st.binary(max_size=200), message=st.text(max_size=300))
def test_the_signing_key_is_hmac_sha256(key: bytes, message: str) -> None:
    """Keys shorter than, equal to and longer than SHA-256's 64-byte block; any text."""
    expected = hmac.new(key, message.encode("utf-8"), sha256).hexdigest()
    signing_key = SigningKey(key)
    assert signing_key.hexdigest(message) == expected
    assert signing_key.hexdigest(message) == expected  # its states are copied, never spent


# Parts of an Authorization header: mostly what SDKs write, some with a blank, a tab or a comma
# before, inside or after them (which only the general parse may read), or empty.
_CLEAN = st.text(alphabet="aZ09/=;_-", max_size=10)
_PART = st.one_of(
    _CLEAN,
    st.tuples(_CLEAN, st.sampled_from([" ", "\t", ",", "  "]), _CLEAN).map("".join),
)


@_QUICK
@given(
    credential=_PART,
    names=_PART,
    signature=_PART,
    first=st.sampled_from([", ", ","]),
    second=st.sampled_from([", ", ",", " , "]),
)
def test_the_usual_header_reads_as_the_general_parse_reads_it(
    credential: str, names: str, signature: str, first: str, second: str
) -> None:
    header = (
        f"AWS4-HMAC-SHA256 Credential={credential}{first}SignedHeaders={names}"
        f"{second}Signature={signature}"
    )
    usual = _USUAL_AUTHORIZATION.fullmatch(header)
    if usual is None:
        return  # the general parse alone decides
    found_credential, found_names, found_signature = usual.groups()
    assert _parse_authorization(header, has_date=True) == (
        found_credential,
        frozenset(found_names.split(";")),
        found_signature,
    )


def test_the_usual_header_is_the_one_botocore_writes() -> None:
    assert _USUAL_AUTHORIZATION.fullmatch(dict(signed())["authorization"]) is not None


def test_what_the_verifier_remembers_never_admits_what_it_refuses() -> None:
    """One verifier, the same client: a scope and a second already accepted, then requests
    that differ in one respect each, refused as a fresh verifier refuses them."""
    checker = verifier()
    headers = signed()
    assert checker.verify("POST", TARGET, headers, BODY).access_key == "AKIDONE"
    with pytest.raises(AuthFailure) as caught:
        checker.verify("POST", TARGET, headers, BODY + b"0")
    assert caught.value.code == "InvalidSignatureException"
    with pytest.raises(AuthFailure) as caught:
        checker.verify("POST", TARGET, signed(secret="not-the-secret"), BODY)
    assert caught.value.reason == "signature"
    auth = dict(headers)["authorization"]
    with pytest.raises(AuthFailure) as caught:  # the remembered scope, another key's signature
        checker.verify("POST", TARGET, replace(headers, "authorization", auth[:-4] + "0000"), BODY)
    assert caught.value.reason == "signature"
    for _ in range(2):  # refused scopes are not remembered
        with pytest.raises(AuthFailure) as caught:
            checker.verify("POST", TARGET, signed(key="AKIDNOBODY"), BODY)
        assert caught.value.code == "UnrecognizedClientException"
    late = verifier(clock=time.time() + 901)
    late_headers = signed()
    for _ in range(2):  # the remembered second is checked against the clock every time
        with pytest.raises(AuthFailure) as caught:
            late.verify("POST", TARGET, late_headers, BODY)
        assert caught.value.reason == "time"
    assert checker.verify("POST", TARGET, headers, BODY).access_key == "AKIDONE"


def test_only_what_a_signature_vouches_for_is_remembered() -> None:
    """A caller without the secret (a valid key id, a wrong signature) leaves nothing behind; a
    verified request leaves its scope and its names, unless the names are long: names of
    headers the request does not carry do not change its signature (as in botocore, which signs
    the headers present), so a replay could list thousands."""
    checker = verifier()
    headers = signed()
    auth = dict(headers)["authorization"]
    wrong = replace(headers, "authorization", auth[:-4] + "0000")
    for _ in range(3):
        with pytest.raises(AuthFailure):
            checker.verify("POST", TARGET, wrong, BODY)
    assert (checker._scopes, checker._names) == ({}, {})
    huge_names = ";".join(f"x-{i}" for i in range(5000))
    padded = auth.replace("SignedHeaders=", f"SignedHeaders={huge_names};", 1)
    checker.verify("POST", TARGET, replace(headers, "authorization", padded), BODY)
    assert len(checker._scopes) == 1 and checker._names == {}
    checker.verify("POST", TARGET, headers, BODY)
    assert len(checker._scopes) == 1 and len(checker._names) == 1
