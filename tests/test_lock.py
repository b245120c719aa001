"""requirements.lock is what `make` installs: it must cover pyproject.toml, and the tests must run on it."""

from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)")


def _locked() -> dict[str, tuple[Version, int]]:
    """Each locked package: its version and how many hashes the lock allows for it."""
    locked: dict[str, tuple[Version, int]] = {}
    name = ""
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        if pin := _PIN.match(line):
            name = canonicalize_name(pin[1])
            locked[name] = (Version(pin[2]), 0)
        elif "--hash=sha256:" in line and name:
            version, hashes = locked[name]
            locked[name] = (version, hashes + 1)
    return locked


def _wanted() -> list[tuple[Requirement, str]]:
    """What `make lock` compiles: pyproject.toml's dependencies and dev extra, and lock.in."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = [(Requirement(line), "pyproject.toml") for line in project["dependencies"]]
    dev = project["optional-dependencies"]["dev"]
    wanted += [(Requirement(line), "pyproject.toml [dev]") for line in dev]
    for line in (ROOT / "lock.in").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            wanted.append((Requirement(line), "lock.in"))
    return wanted


def test_every_dependency_is_locked_within_its_range() -> None:
    locked = _locked()
    stale = []
    for requirement, source in _wanted():
        pin = locked.get(canonicalize_name(requirement.name))
        if pin is None or not requirement.specifier.contains(pin[0], prereleases=True):
            stale.append(f"{requirement} ({source}): locked {pin[0] if pin else 'nowhere'}")
    assert not stale, "requirements.lock is stale; run `make lock`:\n" + "\n".join(stale)


def test_every_locked_package_has_a_hash() -> None:
    locked = _locked()
    assert len(locked) > 50
    assert [name for name, (_, hashes) in locked.items() if hashes == 0] == []


def test_torch_is_locked_to_its_cpu_build() -> None:
    # An index's plain torch is a multi-GB CUDA build.
    assert _locked()["torch"][0].local == "cpu"


def test_installed_versions_are_the_locked_ones() -> None:
    """The tests run on what the lock says (a package pip upgraded by hand would make them prove less)."""
    drift = []
    for name, (version, _) in _locked().items():
        try:
            installed = Version(metadata.version(name))
        except metadata.PackageNotFoundError:
            continue  # e.g. async-timeout, which redis-py needs only before Python 3.11.3
        if installed != version:
            drift.append(f"{name}: installed {installed}, locked {version}")
    assert not drift, "run `make install`:\n" + "\n".join(drift)
