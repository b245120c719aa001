"""Real worker processes for the serving tests (`llmp worker`, on the test Postgres and Redis)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import redis

LLMP = str(Path(sys.executable).parent / "llmp")
WORKER_SECRET = "test-worker-secret-" + "w" * 32
HEARTBEAT_S = 0.2
TTL_S = 1.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def llmp(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Runs one `llmp` command to its end; with `check`, it must succeed."""
    result = subprocess.run([LLMP, *args], env=env, capture_output=True, text=True, timeout=120)
    if check:
        assert result.returncode == 0, result.stderr
    return result


def worker_env(database_url: str, redis_url: str, data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLMP_")}
    env.update(
        LLMP_DATABASE_URL=database_url,
        LLMP_REDIS_URL=redis_url,
        LLMP_DATA_DIR=str(data_dir),
        LLMP_WORKER_SECRET=WORKER_SECRET,
        LLMP_WORKER_HEARTBEAT_S=str(HEARTBEAT_S),
        LLMP_WORKER_TTL_S=str(TTL_S),
        # float32 on every machine: tests compare greedy answers across requests, and bf16's results
        # move with what a step is batched with (another test's answer still decoding, a prefix reused),
        # enough to flip a near-tie of the tiny random model. bf16 has its own tests and stated bound
        # (tests/models_registry/engine/test_fast_paths.py).
        LLMP_ENGINE_PRECISION="float32",
        # Compiling the decode step takes a CPU core for ~20 s per worker start (tiny model) while the
        # tests run; it is tested once, in-process (tests/models_registry/engine/test_compiled.py).
        LLMP_ENGINE_COMPILE_DECODE="false",
    )
    env.update(extra)
    return env


class WorkerProcess:
    def __init__(self, model: str, env: dict[str, str]) -> None:
        self.model = model
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = Path(env["LLMP_DATA_DIR"]) / f"worker-{self.port}.log"
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [LLMP, "worker", "--model", model, "--port", str(self.port)],
            env=env,
            stdout=self.log.open("wb"),
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self, timeout_s: float = 180) -> WorkerProcess:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"worker exited: {self.log.read_text()[-3000:]}")
            try:
                if self.health()["status"] == "ok":
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"worker did not start: {self.log.read_text()[-3000:]}")

    def health(self) -> dict:
        response = httpx.get(
            f"{self.url}/internal/health", headers={"Authorization": f"Bearer {WORKER_SECRET}"}
        )
        response.raise_for_status()
        return response.json()

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()


def wait_registered(redis_url: str, model: str, count: int = 1, timeout_s: float = 10) -> list[dict]:
    """Blocks until `count` ready workers of `model` are in the Redis registry (tests flush it)."""
    import json

    client = redis.Redis.from_url(redis_url)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        entries = [json.loads(raw) for key in client.scan_iter("llmp:workers:*") if (raw := client.get(key))]
        serving = [e for e in entries if model in e["models"] and e.get("state", "ready") == "ready"]
        if len(serving) >= count:
            return serving
        time.sleep(0.05)
    raise AssertionError(f"expected {count} worker(s) of {model} in the registry")


def wait_healthy(base_url: str, process: subprocess.Popen, timeout_s: float = 60) -> None:  # type: ignore[type-arg]
    """Blocks until an API server answers /healthz (or fails if its process died or it never did)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode}")
        try:
            if httpx.get(f"{base_url}/healthz").status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    raise RuntimeError(f"{base_url} did not come up within {timeout_s} s")


class ApiProcess:
    """`llmp serve --no-workers` in a process of its own: a replica of the API layer."""

    def __init__(self, env: dict[str, str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = Path(env["LLMP_DATA_DIR"]) / f"api-{self.port}.log"
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [LLMP, "serve", "--no-workers"],
            env={**env, "LLMP_PORT": str(self.port)},
            stdout=self.log.open("wb"),
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self) -> ApiProcess:
        wait_healthy(self.url, self.process)
        return self

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)
