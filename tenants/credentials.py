"""The stored form of the credentials whose rows this domain holds: an API key's shape
(`sk-<prefix>_<secret>`) and how a new one is made, and the SHA-256 digest kept of API keys and refresh
tokens instead of the secret itself. Creating a key (tenants.service) and checking one (llm_platform.auth)
both stand on it. No I/O here.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

API_KEY_PREFIX_MARK = "sk-"
_PREFIX_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"
_PREFIX_LENGTH = 12


def sha256_hex(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def digests_equal(left: str, right: str) -> bool:
    return hmac.compare_digest(left.encode(), right.encode())


@dataclass(frozen=True)
class NewApiKey:
    key: str  # shown to the creator exactly once
    prefix: str  # stored and shown in listings, used to find the row
    secret_hash: str  # SHA-256 of the whole key


def generate_api_key() -> NewApiKey:
    prefix = "".join(secrets.choice(_PREFIX_ALPHABET) for _ in range(_PREFIX_LENGTH))
    key = f"{API_KEY_PREFIX_MARK}{prefix}_{secrets.token_urlsafe(32)}"
    return NewApiKey(key=key, prefix=prefix, secret_hash=sha256_hex(key))


def api_key_prefix(key: str) -> str | None:
    """The lookup prefix of a well-formed key (`sk-<prefix>_<secret>`), else None."""
    if not key.startswith(API_KEY_PREFIX_MARK):
        return None
    prefix, sep, secret = key[len(API_KEY_PREFIX_MARK) :].partition("_")
    if not sep or len(prefix) != _PREFIX_LENGTH or not secret:
        return None
    return prefix
