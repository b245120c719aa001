"""Tenant and API key limits: how they are stored and managed (their enforcement: tests/llm_platform)."""

from __future__ import annotations

from tests.responses import assert_error, assert_status

LIMITS = {
    "requests_per_minute": 60,
    "tokens_per_minute": 10_000,
    "concurrent_requests": 4,
    "monthly_token_quota": 5_000_000_000,
    "daily_token_quota": None,
    "fail_mode": "open",
    "allowed_models": ["smollm2-135m"],
}
KEY_LIMITS = ("requests_per_minute", "tokens_per_minute", "concurrent_requests", "monthly_token_quota")
KEY_LIMITS += ("daily_token_quota",)


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
    # PUT replaces the whole set: a null lifts a limit, or the allowed-models list.
    unlimited = LIMITS | {"requests_per_minute": 5, "tokens_per_minute": None, "allowed_models": None}
    assert_status(
        platform.client.put(f"/{tenant_a.slug}/admin/limits", json=unlimited, headers=platform.admin_headers)
    )
    read = platform.client.get(f"/{tenant_a.slug}/admin/limits", headers=tenant_a.admin_headers).json()
    assert {k: read[k] for k in LIMITS} == unlimited


def test_tenant_admin_cannot_raise_their_own_limits(platform, tenant_a):
    assert_error(
        platform.client.put(f"/{tenant_a.slug}/admin/limits", json=LIMITS, headers=tenant_a.admin_headers),
        403,
    )


def test_negative_limits_are_refused(platform, tenant_a):
    url = f"/{tenant_a.slug}/admin/limits"
    for method, body in (("put", LIMITS | {"tokens_per_minute": -1}), ("patch", {"tokens_per_minute": -1})):
        response = getattr(platform.client, method)(url, json=body, headers=platform.admin_headers)
        assert assert_error(response, 422)["param"] == "tokens_per_minute"


def test_limits_past_what_is_stored_are_refused(platform, tenant_a):
    # A rate is a 32-bit column and a quota is counted exactly by Redis up to 2**53: beyond, a 422 naming
    # the field, not a 500 from the database.
    url = f"/{tenant_a.slug}/admin/limits"
    for field, value in (("concurrent_requests", 2**31), ("monthly_token_quota", 2**53 + 1)):
        response = platform.client.patch(url, json={field: value}, headers=platform.admin_headers)
        assert assert_error(response, 422)["param"] == field
    key = platform.create_key(tenant_a)
    response = platform.client.patch(
        f"/{tenant_a.slug}/admin/keys/{key['id']}/limits",
        json={"requests_per_minute": 2**31},
        headers=tenant_a.admin_headers,
    )
    assert assert_error(response, 422)["param"] == "requests_per_minute"
    read = platform.client.get(url, headers=tenant_a.admin_headers).json()
    assert read["concurrent_requests"] == platform.settings.tenant_concurrent_requests


def test_limits_of_another_tenant_are_invisible(platform, tenant_a, tenant_b):
    assert_error(platform.client.get(f"/{tenant_b.slug}/admin/limits", headers=tenant_a.admin_headers), 404)


def test_key_limits_are_set_on_creation_and_replaced_later(platform, tenant_a):
    platform.set_limits(tenant_a, requests_per_minute=100, monthly_token_quota=1000)
    key = platform.create_key(tenant_a, requests_per_minute=10, daily_token_quota=500)
    assert key["requests_per_minute"] == 10 and key["daily_token_quota"] == 500
    replaced = platform.client.put(
        f"/{tenant_a.slug}/admin/keys/{key['id']}/limits",
        json=dict.fromkeys(KEY_LIMITS) | {"monthly_token_quota": 900},
        headers=tenant_a.admin_headers,
    )
    assert replaced.status_code == 200, replaced.text
    listed = platform.client.get(f"/{tenant_a.slug}/admin/keys", headers=tenant_a.admin_headers).json()
    [row] = [row for row in listed if row["id"] == key["id"]]
    assert row["monthly_token_quota"] == 900 and row["requests_per_minute"] is None


def test_a_key_limit_above_the_tenant_limit_is_refused(platform, tenant_a):
    platform.set_limits(tenant_a, tokens_per_minute=1000)
    response = platform.client.post(
        f"/{tenant_a.slug}/admin/keys",
        json={"name": "greedy", "tokens_per_minute": 5000},
        headers=tenant_a.admin_headers,
    )
    assert assert_error(response, 400, "limit_above_tenant")["param"] == "tokens_per_minute"
    key = platform.create_key(tenant_a)
    response = platform.client.patch(
        f"/{tenant_a.slug}/admin/keys/{key['id']}/limits",
        json={"tokens_per_minute": 1001},
        headers=tenant_a.admin_headers,
    )
    assert_error(response, 400, "limit_above_tenant")


