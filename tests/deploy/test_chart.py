"""The Helm chart, linted strictly and rendered (defaults, a GPU cluster, existing secrets) by Helm's own
Go SDK; assertions on the manifests an operator would check before installing."""

from __future__ import annotations

import base64
from typing import Any

import helm_python
import pytest

from tests.deploy.conftest import CHART, NAMESPACE, Rendered, chart_values, render

SECRET_SETTINGS = {
    "LLMP_JWT_SECRET",
    "LLMP_WORKER_SECRET",
    "LLMP_DATABASE_URL",
    "LLMP_REDIS_URL",
    "LLMP_UPSTREAM_API_KEYS",
}


def containers(pod: dict[str, Any]) -> list[dict[str, Any]]:
    return pod.get("initContainers", []) + pod["containers"]


def worker_deployments(rendered: Rendered) -> list[dict[str, Any]]:
    return [
        d
        for d in rendered.of_kind("Deployment")
        if d["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"] == "worker"
    ]


def arg_after(args: list[str], flag: str) -> str:
    return args[args.index(flag) + 1]


@pytest.mark.parametrize("values_file", [None, "gpu-values.yaml", "existing-secret-values.yaml"])
def test_the_chart_lints_strictly(values_file: str | None) -> None:
    report = helm_python.lint(CHART, chart_values(values_file), strict=True, namespace=NAMESPACE)
    assert report["errors"] == []
    # Strict: warnings count. Severity 1 is information (the chart has no icon).
    assert [m for m in report["messages"] if m["severity"] >= 2] == []


def test_defaults_render_the_api_layer_workers_and_migrations(default_render: Rendered) -> None:
    kinds = {m["kind"] for m in default_render.manifests}
    assert {"Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget"} <= kinds
    assert {"ConfigMap", "Secret", "Job", "ServiceAccount"} <= kinds
    # Optional parts stay out until asked for.
    assert not kinds & {"Ingress", "ServiceMonitor", "ScaledObject"}
    hpa = default_render.of_kind("HorizontalPodAutoscaler")[0]
    api = default_render.named("Deployment", hpa["spec"]["scaleTargetRef"]["name"])
    assert "replicas" not in api["spec"]  # the HPA owns it
    pdb = default_render.of_kind("PodDisruptionBudget")[0]
    assert (
        pdb["spec"]["selector"]["matchLabels"].items()
        <= api["spec"]["template"]["metadata"]["labels"].items()
    )


