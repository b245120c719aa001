"""GET /metrics: Prometheus's text format, the process-wide families (HTTP by route template, the audit
writer's, the process's own) and the app's (llm_platform.metrics), the worker pool read just before."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from llm_platform.health import worker_pool
from llm_platform.state import StateDep

router = APIRouter(include_in_schema=False)
logger = logging.getLogger(__name__)


@router.get("/metrics")
async def metrics(state: StateDep) -> Response:
    try:
        _, by_model = await worker_pool(state)
        counts: dict[tuple[str, str], int] = {}
        for model, workers in by_model.items():
            counts.setdefault((model, "ready"), 0)  # a model without a worker shows as 0, not as nothing
            for worker in workers:
                counts[(model, worker.state)] = counts.get((model, worker.state), 0) + 1
        state.metrics.set_live_workers(counts)
    except Exception:  # the scrape still answers, with the pool as last read
        logger.warning("metrics: the worker registry or catalogue is unreadable", exc_info=True)
    body = generate_latest(REGISTRY) + generate_latest(state.metrics.registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
