"""Tenant and API key limits: how they are stored and managed (their enforcement: tests/llm_platform)."""

from __future__ import annotations

from tests.conftest import assert_error

LIMITS = {
    "requests_per_minute": 60,
    "tokens_per_minute": 10_000,
    "concurrent_requests": 4,
    "monthly_token_quota": 5_000_000_000,
    "allowed_models": ["smollm2-135m"],
}


def test_new_tenant_gets_the_platform_defaults(platform, tenant_a):
    limits = platform.client.get(f"/{tenant_a.slug}/admin/limits", headers=tenant_a.admin_headers).json()
    settings = platform.settings
    assert limits["requests_per_minute"] == settings.tenant_requests_per_minute
    assert limits["tokens_per_minute"] == settings.tenant_tokens_per_minute
    assert limits["concurrent_requests"] == settings.tenant_concurrent_requests
    assert limits["monthly_token_quota"] is None and limits["daily_token_quota"] is None
    assert limits["fail_mode"] == "open" and limits["allowed_models"] is None


def test_platform_admin_sets_limits_and_the_tenant_admin_reads_them(platform, tenant_a):
    put = platform.client.put(f"/{tenant_a.slug}/admin/limits", json=LIMITS, headers=platform.admin_headers)
    assert put.status_code == 200
    read = platform.client.get(f"/{tenant_a.slug}/admin/limits", headers=tenant_a.admin_headers).json()
    assert {k: read[k] for k in LIMITS} == LIMITS
    # PUT replaces the whole set: what is omitted becomes unlimited again.
    platform.client.put(
        f"/{tenant_a.slug}/admin/limits", json={"requests_per_minute": 5}, headers=platform.admin_headers
    )
    read = platform.client.get(f"/{tenant_a.slug}/admin/limits", headers=tenant_a.admin_headers).json()
    assert read["requests_per_minute"] == 5 and read["allowed_models"] is None


def test_tenant_admin_cannot_raise_their_own_limits(platform, tenant_a):
    assert_error(
        platform.client.put(f"/{tenant_a.slug}/admin/limits", json=LIMITS, headers=tenant_a.admin_headers),
        403,
    )


def test_negative_limits_are_refused(platform, tenant_a):
    response = platform.client.put(
        f"/{tenant_a.slug}/admin/limits", json={"tokens_per_minute": -1}, headers=platform.admin_headers
    )
    assert assert_error(response, 422)["param"] == "tokens_per_minute"


def test_limits_of_another_tenant_are_invisible(platform, tenant_a, tenant_b):
    assert_error(platform.client.get(f"/{tenant_b.slug}/admin/limits", headers=tenant_a.admin_headers), 404)


def test_key_limits_are_set_on_creation_and_replaced_later(platform, tenant_a):
    platform.client.put(
        f"/{tenant_a.slug}/admin/limits",
        json={"requests_per_minute": 100, "monthly_token_quota": 1000},
        headers=platform.admin_headers,
    )
    key = platform.create_key(tenant_a, requests_per_minute=10, daily_token_quota=500)
    assert key["requests_per_minute"] == 10 and key["daily_token_quota"] == 500
    replaced = platform.client.put(
        f"/{tenant_a.slug}/admin/keys/{key['id']}/limits",
        json={"monthly_token_quota": 900},
        headers=tenant_a.admin_headers,
    )
    assert replaced.status_code == 200, replaced.text
    listed = platform.client.get(f"/{tenant_a.slug}/admin/keys", headers=tenant_a.admin_headers).json()
    [row] = [row for row in listed if row["id"] == key["id"]]
    assert row["monthly_token_quota"] == 900 and row["requests_per_minute"] is None


def test_a_key_limit_above_the_tenant_limit_is_refused(platform, tenant_a):
    platform.client.put(
        f"/{tenant_a.slug}/admin/limits", json={"tokens_per_minute": 1000}, headers=platform.admin_headers
    )
    response = platform.client.post(
        f"/{tenant_a.slug}/admin/keys",
        json={"name": "greedy", "tokens_per_minute": 5000},
        headers=tenant_a.admin_headers,
    )
    assert assert_error(response, 400, "limit_above_tenant")["param"] == "tokens_per_minute"
    key = platform.create_key(tenant_a)
    response = platform.client.put(
        f"/{tenant_a.slug}/admin/keys/{key['id']}/limits",
        json={"tokens_per_minute": 1001},
        headers=tenant_a.admin_headers,
    )
    assert_error(response, 400, "limit_above_tenant")


def test_another_tenants_key_limits_cannot_be_set(platform, tenant_a, tenant_b):
    key = platform.create_key(tenant_b)
    response = platform.client.put(
        f"/{tenant_a.slug}/admin/keys/{key['id']}/limits",
        json={"requests_per_minute": 1},
        headers=tenant_a.admin_headers,
    )
    assert_error(response, 404, "api_key_not_found")
    response = platform.client.put(
        f"/{tenant_b.slug}/admin/keys/{key['id']}/limits",
        json={"requests_per_minute": 1},
        headers=tenant_a.admin_headers,
    )
    assert_error(response, 404)
