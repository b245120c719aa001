"""The container images, read (Docker cannot run here): what they install matches the project's locks and
Python, they are multi-stage, non-root and health-checked, and the commands they start really start."""

from __future__ import annotations

import fnmatch
import io
import json
import re
import shlex
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from dockerfile_parse import DockerfileParser
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.deploy.conftest import CHART, ROOT
from tests.locks import locked

LLMP = Path(sys.executable).parent / "llmp"


@dataclass
class Image:
    dockerfile: str
    lock: str
    parser: DockerfileParser

    def stages(self) -> list[list[dict[str, Any]]]:
        """The instructions of each build stage, comments left out."""
        stages: list[list[dict[str, Any]]] = []
        for instruction in self.parser.structure:
            if instruction["instruction"] == "FROM":
                stages.append([])
            if stages and instruction["instruction"] != "COMMENT":
                stages[-1].append(instruction)
        return stages

    def final(self, name: str) -> list[str]:
        return [i["value"] for i in self.stages()[-1] if i["instruction"] == name]

    def exec_form(self, name: str) -> list[str]:
        (value,) = self.final(name)
        return json.loads(value)


def image(dockerfile: str, lock: str) -> Image:
    # Parsed from memory: given a path, the parser would write its own Dockerfile there.
    return Image(dockerfile, lock, DockerfileParser(fileobj=io.BytesIO((ROOT / dockerfile).read_bytes())))


IMAGES = {
    "api": image("Dockerfile", "docker/requirements-api.lock"),
    "worker": image("Dockerfile.worker", "docker/requirements-worker.lock"),
}


def project() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


@pytest.mark.parametrize("kind", IMAGES)
def test_images_are_multi_stage_non_root_and_health_checked(kind: str) -> None:
    built = IMAGES[kind]
    assert len(built.stages()) >= 2
    (user,) = built.final("USER")
    assert user.split(":")[0] not in ("root", "0")
    (healthcheck,) = built.final("HEALTHCHECK")
    command = shlex.split(healthcheck.split("CMD", 1)[1].strip()[1:-1].replace(",", " "))
    assert command == ["python", "/opt/llmp/healthcheck.py", kind]
    # Nothing is built in the final stage: no compiler, no package install, only what the build stage made.
    final_runs = " ".join(built.final("RUN"))
    assert not re.search(r"\b(gcc|g\+\+|build-essential|clang|pip install|apt-get install)\b", final_runs)
    assert not re.search(r"-devel\b", built.parser.baseimage)


@pytest.mark.parametrize("kind", IMAGES)
def test_every_file_an_image_copies_is_in_the_build_context(kind: str) -> None:
    ignore = [
        line
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line and not line.startswith("#")
    ]

    def sent(path: str) -> bool:  # .dockerignore's rules in order, the last match winning
        keep = True
        for rule in ignore:
            negated = rule.startswith("!")
            pattern = rule.lstrip("!").rstrip("/")
            if fnmatch.fnmatch(path, pattern) or path.startswith(pattern + "/"):
                keep = negated
        return keep

    for instruction in IMAGES[kind].parser.structure:
        if instruction["instruction"] == "COPY" and "--from=" not in instruction["value"]:
            *sources, _ = instruction["value"].split()
            for source in sources:
                assert (ROOT / source).exists(), source
                assert sent(source), f"{source} is left out by .dockerignore"


def test_the_images_python_is_the_projects() -> None:
    floor = re.fullmatch(r">=(\d+\.\d+)", project()["requires-python"])
    assert floor
    api_base = IMAGES["api"].parser.baseimage
    assert re.match(rf"python:{re.escape(floor[1])}-slim", api_base), api_base
    assert f"PYTHON_VERSION={floor[1]}" in [
        i["value"] for i in IMAGES["worker"].parser.structure if i["instruction"] == "ARG"
    ]
    # The version the locks were compiled for (make lock: --python-version).
    assert f"--python-version {floor[1]}" in (ROOT / "Makefile").read_text()


def test_the_image_locks_are_requirements_lock_without_the_dev_tools() -> None:
    main = locked("requirements.lock")
    runtime = [Requirement(line) for line in project()["dependencies"]]
    for kind, built in IMAGES.items():
        pins = locked(built.lock)
        assert [name for name, (_, hashes) in pins.items() if hashes == 0] == [], kind
        for requirement in runtime:
            assert canonicalize_name(requirement.name) in pins, (kind, requirement.name)
        assert not {"pytest", "ruff", "helm-python-sdk", "schemathesis"} & set(pins), kind
        differing = {
            name: (str(version), str(main[name][0]))
            for name, (version, _) in pins.items()
            if name in main and name != "torch" and version != main[name][0]
        }
        assert differing == {}, f"{built.lock} is stale; run `make lock`: {differing}"


def test_torch_is_the_locked_version_cpu_in_the_api_image_cuda_in_the_worker() -> None:
    cpu = locked("requirements.lock")["torch"][0]
    assert cpu.local == "cpu"
    assert locked(IMAGES["api"].lock)["torch"][0] == cpu
    cuda = locked(IMAGES["worker"].lock)
    # PyPI's build of the same version: the CUDA one, its runtime as nvidia-* wheels.
    assert cuda["torch"][0].public == cpu.public and cuda["torch"][0].local is None
    cuda_major = cuda["nvidia-cuda-runtime"][0].major
    base = IMAGES["worker"].parser.baseimage
    assert re.fullmatch(rf"nvidia/cuda:{cuda_major}\.\d+\.\d+-runtime-ubuntu[\d.]+", base), base


def test_pinned_tools_match_the_lock_and_the_makefile() -> None:
    uv = locked("requirements.lock")["uv"][0]
    assert f"ghcr.io/astral-sh/uv:{uv}" in IMAGES["worker"].parser.parent_images
    bundled = locked("docker/bundled-models.txt")
    makefile = (ROOT / "Makefile").read_text()
    for name, (version, hashes) in bundled.items():
        assert f"{name}=={version}" in makefile and hashes >= 1


def test_the_api_image_starts_llmp_serve() -> None:
    command = IMAGES["api"].exec_form("ENTRYPOINT") + IMAGES["api"].exec_form("CMD")
    assert command == ["llmp", "serve"]
    assert project()["scripts"]["llmp"] == "llm_platform.cli:main"
    started = subprocess.run([LLMP, *command[1:], "--help"], capture_output=True, text=True, timeout=60)
    assert started.returncode == 0, started.stderr
    assert "LLMP_DATABASE_URL" in started.stdout  # its settings come from the environment


def test_the_worker_image_and_chart_start_llmp_worker_on_one_port() -> None:
    entrypoint = IMAGES["worker"].exec_form("ENTRYPOINT")
    assert entrypoint[:2] == ["llmp", "worker"]
    started = subprocess.run([LLMP, *entrypoint[1:], "--help"], capture_output=True, text=True, timeout=60)
    assert started.returncode == 0, started.stderr
    assert "--model" in started.stdout and "--host" in started.stdout
    port = entrypoint[entrypoint.index("--port") + 1]
    assert IMAGES["worker"].final("EXPOSE") == [port]
    assert f"WORKER_PORT = {port}" in (ROOT / "docker" / "healthcheck.py").read_text()
    assert str(yaml.safe_load((CHART / "values.yaml").read_text())["workerDefaults"]["port"]) == port
