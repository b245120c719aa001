"""LLMP_DEFAULT_MAX_TOKENS is decided by the API: the worker generates that many and the rate limiter
reserves that many, not the whole context."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import pytest

from llm_platform.chat.generation import TEMPLATE_TOKENS, TEMPLATE_TOKENS_PER_MESSAGE, reservation, resolve
from llm_platform.chat.sampling import AskedSampling
from llm_platform.core.settings import Settings
from models_registry.models import ModelBackend, ModelKind
from models_registry.service import CatalogueEntry
from models_registry.worker.protocol import ChatMessage
from tenants.ref import TenantRef
from tests.conftest import TINY_CONTEXT, TINY_MODEL
from tests.responses import bearer

DEFAULT_MAX_TOKENS = 8


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"default_max_tokens": DEFAULT_MAX_TOKENS})


def test_a_request_without_max_tokens_gets_and_reserves_the_platforms_default(served, tenant_a):
    platform = served
    limit = 10_000
    platform.set_limits(tenant_a, tokens_per_minute=limit)
    key = platform.create_key(tenant_a)["key"]
    body = {"model": TINY_MODEL, "messages": [{"role": "user", "content": "Count to a thousand."}]}
    response = platform.client.post(
        "/v1/chat/completions",
        json={**body, "temperature": 0, "ignore_eos": True},
        headers={**bearer(key), "Cache-Control": "no-cache"},
    )
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["choices"][0]["finish_reason"] == "length"
    assert answer["usage"]["completion_tokens"] == DEFAULT_MAX_TOKENS
    reserved = limit - int(response.headers["x-ratelimit-remaining-tokens"])
    assert answer["usage"]["prompt_tokens"] + DEFAULT_MAX_TOKENS <= reserved < TINY_CONTEXT


class _OneModel:
    """A catalogue holding one model, which every tenant may use."""

    def __init__(self, backend: ModelBackend) -> None:
        base_url = "http://upstream.invalid/v1" if backend is ModelBackend.openai else None
        self.entry = CatalogueEntry(
            "m", ModelKind.chat, backend, "m", base_url, TINY_CONTEXT, {}, datetime.now(UTC)
        )

    async def model_for(self, tenant_id: uuid.UUID, name: str) -> CatalogueEntry:
        return self.entry


def _resolved(backend: ModelBackend, asked: AskedSampling):  # type: ignore[no-untyped-def]
    messages = [ChatMessage(role="user", content="Hi")]
    tenant = TenantRef(uuid.uuid4(), "t")
    catalogue = _OneModel(backend)
    return asyncio.run(
        resolve(catalogue, tenant, "m", messages, asked, "r", default_max_tokens=DEFAULT_MAX_TOKENS)  # type: ignore[arg-type]
    )


PROMPT_BOUND = len(b"Hi") + TEMPLATE_TOKENS_PER_MESSAGE + TEMPLATE_TOKENS


def test_the_worker_is_sent_the_budget_the_reservation_holds():
    # Pure: the one decision, read by both (no process, no database).
    defaulted = _resolved(ModelBackend.hf, AskedSampling())
    params = defaulted.request.params
    assert (params.max_tokens, params.max_tokens_is_default) == (DEFAULT_MAX_TOKENS, True)
    assert reservation(defaulted) == PROMPT_BOUND + DEFAULT_MAX_TOKENS
    asked = _resolved(ModelBackend.hf, AskedSampling(max_tokens=20))
    assert (asked.request.params.max_tokens, asked.request.params.max_tokens_is_default) == (20, False)
    assert reservation(asked) == PROMPT_BOUND + 20


def test_an_upstream_gets_no_default_and_the_reservation_holds_the_context():
    upstream = _resolved(ModelBackend.openai, AskedSampling())
    assert upstream.request.params.max_tokens is None  # the upstream applies its own default
    assert reservation(upstream) == TINY_CONTEXT  # it may use the whole context
