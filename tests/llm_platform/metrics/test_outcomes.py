"""How a model call's failure is named in llmp_model_requests_total's `outcome`."""

from __future__ import annotations

import asyncio

import pytest

from llm_platform.core.errors import BadRequest, NotFound, RateLimited, ServiceUnavailable, Unauthorized
from llm_platform.metrics.api import OUTCOMES, ApiMetrics
from llm_platform.metrics.calls import ModelCall, outcome_of
from llm_platform.ratelimit.meter import QuotaExceeded


@pytest.mark.parametrize(
    ("error", "outcome"),
    [
        (RateLimited("slow down", retry_after_s=1), "rate_limited"),
        (QuotaExceeded("spent", retry_after_s=60), "quota"),
        (NotFound("no such model", code="model_not_found"), "client_error"),
        (BadRequest("too long", code="context_length_exceeded"), "client_error"),
        (Unauthorized(), "client_error"),
        (ServiceUnavailable("failed", code="model_error"), "model_error"),
        (ServiceUnavailable("no worker", code="model_unavailable"), "unavailable"),
        (RuntimeError("a bug of ours"), "unavailable"),
        (asyncio.CancelledError(), "cancelled"),
    ],
)
def test_outcome_of(error: BaseException, outcome: str):
    assert outcome_of(error) == outcome
    assert outcome in OUTCOMES


def _requests(metrics: ApiMetrics, **labels: str) -> float:
    return metrics.registry.get_sample_value("llmp_model_requests_total", labels) or 0.0


def test_a_call_is_counted_once_by_its_first_reason():
    metrics = ApiMetrics()
    call = ModelCall(metrics, "acme", "/v1/chat/completions", "m")
    call.failed(ServiceUnavailable("failed", code="model_error"))
    call.failed(asyncio.CancelledError())  # the stream is then torn down: still a model error
    call.interrupted(10, 3)
    call.answered(10, 3)  # a settlement that runs again counts nothing more
    labels = {"tenant": "acme", "model": "m", "endpoint": "/v1/chat/completions"}
    assert _requests(metrics, **labels, outcome="model_error") == 1
    assert _requests(metrics, **labels, outcome="ok") == 0
    tokens = metrics.registry.get_sample_value(
        "llmp_model_tokens_total", {"tenant": "acme", "model": "m", "type": "completion"}
    )
    assert tokens == 3  # billed for what it produced