def test_another_tenants_key_limits_cannot_be_set(platform, tenant_a, tenant_b):
    key = platform.create_key(tenant_b)
    response = platform.client.patch(
        f"/{tenant_a.slug}/admin/keys/{key['id']}/limits",
        json={"requests_per_minute": 1},
        headers=tenant_a.admin_headers,
    )
    assert_error(response, 404, "api_key_not_found")
    response = platform.client.patch(
        f"/{tenant_b.slug}/admin/keys/{key['id']}/limits",
        json={"requests_per_minute": 1},
        headers=tenant_a.admin_headers,
    )
    assert_error(response, 404)


def test_a_put_of_limits_must_name_every_field_and_changes_nothing_otherwise(platform, tenant_a):
    url = f"/{tenant_a.slug}/admin/limits"
    before = platform.client.get(url, headers=tenant_a.admin_headers).json()
    response = platform.client.put(url, json={"requests_per_minute": 5}, headers=platform.admin_headers)
    error = assert_error(response, 422)
    assert error["param"] == "tokens_per_minute"
    for missing in ("tokens_per_minute", "concurrent_requests", "fail_mode", "allowed_models"):
        assert missing in error["message"]
    assert "PATCH" in error["message"]
    assert platform.client.get(url, headers=tenant_a.admin_headers).json() == before
    # Null is "unlimited" for a limit and "every model" for allowed_models, but fail_mode has no null.
    full = dict.fromkeys(("tokens_per_minute", "concurrent_requests", "monthly_token_quota"), None)
    full |= {"requests_per_minute": 5, "daily_token_quota": None, "fail_mode": None, "allowed_models": None}
    error = assert_error(platform.client.put(url, json=full, headers=platform.admin_headers), 422)
    assert error["param"] == "fail_mode" and "null" in error["message"]
    put = platform.client.put(url, json=full | {"fail_mode": "closed"}, headers=platform.admin_headers)
    assert put.status_code == 200 and put.json()["tokens_per_minute"] is None


def test_a_patch_of_limits_changes_only_what_it_names(platform, tenant_a):
    url = f"/{tenant_a.slug}/admin/limits"
    stored = LIMITS | {"daily_token_quota": 900, "fail_mode": "closed"}
    assert_status(platform.client.put(url, json=stored, headers=platform.admin_headers))
    patched = platform.client.patch(url, json={"requests_per_minute": 5}, headers=platform.admin_headers)
    assert patched.status_code == 200, patched.text
    read = platform.client.get(url, headers=tenant_a.admin_headers).json()
    assert {k: read[k] for k in LIMITS} == stored | {"requests_per_minute": 5}
    # An explicit null lifts a limit (and allows every model); fail_mode cannot be null.
    lifted = assert_status(
        platform.client.patch(
            url, json={"tokens_per_minute": None, "allowed_models": None}, headers=platform.admin_headers
        )
    )
    assert lifted.json()["tokens_per_minute"] is None and lifted.json()["allowed_models"] is None
    assert lifted.json()["concurrent_requests"] == LIMITS["concurrent_requests"]
    for body, param in (
        ({"fail_mode": None}, "fail_mode"),
        ({"requests_per_minut": 1}, "requests_per_minut"),
    ):
        response = platform.client.patch(url, json=body, headers=platform.admin_headers)
        assert assert_error(response, 422)["param"] == param
    assert_error(
        platform.client.patch(url, json={"requests_per_minute": 1}, headers=tenant_a.admin_headers), 403
    )


def test_key_limits_put_needs_every_field_and_patch_changes_one(platform, tenant_a):
    key = platform.create_key(tenant_a, requests_per_minute=10, daily_token_quota=500)
    url = f"/{tenant_a.slug}/admin/keys/{key['id']}/limits"
    error = assert_error(
        platform.client.put(url, json={"monthly_token_quota": 900}, headers=tenant_a.admin_headers), 422
    )
    assert error["param"] == "requests_per_minute" and "daily_token_quota" in error["message"]
    patched = platform.client.patch(url, json={"monthly_token_quota": 900}, headers=tenant_a.admin_headers)
    assert patched.status_code == 200, patched.text
    assert (patched.json()["monthly_token_quota"], patched.json()["requests_per_minute"]) == (900, 10)
    assert patched.json()["daily_token_quota"] == 500
    lifted = assert_status(
        platform.client.patch(url, json={"daily_token_quota": None}, headers=tenant_a.admin_headers)
    )
    assert lifted.json()["daily_token_quota"] is None and lifted.json()["requests_per_minute"] == 10
    unknown = platform.client.patch(url, json={"rpm": 1}, headers=tenant_a.admin_headers)
    assert assert_error(unknown, 422)["param"] == "rpm"
