"""Usage is recorded per tenant, principal, model and day, and reported to those allowed to see it."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import text

from llm_platform.core.db import create_engine_for, create_session_factory
from tenants.usage import UsageRecord, record_usage
from tests.conftest import QUESTION, TINY_MODEL
from tests.responses import assert_error, assert_status, bearer, sse_chunks


def _chat(client, headers, max_tokens=6, **extra):  # type: ignore[no-untyped-def]
    body = {"model": TINY_MODEL, "messages": QUESTION, "max_tokens": max_tokens, "temperature": 0, **extra}
    response = client.post("/v1/chat/completions", headers=headers, json=body)
    assert response.status_code == 200, response.text
    if extra.get("stream"):
        return sse_chunks(response)[-1]["usage"]
    return response.json()["usage"]


def test_usage_by_key_model_and_day(served, platform, tenant_a, tenant_b):
    key_a = platform.create_key(tenant_a)
    key_b = platform.create_key(tenant_b)
    spent = [_chat(platform.client, bearer(key_a["key"]), max_tokens=n) for n in (3, 5)]
    spent.append(
        _chat(
            platform.client,
            bearer(key_a["key"]),
            max_tokens=4,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    by_user = _chat(platform.client, tenant_a.admin_headers, max_tokens=2)
    _chat(platform.client, bearer(key_b["key"]), max_tokens=7)

    report = platform.client.get(f"/{tenant_a.slug}/admin/usage?group_by=key", headers=tenant_a.admin_headers)
    assert report.status_code == 200, report.text
    rows = {row["principal_kind"]: row for row in report.json()["rows"]}
    assert rows["api_key"]["principal_id"] == key_a["id"]
    assert rows["api_key"]["requests"] == 3
    assert rows["api_key"]["prompt_tokens"] == sum(u["prompt_tokens"] for u in spent)
    assert rows["api_key"]["completion_tokens"] == sum(u["completion_tokens"] for u in spent)
    assert rows["user"]["requests"] == 1 and rows["user"]["completion_tokens"] == by_user["completion_tokens"]
    totals = report.json()["totals"]
    assert totals["requests"] == 4
    assert totals["total_tokens"] == sum(u["total_tokens"] for u in [*spent, by_user])

    by_model = assert_status(
        platform.client.get(f"/{tenant_a.slug}/admin/usage?group_by=model", headers=tenant_a.admin_headers)
    )
    assert [r["model"] for r in by_model.json()["rows"]] == [TINY_MODEL]
    by_day = assert_status(
        platform.client.get(f"/{tenant_a.slug}/admin/usage", headers=tenant_a.admin_headers)
    ).json()
    assert by_day["rows"][0]["day"] == datetime.now(UTC).date().isoformat()
    assert by_day["from"] == datetime.now(UTC).date().replace(day=1).isoformat()

    own = platform.client.get(f"/{tenant_a.slug}/usage", headers=bearer(key_a["key"])).json()
    assert own["totals"]["requests"] == 3  # the key's own usage, not the admin user's

    everyone = platform.client.get("/admin/usage", headers=platform.admin_headers).json()
    assert {r["tenant"]: r["requests"] for r in everyone["rows"]} == {tenant_a.slug: 4, tenant_b.slug: 1}


def test_usage_reports_are_scoped(served, platform, tenant_a, tenant_b):
    key_a = platform.create_key(tenant_a)
    assert_error(platform.client.get(f"/{tenant_b.slug}/admin/usage", headers=tenant_a.admin_headers), 404)
    assert_error(platform.client.get(f"/{tenant_b.slug}/usage", headers=bearer(key_a["key"])), 404)
    assert_error(platform.client.get("/admin/usage", headers=tenant_a.admin_headers), 403)
    assert_error(platform.client.get(f"/{tenant_a.slug}/admin/usage", headers=bearer(key_a["key"])), 403)


def test_bad_ranges_are_refused(platform, tenant_a):
    today = datetime.now(UTC).date()
    backwards = f"/{tenant_a.slug}/admin/usage?from={today}&to={today - timedelta(days=1)}"
    assert assert_error(platform.client.get(backwards, headers=tenant_a.admin_headers), 400)["param"] == "to"
    too_long = f"/{tenant_a.slug}/admin/usage?from={today - timedelta(days=400)}&to={today}"
    assert_error(platform.client.get(too_long, headers=tenant_a.admin_headers), 400)
    assert_error(
        platform.client.get(f"/{tenant_a.slug}/admin/usage?group_by=week", headers=tenant_a.admin_headers),
        422,
    )


def test_concurrent_increments_add_up(settings, tenant_a, db_engine):
    """Many replicas add to the same bucket at once: the upsert loses nothing."""
    principal = uuid.uuid4()

    async def hammer() -> None:
        engine = create_engine_for(settings)
        factory = create_session_factory(engine)

        async def one() -> None:
            async with factory() as session:
                await record_usage(
                    session, UsageRecord(uuid.UUID(tenant_a.id), "api_key", principal, "m", 10, 5)
                )

        await asyncio.gather(*(one() for _ in range(40)))
        await engine.dispose()

    asyncio.run(hammer())
    from sqlalchemy import create_engine

    from llm_platform.core.db import sync_database_url

    sync_engine = create_engine(sync_database_url(settings.resolved_database_url))
    with sync_engine.connect() as connection:
        row = connection.execute(
            text(
                "SELECT requests, prompt_tokens, completion_tokens FROM usage_daily WHERE principal_id = :p"
            ),
            {"p": principal},
        ).one()
    sync_engine.dispose()
    assert tuple(row) == (40, 400, 200)
