"""requirements.lock is what `make` installs: it must cover pyproject.toml, and the tests must run on it."""

from __future__ import annotations

import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from tests.locks import locked

ROOT = Path(__file__).resolve().parent.parent


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
    pins = locked()
    stale = []
    for requirement, source in _wanted():
        pin = pins.get(canonicalize_name(requirement.name))
        if pin is None or not requirement.specifier.contains(pin[0], prereleases=True):
            stale.append(f"{requirement} ({source}): locked {pin[0] if pin else 'nowhere'}")
    assert not stale, "requirements.lock is stale; run `make lock`:\n" + "\n".join(stale)


def test_every_locked_package_has_a_hash() -> None:
    pins = locked()
    assert len(pins) > 50
    assert [name for name, (_, hashes) in pins.items() if hashes == 0] == []


def test_torch_is_locked_to_its_cpu_build() -> None:
    # An index's plain torch is a multi-GB CUDA build.
    assert locked()["torch"][0].local == "cpu"


def test_installed_versions_are_the_locked_ones() -> None:
    """The tests run on what the lock says (a package pip upgraded by hand would make them prove less)."""
    drift = []
    for name, (version, _) in locked().items():
        try:
            installed = Version(metadata.version(name))
        except metadata.PackageNotFoundError:
            continue  # e.g. async-timeout, which redis-py needs only before Python 3.11.3
        if installed != version:
            drift.append(f"{name}: installed {installed}, locked {version}")
    assert not drift, "run `make install`:\n" + "\n".join(drift)
