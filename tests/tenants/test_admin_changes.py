"""Admin changes made through the services without HTTP, as a console action or a script makes them: given
the app's caches, the service forgets what it changed, so the app's very next request uses the change.

Each test first makes a request that loads what it then changes into the app's caches (held for a second):
without the service forgetting it, the next request would be answered from the old copy.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Iterator
from typing import TypeVar

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from llm_platform.state import PlatformState
from models_registry import service as catalogue_service
from tenants import service
from tenants.models import TenantStatus
from tests.conftest import PlatformHelper, TenantCtx, register_model
from tests.responses import assert_error, bearer

T = TypeVar("T")
MODEL = "admin-changes-model"  # registered, served by no worker: a request for it is admitted, then 503


@pytest.fixture
def key_headers(platform: PlatformHelper, tenant_a: TenantCtx, db_engine) -> Iterator[dict[str, str]]:  # type: ignore[no-untyped-def]
    """An inference key of tenant_a, and MODEL in the catalogue (whose rows outlive the test: removed)."""
    register_model(db_engine, MODEL, "/nonexistent", 512)
    yield bearer(platform.create_key(tenant_a)["key"])
    with db_engine.begin() as connection:
        connection.execute(text("DELETE FROM models WHERE name LIKE 'admin-changes-%'"))


def change(platform: PlatformHelper, make: Callable[[AsyncSession, PlatformState], Awaitable[T]]) -> T:
    """Runs `make(session, state)` on the app's own event loop, in a session of its own: no HTTP."""
    state: PlatformState = platform.client.app.state.platform  # type: ignore[attr-defined]

    async def run() -> T:
        async with state.session_factory() as session:
            return await make(session, state)

    return platform.client.portal.call(run)


def listed_models(platform: PlatformHelper, headers: dict[str, str]) -> list[str]:
    response = platform.client.get("/v1/models", headers=headers)
    assert response.status_code == 200, response.text
    return [model["id"] for model in response.json()["data"]]


def chat(platform: PlatformHelper, headers: dict[str, str], model: str = MODEL):  # type: ignore[no-untyped-def]
    body = {"model": model, "messages": [{"role": "user", "content": "Hello"}], "max_tokens": 2}
    return platform.client.post("/v1/chat/completions", json=body, headers=headers)


def test_allowed_models_changed_through_the_service_hold_on_the_next_request(platform, tenant_a, key_headers):
    assert MODEL in listed_models(platform, key_headers)
    change(
        platform,
        lambda session, state: service.update_limits(
            session, uuid.UUID(tenant_a.id), {"allowed_models": ["another-model"]}, caches=state.admin_caches
        ),
    )
    assert MODEL not in listed_models(platform, key_headers)
    assert_error(platform.client.get(f"/v1/models/{MODEL}", headers=key_headers), 404, "model_not_found")
    assert_error(chat(platform, key_headers), 404, "model_not_found")


def test_a_request_limit_set_through_the_service_refuses_the_second_request(platform, tenant_a, key_headers):
    assert MODEL in listed_models(platform, key_headers)  # the tenant's limits are now cached
    change(
        platform,
        lambda session, state: service.update_limits(
            session, uuid.UUID(tenant_a.id), {"requests_per_minute": 1}, caches=state.admin_caches
        ),
    )
    first = chat(platform, key_headers)
    assert_error(first, 503, "model_unavailable")  # admitted: no worker serves the model
    assert first.headers["x-ratelimit-limit-requests"] == "1"
    error = assert_error(chat(platform, key_headers), 429, "rate_limit_exceeded")
    assert "1 requests per minute" in error["message"]


def test_a_key_limit_set_through_the_service_refuses_the_second_request(platform, tenant_a, key_headers):
    assert platform.client.get("/auth/me", headers=key_headers).status_code == 200  # the key is now cached
    [key] = platform.client.get(f"/{tenant_a.slug}/admin/keys", headers=tenant_a.admin_headers).json()
    change(
        platform,
        lambda session, state: service.set_key_limits(
            session,
            uuid.UUID(tenant_a.id),
            uuid.UUID(key["id"]),
            {"requests_per_minute": 1},
            caches=state.admin_caches,
        ),
    )
    assert_error(chat(platform, key_headers), 503, "model_unavailable")  # admitted, as above
    assert_error(chat(platform, key_headers), 429, "rate_limit_exceeded")


def test_a_key_revoked_through_the_service_stops_at_once(platform, tenant_a, key_headers):
    assert platform.client.get("/auth/me", headers=key_headers).status_code == 200  # the key is now cached
    [key] = platform.client.get(f"/{tenant_a.slug}/admin/keys", headers=tenant_a.admin_headers).json()
    change(
        platform,
        lambda session, state: service.revoke_api_key(
            session, uuid.UUID(tenant_a.id), uuid.UUID(key["id"]), caches=state.admin_caches
        ),
    )
    assert_error(platform.client.get("/auth/me", headers=key_headers), 401, "api_key_revoked")
    assert_error(chat(platform, key_headers), 401, "api_key_revoked")


def test_a_tenant_suspended_through_the_service_stops_its_keys_at_once(platform, tenant_a, key_headers):
    assert platform.client.get("/auth/me", headers=key_headers).status_code == 200  # the key is now cached

    async def suspend(session: AsyncSession, state: PlatformState) -> None:
        tenant = await service.get_tenant(session, tenant_a.slug)
        await service.update_tenant(session, tenant, status=TenantStatus.suspended, caches=state.admin_caches)

    change(platform, suspend)
    assert_error(platform.client.get("/auth/me", headers=key_headers), 403, "tenant_suspended")


def test_settings_changed_through_the_service_are_read_by_the_next_request(platform, tenant_a, key_headers):
    # The settings only show in a generation (cached answers, audit text); the tenant policy is what the
    # request path reads them from, so the test reads it as a request would, right after the change.
    state: PlatformState = platform.client.app.state.platform
    tenant_id = uuid.UUID(tenant_a.id)
    assert platform.client.portal.call(state.policies.get, tenant_id).cache.enabled
    change(
        platform,
        lambda session, state: service.update_settings(
            session, tenant_id, {"cache_enabled": False}, caches=state.admin_caches
        ),
    )
    assert not platform.client.portal.call(state.policies.get, tenant_id).cache.enabled


def test_models_registered_or_disabled_through_the_service_are_listed_so_at_once(platform, key_headers):
    assert MODEL in listed_models(platform, key_headers)  # the catalogue is now cached
    added = f"admin-changes-{uuid.uuid4().hex[:8]}"
    values = {"name": added, "kind": "chat", "backend": "hf", "source": "/nonexistent", "context_length": 512}
    change(
        platform,
        lambda session, state: catalogue_service.register_model(session, values, catalogue=state.catalogue),
    )
    assert added in listed_models(platform, key_headers)
    change(
        platform,
        lambda session, state: catalogue_service.update_model(
            session, MODEL, {"enabled": False}, catalogue=state.catalogue
        ),
    )
    assert MODEL not in listed_models(platform, key_headers)
    assert_error(chat(platform, key_headers), 404, "model_not_found")
