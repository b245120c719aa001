"""Embedded mode: `llmp serve` runs a worker process for each enabled hf model, restarts one that dies,
and stops them when it stops."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession

from llm_platform.core.db import run_in_session
from llm_platform.core.settings import Settings
from models_registry.service import load_enabled

logger = logging.getLogger(__name__)

FIRST_RESTART_DELAY_S = 1.0
MAX_RESTART_DELAY_S = 60.0  # a worker that keeps failing (a missing model, say) is retried this often
STABLE_AFTER_S = 60.0  # a worker that ran this long restarts after the first delay again
POLL_S = 0.2
STOP_TIMEOUT_S = 15.0


def served_models(settings: Settings) -> list[str]:
    """Enabled models our workers serve (backend hf: bundled, a local directory or a cached hub id)."""

    async def names(session: AsyncSession) -> list[str]:
        enabled = await load_enabled(session)
        return sorted(name for name, entry in enabled.items() if entry.served_by_workers)

    return run_in_session(settings, names)


@dataclass
class RestartBackoff:
    """How long to wait before restarting a worker that exited: doubling while it keeps failing, up to a
    cap, and short again once a run lasted STABLE_AFTER_S."""

    delay_s: float = FIRST_RESTART_DELAY_S

    def next_delay(self, ran_s: float) -> float:
        if ran_s >= STABLE_AFTER_S:
            self.delay_s = FIRST_RESTART_DELAY_S
        delay_s = self.delay_s
        self.delay_s = min(self.delay_s * 2, MAX_RESTART_DELAY_S)
        return delay_s


@dataclass
class _Worker:
    model: str
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    restart_at: float = 0.0  # monotonic time of the next start while `process` is None
    backoff: RestartBackoff = field(default_factory=RestartBackoff)


class WorkerSupervisor:
    """Starts one worker per model, restarts one that exits (after a delay that doubles up to a cap),
    and terminates them all on `stop()`.

    Every worker is started from the supervisor's own thread, which lives until the workers are stopped:
    Linux sends a worker its parent-death signal when the *thread* that started it ends. The workers get
    `--parent-pid`, so they also end by themselves if this process is killed outright (SIGKILL), and a
    session of their own, so a Ctrl-C in the terminal reaches the server alone, which stops them in turn.
    """

    def __init__(self, settings: Settings, models: list[str]) -> None:
        self._workers = [_Worker(model) for model in models]
        self._llmp = str(Path(sys.executable).parent / "llmp")
        # The children report to this server (its URL) with the secret in the shared data dir.
        self._environment = {
            **os.environ,
            "LLMP_REGISTRY_URL": settings.resolved_registry_url,
            "LLMP_DATA_DIR": str(settings.data_dir),
        }
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="worker-supervisor", daemon=True)

    def start(self) -> None:
        if self._workers:
            self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        try:
            for worker in self._workers:
                self._spawn(worker)
            while not self._stopping.wait(POLL_S):
                for worker in self._workers:
                    self._check(worker)
        finally:
            self._terminate_all()

    def _spawn(self, worker: _Worker) -> None:
        logger.info("starting a worker for model %s", worker.model)
        worker.started_at = time.monotonic()
        try:
            worker.process = subprocess.Popen(  # noqa: S603
                [self._llmp, "worker", "--model", worker.model, "--parent-pid", str(os.getpid())],
                env=self._environment,
                start_new_session=True,
            )
        except OSError as exc:  # out of processes or memory, say: try again later, like a crash
            delay_s = worker.backoff.next_delay(ran_s=0.0)
            logger.error(
                "could not start a worker for model %s (%s); retrying in %.0f s", worker.model, exc, delay_s
            )
            worker.restart_at = time.monotonic() + delay_s

    def _check(self, worker: _Worker) -> None:
        now = time.monotonic()
        if worker.process is None:
            if now >= worker.restart_at:
                self._spawn(worker)
            return
        code = worker.process.poll()
        if code is None:
            return
        delay_s = worker.backoff.next_delay(ran_s=now - worker.started_at)
        logger.warning(
            "the worker for model %s exited with code %s; restarting it in %.0f s",
            worker.model,
            code,
            delay_s,
        )
        worker.process = None
        worker.restart_at = now + delay_s

    def _terminate_all(self) -> None:
        running = [w.process for w in self._workers if w.process is not None and w.process.poll() is None]
        for process in running:
            process.terminate()
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for process in running:
            try:
                process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
