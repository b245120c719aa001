"""Embedded mode: `llmp serve` starts a worker process for each enabled bundled model, and stops them."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import select

from llm_platform.db import run_in_session
from llm_platform.settings import Settings
from models_registry.bundled import BUNDLED_PREFIX
from models_registry.models import Model, ModelBackend

logger = logging.getLogger(__name__)


def spawn_bundled_workers(settings: Settings) -> list[subprocess.Popen[bytes]]:
    async def bundled_models(session) -> list[str]:  # type: ignore[no-untyped-def]
        rows = await session.scalars(
            select(Model.name).where(
                Model.enabled.is_(True),
                Model.backend == ModelBackend.hf,
                Model.source.startswith(BUNDLED_PREFIX),
            )
        )
        return list(rows)

    llmp = str(Path(sys.executable).parent / "llmp")
    # The children report to this server (its URL) with the secret in the shared data dir.
    environment = {
        **os.environ,
        "LLMP_REGISTRY_URL": settings.resolved_registry_url,
        "LLMP_DATA_DIR": str(settings.data_dir),
    }
    children = []
    for name in run_in_session(settings, bundled_models):
        logger.info("starting a worker for bundled model %s", name)
        children.append(subprocess.Popen([llmp, "worker", "--model", name], env=environment))  # noqa: S603
    return children


def stop_workers(children: list[subprocess.Popen[bytes]]) -> None:
    for child in children:
        child.terminate()
    for child in children:
        try:
            child.wait(timeout=15)
        except subprocess.TimeoutExpired:
            child.kill()
