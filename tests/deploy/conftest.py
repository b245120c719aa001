"""The Helm chart rendered offline by Helm's own Go SDK (helm-python-sdk: no helm binary, no cluster)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import helm_python
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "k8s" / "charts" / "llm-platform"
RELEASE, NAMESPACE = "llmp", "ai"


def chart_values(name: str | None) -> dict[str, Any]:
    """A values file of the chart's ci/ folder (None: the chart's defaults alone)."""
    if name is None:
        return {}
    return helm_python.values_from_yaml((CHART / "ci" / name).read_text())


@dataclass
class Rendered:
    """`helm template`'s manifests, parsed."""

    manifests: list[dict[str, Any]]

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.manifests if m["kind"] == kind]

    def named(self, kind: str, name: str) -> dict[str, Any]:
        (found,) = [m for m in self.of_kind(kind) if m["metadata"]["name"] == name]
        return found

    def pod_specs(self) -> list[tuple[str, dict[str, Any]]]:
        """(name, pod spec) of every Deployment and Job."""
        return [
            (m["metadata"]["name"], m["spec"]["template"]["spec"])
            for m in self.manifests
            if m["kind"] in ("Deployment", "Job")
        ]


def render(values: dict[str, Any]) -> Rendered:
    with helm_python.Chart.load(CHART) as chart:
        templates = chart.render(values, name=RELEASE, namespace=NAMESPACE)
    manifests = [
        document
        for path, text in templates.items()
        if path.endswith(".yaml")  # NOTES.txt is text for people
        for document in yaml.safe_load_all(text)
        if document
    ]
    return Rendered(manifests)


@pytest.fixture(scope="session")
def default_render() -> Rendered:
    return render(chart_values(None))


@pytest.fixture(scope="session")
def gpu_render() -> Rendered:
    return render(chart_values("gpu-values.yaml"))


@pytest.fixture(scope="session")
def existing_secret_render() -> Rendered:
    return render(chart_values("existing-secret-values.yaml"))
