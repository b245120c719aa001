"""Tenant limits: stored and managed here (enforced by the limiter issue)."""

from __future__ import annotations

from tests.conftest import assert_error

LIMITS = {
    "requests_per_minute": 60,
    "tokens_per_minute": 10_000,
    "concurrent_requests": 4,
    "monthly_token_quota": 5_000_000_000,
    "allowed_models": ["smollm2-135m"],
}


def test_new_tenant_is_unlimited(platform, tenant_a):
    limits = platform.client.get(f"/{tenant_a.slug}/admin/limits", headers=tenant_a.admin_headers).json()
    assert {k: limits[k] for k in LIMITS} == dict.fromkeys(LIMITS)


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
