"""A worker's /metrics (Prometheus text on its own port): the queue the autoscaler reads, the running
sequences per tenant, the KV cache, token counters and the step time, as they move under a generation."""

from __future__ import annotations

import time

import httpx

from tests.metrics import scrape
from tests.workers import WORKER_SECRET, WorkerProcess

LONG = 12_000  # tokens: seconds even for the tiny model, so the first request is surely still running
HEADERS = {"Authorization": f"Bearer {WORKER_SECRET}"}


def _body(request_id: str, tenant: str, max_tokens: int) -> dict:
    return {
        "request_id": request_id,
        "tenant": tenant,
        "model": "tiny-long",
        "messages": [{"role": "user", "content": "Tell me a long story."}],
        "params": {"max_tokens": max_tokens, "temperature": 1.0, "ignore_eos": True},
    }


def _wait_idle(worker: WorkerProcess, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while (health := worker.health())["running"] + health["waiting"] and time.monotonic() < deadline:
        time.sleep(0.05)


def test_worker_metrics_follow_its_queue_batch_and_tokens(long_worker):
    _wait_idle(long_worker)
    before = scrape(long_worker.url)  # no secret needed: like the API's, it shows load, not data
    model = {"model": "tiny-long"}
    assert before.value("llmp_worker_ready", **model) == 1
    assert before.value("llmp_worker_model_load_seconds", **model) > 0
    # The test workers decode uncompiled (tests/workers.py): the state set says which state holds.
    states = {"off": 1, "compiling": 0, "on": 0, "failed": 0}
    for state, held in states.items():
        assert before.value("llmp_worker_decode_compile", **model, llmp_worker_decode_compile=state) == held
    url = f"{long_worker.url}/internal/generate"
    # The worker admits one sequence and queues one more: one runs, one waits.
    with (
        httpx.stream("POST", url, json=_body("m1", "acme", LONG), headers=HEADERS, timeout=30) as running,
        httpx.stream("POST", url, json=_body("m2", "globex", LONG), headers=HEADERS, timeout=30) as queued,
    ):
        assert running.status_code == 200 and queued.status_code == 200
        lines = running.iter_lines()
        assert "text" in next(lines)  # decoding
        during = scrape(long_worker.url)
    assert during.value("llmp_worker_queue_depth", **model) == 1
    assert during.value("llmp_worker_running_sequences", **model) == 1
    assert during.value("llmp_worker_tenant_running_sequences", **model, tenant="acme") == 1
    assert not during.series("llmp_worker_tenant_running_sequences", tenant="globex")  # still waiting
    assert during.value("llmp_worker_kv_cache_slots_used", **model) == 1
    assert during.value("llmp_worker_kv_cache_slots_free", **model) == 0  # max_running 1, no headroom
    _wait_idle(long_worker)
    after = scrape(long_worker.url)
    assert after.value("llmp_worker_queue_depth", **model) == 0
    assert after.value("llmp_worker_kv_cache_slots_used", **model) == 0
    assert (
        after.value("llmp_worker_requests_total", **model) - before.value("llmp_worker_requests_total") == 2
    )
    # Token counters (rate() of them is tokens/s) and the step histogram moved with the generation.
    assert after.value("llmp_worker_prefill_tokens_total", **model) > before.value(
        "llmp_worker_prefill_tokens_total", **model
    )
    assert after.value("llmp_worker_decode_tokens_total", **model) > before.value(
        "llmp_worker_decode_tokens_total", **model
    )
    steps = after.value("llmp_worker_step_duration_seconds_count", **model) - before.value(
        "llmp_worker_step_duration_seconds_count", **model
    )
    assert steps >= 1
    assert after.value("llmp_worker_step_duration_seconds_bucket", **model, le="+Inf") == after.value(
        "llmp_worker_step_duration_seconds_count", **model
    )