def test_the_api_is_probed_on_healthz_and_readyz(default_render: Rendered) -> None:
    (api,) = [d for d in default_render.of_kind("Deployment") if d["metadata"]["name"].endswith("-api")]
    (container,) = api["spec"]["template"]["spec"]["containers"]
    assert container["args"] == ["serve"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    port_names = {p["name"] for p in container["ports"]}
    assert container["readinessProbe"]["httpGet"]["port"] in port_names
    assert container["resources"]["requests"]["cpu"] and container["resources"]["limits"]["memory"]


def test_one_worker_deployment_per_entry_on_gpus(gpu_render: Rendered) -> None:
    entries = chart_values("gpu-values.yaml")["workers"]
    deployments = worker_deployments(gpu_render)
    assert len(deployments) == len(entries)
    for entry, deployment in zip(entries, deployments, strict=True):
        pod = deployment["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        args = container["args"]
        assert arg_after(args, "--model") == entry["model"]
        assert arg_after(args, "--device") == "cuda"
        assert container["image"].startswith("registry.example.com/llm-platform-worker:")
        assert container["resources"]["limits"]["nvidia.com/gpu"] == entry["gpus"]
        assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
        assert pod["nodeSelector"]["nvidia.com/gpu.present"] == "true"
        # The worker binds and advertises the pod's IP, the address the API layer reaches it at.
        assert arg_after(args, "--host") == "$(POD_IP)"
        pod_ip = next(e for e in container["env"] if e["name"] == "POD_IP")
        assert pod_ip["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"
        volumes = {v["name"]: v for v in pod["volumes"]}
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        shm = mounts["/dev/shm"]  # noqa: S108 (a mount path in a manifest)
        assert volumes[shm]["emptyDir"]["medium"] == "Memory"
        assert volumes[mounts["/models"]]["persistentVolumeClaim"]["claimName"] == "llm-models"
        assert container["startupProbe"] and container["readinessProbe"] and container["livenessProbe"]
    # An entry's own nodeSelector joins the GPU one.
    assert deployments[1]["spec"]["template"]["spec"]["nodeSelector"]["nvidia.com/gpu.product"] == "NVIDIA-L4"


def test_cpu_workers_by_default_run_the_api_image_without_gpus(default_render: Rendered) -> None:
    for deployment in worker_deployments(default_render):
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        assert arg_after(container["args"], "--device") == "cpu"
        assert container["image"].startswith("llm-platform:")
        assert "nvidia.com/gpu" not in container["resources"].get("limits", {})
        assert "tolerations" not in deployment["spec"]["template"]["spec"]


def test_keda_scales_a_worker_on_its_queue_depth(gpu_render: Rendered) -> None:
    (scaled,) = gpu_render.of_kind("ScaledObject")
    target = gpu_render.named("Deployment", scaled["spec"]["scaleTargetRef"]["name"])
    assert "replicas" not in target["spec"]  # KEDA owns it
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["type"] == "prometheus"
    model = arg_after(target["spec"]["template"]["spec"]["containers"][0]["args"], "--model")
    assert trigger["metadata"]["query"] == f'sum(llmp_worker_queue_depth{{model="{model}"}})'
    assert trigger["metadata"]["threshold"] == "16"


def test_a_vllm_model_runs_tensor_parallel_and_is_registered(gpu_render: Rendered) -> None:
    (entry,) = chart_values("gpu-values.yaml")["vllm"]
    (vllm,) = [
        d
        for d in gpu_render.of_kind("Deployment")
        if d["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"] == "vllm"
    ]
    (container,) = vllm["spec"]["template"]["spec"]["containers"]
    assert container["args"][0] == entry["model"]
    assert arg_after(container["args"], "--tensor-parallel-size") == str(entry["gpus"])
    assert arg_after(container["args"], "--served-model-name") == entry["name"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == entry["gpus"]
    # Registered as an openai-backend model at its Service's address, after install and upgrade.
    (job,) = [j for j in gpu_render.of_kind("Job") if "register" in j["metadata"]["name"]]
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "post-install,post-upgrade"
    (register,) = job["spec"]["template"]["spec"]["containers"]
    args = register["args"]
    assert args[:2] == ["admin", "register-model"] and arg_after(args, "--name") == entry["name"]
    service = gpu_render.named("Service", vllm["metadata"]["name"])
    port = service["spec"]["ports"][0]["port"]
    expected = f"http://{service['metadata']['name']}.{NAMESPACE}.svc:{port}/v1"
    assert arg_after(args, "--base-url") == expected
    assert arg_after(args, "--context-length") == str(entry["contextLength"])


def test_migrations_run_as_a_pre_install_and_pre_upgrade_hook(default_render: Rendered) -> None:
    (job,) = [j for j in default_render.of_kind("Job") if j["metadata"]["name"].endswith("-migrate")]
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["args"] == ["migrate"]
    # Before install the release's own Secret does not exist yet: the Job's Secret is a hook that runs first.
    (ref,) = [e["valueFrom"]["secretKeyRef"] for e in container["env"] if e["name"] == "LLMP_DATABASE_URL"]
    secret = default_render.named("Secret", ref["name"])
    assert int(secret["metadata"]["annotations"]["helm.sh/hook-weight"]) < int(
        job["metadata"]["annotations"]["helm.sh/hook-weight"]
    )
    assert "pre-install" in secret["metadata"]["annotations"]["helm.sh/hook"]


@pytest.mark.parametrize("which", ["default_render", "gpu_render", "existing_secret_render"])
def test_credentials_come_from_secrets_never_inline(which: str, request: pytest.FixtureRequest) -> None:
    rendered: Rendered = request.getfixturevalue(which)
    secret_values = {
        base64.b64decode(value).decode()
        for secret in rendered.of_kind("Secret")
        for value in secret.get("data", {}).values()
    }
    for config_map in rendered.of_kind("ConfigMap"):
        assert not set(config_map["data"]) & SECRET_SETTINGS
        assert not set(config_map["data"].values()) & secret_values
    for name, pod in rendered.pod_specs():
        for container in containers(pod):
            for env in container.get("env", []):
                if env["name"] in SECRET_SETTINGS:
                    assert "value" not in env, (name, env["name"])
                    assert env["valueFrom"]["secretKeyRef"]["key"] == env["name"]


def test_a_credential_put_in_config_is_refused() -> None:
    with pytest.raises(helm_python.HelmError, match="LLMP_JWT_SECRET is a credential"):
        render({"config": {"LLMP_JWT_SECRET": "x" * 40}})


def test_an_existing_secret_is_referenced_and_none_is_made(existing_secret_render: Rendered) -> None:
    assert existing_secret_render.of_kind("Secret") == []
    refs = {
        env["valueFrom"]["secretKeyRef"]["name"]
        for _, pod in existing_secret_render.pod_specs()
        for container in containers(pod)
        for env in container.get("env", [])
        if "secretKeyRef" in env.get("valueFrom", {})
    }
    assert refs == {"llmp-credentials"}


@pytest.mark.parametrize("which", ["default_render", "gpu_render"])
def test_every_container_runs_as_non_root(which: str, request: pytest.FixtureRequest) -> None:
    rendered: Rendered = request.getfixturevalue(which)
    for name, pod in rendered.pod_specs():
        for container in containers(pod):
            context = pod.get("securityContext", {}) | container.get("securityContext", {})
            assert context.get("runAsNonRoot") is True, (name, container["name"])
            assert context.get("runAsUser", 1) != 0
            assert context.get("allowPrivilegeEscalation") is False
            if container["image"].split(":")[0].endswith(("llm-platform", "llm-platform-worker")):
                # Ours: a read-only root filesystem, with /tmp writable.
                assert context.get("readOnlyRootFilesystem") is True, (name, container["name"])
                volumes = {v["name"]: v for v in pod["volumes"]}
                tmp = next(m for m in container["volumeMounts"] if m["mountPath"] == "/tmp")  # noqa: S108
                assert "emptyDir" in volumes[tmp["name"]]


@pytest.mark.parametrize("which", ["default_render", "gpu_render"])
def test_every_deployment_is_selected_by_its_service(which: str, request: pytest.FixtureRequest) -> None:
    rendered: Rendered = request.getfixturevalue(which)
    services = rendered.of_kind("Service")
    for deployment in rendered.of_kind("Deployment"):
        pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert deployment["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
        ports = {p["name"] for c in deployment["spec"]["template"]["spec"]["containers"] for p in c["ports"]}
        selecting = [s for s in services if s["spec"]["selector"].items() <= pod_labels.items()]
        # Exactly its own: a Service that also selected another Deployment's pods would mix them.
        assert len(selecting) == 1, deployment["metadata"]["name"]
        assert {p["targetPort"] for p in selecting[0]["spec"]["ports"]} <= ports


def test_service_monitors_scrape_the_api_and_workers(gpu_render: Rendered) -> None:
    monitors = gpu_render.of_kind("ServiceMonitor")
    assert len(monitors) == 2
    for monitor in monitors:
        selected = [
            s
            for s in gpu_render.of_kind("Service")
            if monitor["spec"]["selector"]["matchLabels"].items() <= s["metadata"]["labels"].items()
        ]
        assert selected
        (endpoint,) = monitor["spec"]["endpoints"]
        assert endpoint["path"] == "/metrics"
        assert all(endpoint["port"] in {p["name"] for p in s["spec"]["ports"]} for s in selected)
        assert monitor["metadata"]["labels"]["release"] == "prometheus"


def test_the_ingress_routes_to_the_api_service(gpu_render: Rendered) -> None:
    (ingress,) = gpu_render.of_kind("Ingress")
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    service = gpu_render.named("Service", backend["name"])
    assert backend["port"]["name"] in {p["name"] for p in service["spec"]["ports"]}
    assert ingress["spec"]["tls"][0]["secretName"] == "llm-example-com-tls"
