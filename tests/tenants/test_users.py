"""Tenant admins manage their users; members cannot; nobody sees another tenant's users."""

from __future__ import annotations

from tests.conftest import PASSWORD, assert_error, bearer


def test_tenant_admin_creates_and_lists_users(platform, tenant_a):
    created = platform.create_user(tenant_a.slug, "Member@Example.com", headers=tenant_a.admin_headers)
    assert created["email"] == "member@example.com" and created["role"] == "member"
    assert "password" not in str(created) and "hash" not in str(created)
    listing = platform.client.get(f"/{tenant_a.slug}/admin/users", headers=tenant_a.admin_headers).json()
    assert {u["email"] for u in listing} == {tenant_a.admin_email, "member@example.com"}
    duplicate = platform.client.post(
        f"/{tenant_a.slug}/admin/users",
        json={"email": "member@example.com", "password": PASSWORD},
        headers=tenant_a.admin_headers,
    )
    assert_error(duplicate, 409, "user_exists")


def test_bad_user_input_is_refused_with_the_field_named(platform, tenant_a):
    url = f"/{tenant_a.slug}/admin/users"
    weak = platform.client.post(
        url, json={"email": "a@example.com", "password": "short"}, headers=tenant_a.admin_headers
    )
    assert assert_error(weak, 400, "weak_password")["param"] == "password"
    bad_email = platform.client.post(
        url, json={"email": "nope", "password": PASSWORD}, headers=tenant_a.admin_headers
    )
    assert assert_error(bad_email, 422)["param"] == "email"
    escalate = platform.client.post(
        url,
        json={"email": "b@example.com", "password": PASSWORD, "role": "platform_admin"},
        headers=tenant_a.admin_headers,
    )
    assert assert_error(escalate, 400, "invalid_role")["param"] == "role"


def test_members_cannot_administer(platform, tenant_a):
    platform.create_user(tenant_a.slug, "member@example.com", headers=tenant_a.admin_headers)
    member = bearer(platform.login("member@example.com", tenant=tenant_a.slug)["access_token"])
    assert_error(platform.client.get(f"/{tenant_a.slug}/admin/users", headers=member), 403, "forbidden")
    assert_error(
        platform.client.post(f"/{tenant_a.slug}/admin/keys", json={"name": "k"}, headers=member), 403
    )


def test_disabling_a_user_locks_them_out_at_once(platform, tenant_a):
    user = platform.create_user(tenant_a.slug, "member@example.com", headers=tenant_a.admin_headers)
    tokens = platform.login("member@example.com", tenant=tenant_a.slug)
    disabled = platform.client.patch(
        f"/{tenant_a.slug}/admin/users/{user['id']}", json={"disabled": True}, headers=tenant_a.admin_headers
    )
    assert disabled.json()["disabled"] is True
    assert_error(platform.client.get("/auth/me", headers=bearer(tokens["access_token"])), 401)
    assert_error(platform.client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]}), 401)
    login = platform.client.post(
        "/auth/token", data={"username": "member@example.com", "password": PASSWORD, "tenant": tenant_a.slug}
    )
    assert_error(login, 401)


def test_password_reset_replaces_the_password_and_ends_sessions(platform, tenant_a):
    user = platform.create_user(tenant_a.slug, "member@example.com", headers=tenant_a.admin_headers)
    tokens = platform.login("member@example.com", tenant=tenant_a.slug)
    reset = platform.client.post(
        f"/{tenant_a.slug}/admin/users/{user['id']}/password",
        json={"password": "a brand new passphrase"},
        headers=tenant_a.admin_headers,
    )
    assert reset.status_code == 200
    assert_error(platform.client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]}), 401)
    assert platform.login("member@example.com", "a brand new passphrase", tenant=tenant_a.slug)[
        "access_token"
    ]


def test_users_of_another_tenant_are_invisible(platform, tenant_a, tenant_b):
    user_b = platform.create_user(tenant_b.slug, "member@example.com", headers=tenant_b.admin_headers)
    assert_error(
        platform.client.get(f"/{tenant_b.slug}/admin/users", headers=tenant_a.admin_headers), 404, "not_found"
    )
    patch = platform.client.patch(
        f"/{tenant_a.slug}/admin/users/{user_b['id']}",
        json={"disabled": True},
        headers=tenant_a.admin_headers,
    )
    assert_error(patch, 404, "user_not_found")
    reset = platform.client.post(
        f"/{tenant_a.slug}/admin/users/{user_b['id']}/password",
        json={"password": "a brand new passphrase"},
        headers=tenant_a.admin_headers,
    )
    assert_error(reset, 404, "user_not_found")
    assert platform.login("member@example.com", tenant=tenant_b.slug)["access_token"]


def _users(platform, tenant) -> dict[str, dict]:  # type: ignore[no-untyped-def]
    listing = platform.client.get(f"/{tenant.slug}/admin/users", headers=platform.admin_headers)
    return {user["email"]: user for user in listing.json()}


def test_a_user_update_refuses_nulls_and_unknown_fields_by_name(platform, tenant_a):
    user = platform.create_user(tenant_a.slug, "member@example.com", headers=tenant_a.admin_headers)
    url = f"/{tenant_a.slug}/admin/users/{user['id']}"
    for body, param in (
        ({"disabled": None}, "disabled"),
        ({"role": None}, "role"),
        ({"roles": "x"}, "roles"),
    ):
        error = assert_error(platform.client.patch(url, json=body, headers=tenant_a.admin_headers), 422)
        assert error["param"] == param and param in error["message"]
    after = _users(platform, tenant_a)["member@example.com"]
    assert after["role"] == "member" and after["disabled"] is False
    created = platform.client.post(
        f"/{tenant_a.slug}/admin/users",
        json={"email": "c@example.com", "password": PASSWORD, "rol": "tenant_admin"},
        headers=tenant_a.admin_headers,
    )
    assert assert_error(created, 422)["param"] == "rol"
    reset = platform.client.post(
        f"{url}/password", json={"password": PASSWORD, "notify": True}, headers=tenant_a.admin_headers
    )
    assert assert_error(reset, 422)["param"] == "notify"
