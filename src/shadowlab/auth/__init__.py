"""Who may call: access keys from a credentials file, SigV4 signatures verified per request."""

from shadowlab.auth.credentials import CredentialsError, load_credentials_file
from shadowlab.auth.sigv4 import AuthFailure, Caller, SigV4Verifier, known_regions

__all__ = [
    "AuthFailure",
    "Caller",
    "CredentialsError",
    "SigV4Verifier",
    "known_regions",
    "load_credentials_file",
]
