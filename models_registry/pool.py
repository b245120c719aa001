"""The live worker pool as platform admins see it: who serves which model, how loaded, last heard from
when. Read from the worker registry (models_registry.registry), the same view dispatch routes by."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from models_registry.registry import WorkerRegistry
from models_registry.schemas import WorkerOut
from models_registry.worker.protocol import READY, STARTING, WorkerInfo


async def list_workers(registry: WorkerRegistry, model: str | None = None) -> list[WorkerOut]:
    """The live workers (of `model`, if given), by model then id: a stable order for a page that
    refreshes."""
    now = time.time()
    live = sorted(await registry.live_workers(model), key=lambda w: (w.models, w.worker_id))
    return [_view(worker, now) for worker in live]


def _view(worker: WorkerInfo, now: float) -> WorkerOut:
    return WorkerOut(
        worker_id=worker.worker_id,
        url=worker.url,
        models=list(worker.models),
        # An entry of a newer worker's state this version does not know is shown as still starting:
        # dispatch sends work only to READY ones.
        state=READY if worker.state == READY else STARTING,
        capacity=worker.capacity,
        load=worker.load,
        queued=worker.waiting,
        heartbeat_at=datetime.fromtimestamp(worker.heartbeat_at, UTC),
        heartbeat_age_s=round(max(0.0, now - worker.heartbeat_at), 3),
    )
