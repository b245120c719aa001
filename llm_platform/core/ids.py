"""Identifiers that must be unique but need not be secret: request ids, completion ids, rate-limit
leases, audit event ids.

uuid4 reads os.urandom, a getrandom() system call each time, and a chat call needs four: a share of
its CPU worth saving (bench/RESULTS.md, gateway, third round). These come from a PRNG of our own
instead (seeded from os.urandom, and again in every forked child so two processes never share a
sequence), 122 random bits like uuid4's.
Tokens, JWT ids and keys keep using `secrets`/uuid4.
"""

from __future__ import annotations

import os
import random
import uuid

_source = random.Random()  # noqa: S311 - uniqueness, not secrecy; and unaffected by random.seed()
os.register_at_fork(after_in_child=_source.seed)


def new_uuid() -> uuid.UUID:
    """A version 4 UUID."""
    return uuid.UUID(int=_source.getrandbits(128), version=4)


def new_hex_id() -> str:
    """32 hex digits."""
    return new_uuid().hex
