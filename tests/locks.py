"""Reading the project's lock files (requirements.lock and the images' locks under docker/)."""

from __future__ import annotations

import re
from pathlib import Path

from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)")


def locked(path: str = "requirements.lock") -> dict[str, tuple[Version, int]]:
    """Each pin of a lock (a path from the repository's root): its version and how many hashes the lock
    allows for it."""
    pins: dict[str, tuple[Version, int]] = {}
    name = ""
    for line in (ROOT / path).read_text().splitlines():
        if pin := _PIN.match(line):
            name = canonicalize_name(pin[1])
            pins[name] = (Version(pin[2]), 0)
        elif "--hash=sha256:" in line and name:
            version, hashes = pins[name]
            pins[name] = (version, hashes + 1)
    return pins
