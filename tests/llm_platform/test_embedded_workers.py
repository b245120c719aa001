"""`llmp serve` in embedded mode owns its workers: they stop with it, even when it is killed outright,
and one that dies comes back, while /readyz says which model lacks a worker."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from llm_platform.core.db import run_in_session
from llm_platform.core.settings import Settings
from llm_platform.workers import STABLE_AFTER_S, RestartBackoff
from models_registry import service as catalogue
from tests.conftest import TINY_CONTEXT
from tests.workers import LLMP, llmp, wait_healthy

MODEL = "tiny-embedded"
WORKER_START_S = 120  # a worker imports torch and transformers first: slow on a busy two-core machine


def wait_for(what: str, check: Callable[[], object], timeout_s: float) -> object:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(0.1)
    raise AssertionError(f"not within {timeout_s} s: {what}")


def worker_pids(server: subprocess.Popen[bytes]) -> list[int]:
    return [
        child.pid
        for child in psutil.Process(server.pid).children()
        if "worker" in child.cmdline() and child.status() != psutil.STATUS_ZOMBIE
    ]


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE  # dead, its exit not yet collected
    except psutil.NoSuchProcess:
        return True


def readyz(base_url: str) -> httpx.Response:
    return httpx.get(f"{base_url}/readyz", timeout=5)


@pytest.fixture
def embedded_env(cli_env, tiny_model_dir) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """An embedded platform whose one served model is the tiny one (its worker starts in seconds)."""
    env = cli_env | {
        "LLMP_SERVE_WORKERS": "true",
        "LLMP_WORKER_HEARTBEAT_S": "0.2",
        "LLMP_WORKER_TTL_S": "1.0",
    }
    llmp(env, "migrate")

    async def tiny_catalogue(session) -> None:  # type: ignore[no-untyped-def]
        # The bundled models are covered elsewhere (SmolLM2's first start converts its weights, ~20 s).
        # No caches to forget: the platform is not started yet.
        for bundled in ("smollm2-135m", "all-minilm-l6-v2"):
            await catalogue.update_model(session, bundled, {"enabled": False}, catalogue=None)
        await catalogue.register_model(
            session,
            {
                "name": MODEL,
                "kind": "chat",
                "backend": "hf",
                "source": str(tiny_model_dir),
                "context_length": TINY_CONTEXT,
            },
            catalogue=None,
        )

    run_in_session(Settings(data_dir=Path(env["LLMP_DATA_DIR"]), database_url=None), tiny_catalogue)
    return env


@pytest.fixture
def embedded_server(embedded_env, tmp_path) -> Iterator[tuple[subprocess.Popen[bytes], str, Path]]:  # type: ignore[no-untyped-def]
    log = tmp_path / "serve.log"
    server = subprocess.Popen(
        [LLMP, "serve"], env=embedded_env, stdout=log.open("wb"), stderr=subprocess.STDOUT
    )
    base_url = f"http://127.0.0.1:{embedded_env['LLMP_PORT']}"
    try:
        wait_healthy(base_url, server)
        yield server, base_url, log
    finally:
        for pid in worker_pids(server) if server.poll() is None else []:
            psutil.Process(pid).kill()
        server.kill()
        server.wait(timeout=30)


def test_a_dead_worker_comes_back_and_sigterm_stops_it_with_the_server(embedded_server):
    server, base_url, log = embedded_server
    wait_for("the worker registered", lambda: readyz(base_url).status_code == 200, WORKER_START_S)
    (first,) = worker_pids(server)

    psutil.Process(first).kill()
    not_ready = wait_for("/readyz says 503", lambda: (r := readyz(base_url)).status_code == 503 and r, 10)
    assert not_ready.json()["models_without_workers"] == [MODEL]
    assert not_ready.json()["checks"]["workers"] == "missing"
    (second,) = wait_for("a new worker", lambda: [p for p in worker_pids(server) if p != first], 10)
    wait_for("the new worker registered", lambda: readyz(base_url).status_code == 200, WORKER_START_S)
    served = log.read_text()
    assert f"the worker for model {MODEL} exited" in served
    assert served.count(f"joined the registry: {MODEL} at") == 2
    assert f"({MODEL}) dropped out of the registry: no heartbeat for" in served

    server.send_signal(signal.SIGTERM)  # what systemd, Docker and Kubernetes send
    code = server.wait(timeout=30)
    assert wait_for("the worker ended with the server", lambda: gone(second), 5)
    assert code == -signal.SIGTERM  # ended by the signal, after its workers: a clean stop to systemd


def test_a_worker_ends_by_itself_when_its_server_is_killed(embedded_server):
    server, base_url, _ = embedded_server
    wait_for("the worker registered", lambda: readyz(base_url).status_code == 200, WORKER_START_S)
    (worker,) = worker_pids(server)

    server.send_signal(signal.SIGKILL)  # no chance to stop anything
    server.wait(timeout=10)
    assert wait_for("the orphaned worker exited", lambda: gone(worker), 5)


def test_restarts_back_off_up_to_a_cap_and_recover_after_a_stable_run():
    backoff = RestartBackoff()
    quick_failures = [backoff.next_delay(ran_s=0.5) for _ in range(9)]
    assert quick_failures == [1, 2, 4, 8, 16, 32, 60, 60, 60]
    assert backoff.next_delay(ran_s=STABLE_AFTER_S) == 1  # it ran a while: a new failure, not a loop
