"""Who may call this server, decided once at start-up from the settings.

Signed requests (verified against a credentials file) are the default and the only choice on an
address other than loopback; unsigned access must be asked for, and binds to loopback only.
With both a credentials file and unsigned access, a request that carries a signature must still
be signed right; one without passes.
"""

from __future__ import annotations

import ipaddress

from shadowlab.auth.credentials import CredentialsError, load_credentials_file
from shadowlab.auth.sigv4 import SigV4Verifier, known_regions
from shadowlab.settings import Settings

__all__ = ["is_loopback", "verifier_for"]


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve anywhere


def verifier_for(settings: Settings) -> SigV4Verifier | None:
    """The verifier requests must pass, or None for explicitly allowed unsigned access.

    Raises CredentialsError with a one-line reason when the settings allow no safe start."""
    if settings.credentials_file is not None:
        secrets = load_credentials_file(settings.credentials_file)
        # S3 requests (the embedded S3 API) sign as "s3", in the regions botocore knows for S3.
        services = {"sagemaker": known_regions(), "s3": known_regions("s3")}
        return SigV4Verifier(secrets, services=services, max_skew_s=settings.auth_max_skew)
    if settings.allow_unsigned:
        if not is_loopback(settings.host):
            raise CredentialsError(
                f"refusing unsigned access on {settings.host}: --allow-unsigned binds to a "
                "loopback address only; give --credentials-file to serve other addresses"
            )
        return None
    raise CredentialsError(
        "no credentials: give --credentials-file FILE (an AWS credentials file whose key pairs "
        "may sign requests) or, for development on loopback, --allow-unsigned"
    )
