"""Every metric family of the API process but the HTTP ones (starlette-exporter's) and the audit
writer's (process-wide, in the default registry): defined once here, in a registry of the app's own.

Recording sits on the hot path of every model call, so the labelled children are looked up in plain
dicts keyed by their label values (`_Children`), not through `labels()`, which validates its arguments
and takes a lock each time. Where the tenant label is off (LLMP_METRICS_TENANT_LABEL=false: platforms
with thousands of tenants) the families are declared without it and the keys keep the tenant, dropped
when a child is first made: the callers' code is the same either way.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Annotated, Any

from fastapi import Depends
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.requests import HTTPConnection

# Buckets of the OpenTelemetry GenAI semantic conventions' histograms (gen_ai.server.request.duration,
# gen_ai.server.time_to_first_token, gen_ai.server.time_per_output_token): sized for LLM latencies.
REQUEST_DURATION_BUCKETS_S = (
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
)  # fmt: skip
TIME_TO_FIRST_TOKEN_BUCKETS_S = (
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
)  # fmt: skip
TIME_PER_OUTPUT_TOKEN_BUCKETS_S = (
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5,
)  # fmt: skip
SEARCH_DURATION_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

# How a model call ended (llmp_model_requests_total's `outcome`).
OUTCOMES = ("ok", "rate_limited", "quota", "client_error", "model_error", "unavailable", "cancelled")
# Label values known in advance, whose series exist from the start at 0: rate() over them then sees the
# first event as an increase, where a series born at 1 would show none.
LIMITERS = ("redis", "local")
LIMIT_DIMENSIONS = ("requests", "tokens", "concurrency", "monthly_quota", "daily_quota")
LIMIT_SCOPES = ("tenant", "key")
SEARCH_SOURCES = ("api", "chat")
INGESTION_OUTCOMES = ("indexed", "failed", "retried", "deleted")


class _Children(dict[tuple[str, ...], Any]):
    """A family's children by their label values (the tenant first where the family has one)."""

    def __init__(self, family: Counter | Histogram, drop_first: bool = False) -> None:
        super().__init__()
        self._family = family
        self._drop_first = drop_first

    def __missing__(self, key: tuple[str, ...]) -> Any:
        child = self._family.labels(*(key[1:] if self._drop_first else key))
        self[key] = child
        return child


class _LiveWorkers(Collector):
    """Live workers per model and state, as last read from the registry (the /metrics handler reads
    it before each scrape: the registry is read asynchronously, a collector cannot wait)."""

    def __init__(self) -> None:
        self.counts: Mapping[tuple[str, str], int] = {}

    def collect(self) -> Iterable[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "llmp_workers_live",
            "Live model workers registered for each model, by state (ready only after warm-up)",
            labels=["model", "state"],
        )
        for (model, state), count in sorted(self.counts.items()):
            family.add_metric([model, state], count)
        yield family


class ApiMetrics:
    def __init__(self, tenant_label: bool = True) -> None:
        self.tenant_label = tenant_label
        self.registry = registry = CollectorRegistry()
        tenant = ["tenant"] if tenant_label else []
        drop = not tenant_label

        def counter(name: str, description: str, labels: list[str]) -> Counter:
            return Counter(name, description, labels, registry=registry)

        def histogram(
            name: str, description: str, labels: list[str], buckets: tuple[float, ...]
        ) -> Histogram:
            return Histogram(name, description, labels, buckets=buckets, registry=registry)

        self.requests = _Children(
            counter(
                "llmp_model_requests",
                "Model calls (chat turns, embeddings requests) by how they ended",
                [*tenant, "model", "endpoint", "outcome"],
            ),
            drop,
        )
        self.tokens = _Children(
            counter(
                "llmp_model_tokens",
                "Tokens of model calls: prompt and completion as billed, cached as served from the "
                "response cache (not computed, not billed)",
                [*tenant, "model", "type"],
            ),
            drop,
        )
        self.request_duration = _Children(
            histogram(
                "llmp_model_request_duration_seconds",
                "A model call from its admission to its last token (answers the model computed)",
                ["model"],
                REQUEST_DURATION_BUCKETS_S,
            )
        )
        self.time_to_first_token = _Children(
            histogram(
                "llmp_model_time_to_first_token_seconds",
                "A chat turn from its admission to its first text",
                ["model"],
                TIME_TO_FIRST_TOKEN_BUCKETS_S,
            )
        )
        self.time_per_output_token = _Children(
            histogram(
                "llmp_model_time_per_output_token_seconds",
                "A chat answer's time per output token after the first (one observation per answer)",
                ["model"],
                TIME_PER_OUTPUT_TOKEN_BUCKETS_S,
            )
        )
        self.cache_lookups = _Children(
            counter(
                "llmp_response_cache_lookups",
                "Response cache lookups of model calls by result (hit, miss)",
                [*tenant, "result"],
            ),
            drop,
        )
        self.limiter_admissions = _Children(
            counter(
                "llmp_ratelimit_admissions",
                "Model calls admitted by the limiter: redis, or this process's own (local)",
                ["limiter"],
            )
        )
        self.limiter_refusals = _Children(
            counter(
                "llmp_ratelimit_refusals",
                "Model calls refused by the limiter, by the limit (dimension) and whose it was (scope)",
                ["dimension", "scope"],
            )
        )
        self.limits_degraded = Gauge(
            "llmp_rate_limits_degraded_active",
            "1 while Redis is unreachable and limits are counted by this process alone (or refused)",
            registry=registry,
        )
        self.knowledge_searches = _Children(
            counter(
                "llmp_knowledge_searches",
                "Knowledge-base searches: the search API, or a chat turn's retrieval",
                ["source"],
            )
        )
        self.knowledge_search_duration = _Children(
            histogram(
                "llmp_knowledge_search_duration_seconds",
                "Knowledge-base searches, query embedding included",
                ["source"],
                SEARCH_DURATION_BUCKETS_S,
            )
        )
        self.knowledge_ingestions = _Children(
            counter(
                "llmp_knowledge_ingestions",
                "Documents the ingester took up, by outcome (indexed, failed, retried, deleted)",
                ["outcome"],
            )
        )
        self.live_workers = _LiveWorkers()
        registry.register(self.live_workers)
        for limiter in LIMITERS:
            self.limiter_admissions[(limiter,)]
        for dimension in LIMIT_DIMENSIONS:
            for scope in LIMIT_SCOPES:
                self.limiter_refusals[(dimension, scope)]
        for source in SEARCH_SOURCES:
            self.knowledge_searches[(source,)]
            self.knowledge_search_duration[(source,)]
        for outcome in INGESTION_OUTCOMES:
            self.knowledge_ingestions[(outcome,)]

    def cache_lookup(self, tenant: str, hit: bool) -> None:
        self.cache_lookups[(tenant, "hit" if hit else "miss")].inc()

    def set_live_workers(self, counts: Mapping[tuple[str, str], int]) -> None:
        """(model, state) -> workers; a model with none is reported as 0 ready."""
        self.live_workers.counts = counts

    def knowledge_searched(self, source: str, seconds: float) -> None:
        self.knowledge_searches[(source,)].inc()
        self.knowledge_search_duration[(source,)].observe(seconds)


async def _api_metrics(connection: HTTPConnection) -> ApiMetrics:
    return connection.app.state.platform.metrics


ApiMetricsDep = Annotated[ApiMetrics, Depends(_api_metrics)]
