"""A worker's Prometheus metrics, served at GET /metrics on its own port: read from the engine (or the
embedding batcher) at scrape time, so serving costs nothing; the engine's step time is the one
histogram, observed by the engine thread after each step. Every family has a `model` label; the queue
depth's name and label are what the Helm chart's KEDA ScaledObject scales on."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Protocol

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric, StateSetMetricFamily
from prometheus_client.registry import Collector

from models_registry.engine.stats import COMPILE_STATES, EngineStats

# From a millisecond (a tiny model's decode step) to a long prompt's prefill chunk on a busy GPU.
STEP_DURATION_BUCKETS_S = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip


class ServedModel(Protocol):
    """What the collector reads of the worker (models_registry.worker.app.WorkerState is one)."""

    model_name: str
    requests: int
    load_s: float
    warmup_s: float
    ready: bool

    def load(self) -> dict[str, int]: ...

    def engine_stats(self) -> EngineStats | None: ...

    def embed_forwards(self) -> int | None: ...


class WorkerCollector(Collector):
    def __init__(self, worker: ServedModel, tenant_label: bool) -> None:
        self._worker = worker
        self._tenant_label = tenant_label

    def collect(self) -> Iterable[Metric]:
        worker = self._worker
        model = [worker.model_name]
        load = worker.load()

        def gauge(name: str, description: str, value: float) -> GaugeMetricFamily:
            family = GaugeMetricFamily(name, description, labels=["model"])
            family.add_metric(model, value)
            return family

        def counter(name: str, description: str, value: float) -> CounterMetricFamily:
            family = CounterMetricFamily(name, description, labels=["model"])
            family.add_metric(model, value)
            return family

        yield gauge("llmp_worker_ready", "1 once the model is loaded and warmed up", 1 if worker.ready else 0)
        yield gauge("llmp_worker_queue_depth", "Requests waiting for admission", load["waiting"])
        yield gauge("llmp_worker_running_sequences", "Sequences (inputs) being processed", load["running"])
        yield gauge(
            "llmp_worker_capacity_sequences", "Sequences processed together at most", load["capacity"]
        )
        yield counter("llmp_worker_requests", "Requests accepted", worker.requests)
        yield gauge("llmp_worker_model_load_seconds", "Time the model took to load", worker.load_s)
        yield gauge("llmp_worker_warmup_seconds", "Time the model's warm-up took", worker.warmup_s)
        stats = worker.engine_stats()
        if stats is not None:
            yield gauge(
                "llmp_worker_kv_cache_slots_used", "KV-cache rows holding a sequence", stats.kv_slots_used
            )
            yield gauge(
                "llmp_worker_kv_cache_slots_free",
                "KV-cache rows free for a sequence",
                stats.kv_slots_total - stats.kv_slots_used,
            )
            yield gauge(
                "llmp_worker_reserved_tokens",
                "Prompt + max_tokens of the admitted sequences (the KV budget in use)",
                stats.reserved_tokens,
            )
            yield counter("llmp_worker_prefill_tokens", "Prompt tokens prefilled", stats.prefill_tokens)
            yield counter(
                "llmp_worker_prefix_reused_tokens",
                "Prompt tokens not prefilled: their KV came from the tenant's prefix cache",
                stats.reused_tokens,
            )
            yield gauge(
                "llmp_worker_prefix_cache_bytes", "Memory of the prefix cache", stats.prefix_cache_bytes
            )
            yield counter("llmp_worker_decode_tokens", "Tokens generated", stats.generated_tokens)
            yield counter("llmp_worker_engine_steps", "Scheduler steps run", stats.steps)
            # After a start the engine decodes uncompiled for minutes (compiled.py): slower, and says so.
            compile_state = StateSetMetricFamily(
                "llmp_worker_decode_compile",
                "The compiled decode step: off, compiling (decoding uncompiled meanwhile), on, failed",
                labels=["model"],
            )
            compile_state.add_metric(
                model, {state: state == stats.decode_compile for state in COMPILE_STATES}
            )
            yield compile_state
            if self._tenant_label:
                by_tenant = GaugeMetricFamily(
                    "llmp_worker_tenant_running_sequences",
                    "Sequences admitted per tenant (the fair scheduler's state)",
                    labels=["model", "tenant"],
                )
                for tenant, running in sorted(stats.running_by_tenant.items()):
                    by_tenant.add_metric([worker.model_name, tenant], running)
                yield by_tenant
        forwards = worker.embed_forwards()
        if forwards is not None:
            yield counter("llmp_worker_embed_forwards", "Forward passes of the embedding batcher", forwards)


def worker_registry(
    worker: ServedModel, tenant_label: bool
) -> tuple[CollectorRegistry, Callable[[float], None]]:
    """The worker's own registry (a process may host several apps in tests), and the engine's step
    observer recording into it."""
    registry = CollectorRegistry()
    registry.register(WorkerCollector(worker, tenant_label))
    steps = Histogram(
        "llmp_worker_step_duration_seconds",
        "Wall time of one engine step (prefill chunks and one decode of the batch)",
        ["model"],
        buckets=STEP_DURATION_BUCKETS_S,
        registry=registry,
    )
    return registry, steps.labels(worker.model_name).observe
