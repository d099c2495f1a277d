"""The access keys a server accepts, read from an AWS-style credentials file.

The format is the one `aws configure` writes (~/.aws/credentials): one INI section per profile,
each with `aws_access_key_id` and `aws_secret_access_key`. Every profile is one allowed pair, so
a team can hand each client its own key and revoke it by deleting a section.
"""

from __future__ import annotations

import configparser
from pathlib import Path

__all__ = ["CredentialsError", "load_credentials_file"]


class CredentialsError(Exception):
    """The credentials file cannot be used; the message names the file and what is wrong."""


def load_credentials_file(path: Path) -> dict[str, str]:
    """access key id -> secret access key, for every profile of the file at `path`."""
    parser = configparser.ConfigParser(interpolation=None)
    try:
        with path.open(encoding="utf-8") as handle:
            parser.read_file(handle)
    except OSError as exc:
        raise CredentialsError(f"cannot read credentials file {path}: {exc.strerror}") from None
    except (configparser.Error, UnicodeDecodeError) as exc:
        first_line = str(exc).splitlines()[0]
        raise CredentialsError(f"credentials file {path} is not valid: {first_line}") from None
    secrets: dict[str, str] = {}
    for profile in parser.sections():
        section = parser[profile]
        key = section.get("aws_access_key_id", "").strip()
        secret = section.get("aws_secret_access_key", "").strip()
        if not key or not secret:
            raise CredentialsError(
                f"credentials file {path}: profile [{profile}] needs both aws_access_key_id "
                "and aws_secret_access_key"
            )
        if key in secrets and secrets[key] != secret:
            raise CredentialsError(
                f"credentials file {path}: access key {key} appears twice with different secrets"
            )
        secrets[key] = secret
    if not secrets:
        raise CredentialsError(f"credentials file {path} has no profiles")
    return secrets
