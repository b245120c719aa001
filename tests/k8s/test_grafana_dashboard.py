"""The Grafana dashboard (k8s/grafana/llm-platform.json) reads only metrics the code exports: each
PromQL expression is parsed by a real PromQL parser, and each metric it names must be a series of a
live API's or a live worker's /metrics after they served traffic. The dashboard never drifts from the
code: rename a metric and this fails."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import promql_parser
import pytest

from tests.conftest import QUESTION, TINY_MODEL
from tests.metrics import Scrape, scrape
from tests.responses import bearer
from tests.workers import WORKER_SECRET

DASHBOARD = Path(__file__).parents[2] / "k8s" / "grafana" / "llm-platform.json"
# What Grafana puts in place of its variables before a query reaches Prometheus.
VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "$tenant": ".*", "$model": ".*"}
LABEL_VALUES = re.compile(r"^label_values\((.+),\s*(\w+)\)$")


def _dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def _panels(dashboard: dict) -> list[dict]:
    return [panel for panel in dashboard["panels"] if panel["type"] != "row"]


def _expressions(dashboard: dict) -> list[str]:
    """Every PromQL expression: the panels' queries, and the selectors of the template variables."""
    expressions = [target["expr"] for panel in _panels(dashboard) for target in panel["targets"]]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            found = LABEL_VALUES.match(variable["definition"])
            assert found, variable["definition"]
            expressions.append(found.group(1))
    return expressions


def metric_names(expression: str) -> set[str]:
    for variable, value in VARIABLES.items():
        expression = expression.replace(variable, value)
    assert "$" not in expression, f"an unknown Grafana variable in {expression}"
    names: set[str] = set()

    def visit(node: promql_parser.Expr) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            assert node.name, f"a selector without a metric name in {expression}"
            names.add(node.name)

    promql_parser.walk(promql_parser.parse(expression), visit)
    return names


def test_metric_names_are_found_in_promql_as_parsed():
    query = (
        'histogram_quantile(0.9, sum by (le, model) (rate(llmp_a_bucket{model=~"$model"}[$__rate_interval])))'
        ' / on() group_left clamp_min(sum(llmp_b_total{tenant=~"$tenant", outcome!~"ok|x"}), 1e-9)'
    )
    assert metric_names(query) == {"llmp_a_bucket", "llmp_b_total"}
    assert metric_names("sum by (model) (rate(llmp_c_total[5m])) > bool 1") == {"llmp_c_total"}
    with pytest.raises(ValueError):
        metric_names("sum(rate(llmp_c_total[5m])")  # unbalanced: a real parser refuses it


def test_the_dashboard_has_its_variables_and_panels():
    dashboard = _dashboard()
    variables = {variable["name"]: variable for variable in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for name in ("tenant", "model"):
        assert variables[name]["type"] == "query" and variables[name]["includeAll"]
    for panel in _panels(dashboard):
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]  # no datasource baked in
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]
    titles = " | ".join(panel["title"].lower() for panel in _panels(dashboard))
    for wanted in (
        "by tenant",
        "tokens",
        "time to first token",
        "time per output token",
        "cache hit ratio",
        "limiter refusals",
        "queue depth",
        "running sequences",
        "kv-cache",
        "live workers",
    ):
        assert wanted in titles, wanted
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))


def _api_after_traffic(served, tenant) -> Scrape:  # type: ignore[no-untyped-def]
    """The API's /metrics after a chat call, a cache hit, a refusal and a knowledge-base search."""
    client = served.client
    key = served.create_key(tenant)["key"]
    body = {"model": TINY_MODEL, "messages": QUESTION, "max_tokens": 6, "temperature": 0}
    for _ in range(2):  # the second from the cache
        assert client.post("/v1/chat/completions", json=body, headers=bearer(key)).status_code == 200
    served.set_limits(tenant, requests_per_minute=1)
    assert client.post("/v1/chat/completions", json=body, headers=bearer(key)).status_code == 429
    search = client.post(
        f"/{tenant.slug}/kb/search",
        json={"query": "anything", "mode": "lexical"},
        headers=tenant.admin_headers,
    )
    assert search.status_code == 200, search.text
    return Scrape.of(client.get("/metrics").text)


def _worker_while_generating(worker) -> Scrape:  # type: ignore[no-untyped-def]
    """A worker's /metrics while a sequence runs and another waits (the per-tenant series exist then)."""
    url = f"{worker.url}/internal/generate"
    headers = {"Authorization": f"Bearer {WORKER_SECRET}"}
    bodies = [
        {
            "request_id": f"dash-{n}",
            "tenant": "acme",
            "model": "tiny-long",
            "messages": QUESTION,
            "params": {"max_tokens": 12_000, "temperature": 1.0, "ignore_eos": True},
        }
        for n in range(2)
    ]
    with (
        httpx.stream("POST", url, json=bodies[0], headers=headers, timeout=30) as running,
        httpx.stream("POST", url, json=bodies[1], headers=headers, timeout=30) as queued,
    ):
        assert running.status_code == 200 and queued.status_code == 200
        lines = running.iter_lines()
        next(lines), next(lines)  # a few steps have run
        return scrape(worker.url)


def test_every_metric_the_dashboard_reads_is_exported(served, tenant_a, long_worker):
    api = _api_after_traffic(served, tenant_a)
    worker = _worker_while_generating(long_worker)
    exported = {**api.kinds, **worker.kinds}
    read = {name for expression in _expressions(_dashboard()) for name in metric_names(expression)}
    assert read, "the dashboard reads no metric"
    missing = sorted(read - exported.keys())
    assert not missing, f"the dashboard reads metrics nobody exports: {missing}"
    for name in read:  # a histogram's series are read as _bucket, _sum or _count, never bare
        if exported[name] == "histogram":
            assert name.endswith(("_bucket", "_sum", "_count")), name
    # Each panel group has something to show: the labels its queries group by exist on the series.
    assert api.series("llmp_model_requests_total", tenant=tenant_a.slug, outcome="rate_limited")
    assert worker.series("llmp_worker_tenant_running_sequences", tenant="acme")
