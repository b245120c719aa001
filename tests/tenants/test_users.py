"""Tenant admins manage their users; members cannot; nobody sees another tenant's users."""

from __future__ import annotations

import asyncio
import uuid

from llm_platform.core.db import create_engine_for, create_session_factory
from llm_platform.core.errors import Conflict
from tenants import service
from tenants.models import UserRole
from tests.conftest import PASSWORD
from tests.responses import assert_error, assert_status, bearer


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
    disabled = assert_status(
        platform.client.patch(
            f"/{tenant_a.slug}/admin/users/{user['id']}",
            json={"disabled": True},
            headers=tenant_a.admin_headers,
        )
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
    listing = assert_status(
        platform.client.get(f"/{tenant.slug}/admin/users", headers=platform.admin_headers)
    )
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


def test_the_last_tenant_admin_cannot_be_demoted_or_disabled(platform, tenant_a):
    first = _users(platform, tenant_a)[tenant_a.admin_email]
    first_url = f"/{tenant_a.slug}/admin/users/{first['id']}"
    for headers in (tenant_a.admin_headers, platform.admin_headers):
        for body in ({"role": "member"}, {"disabled": True}, {"role": "member", "disabled": True}):
            error = assert_error(
                platform.client.patch(first_url, json=body, headers=headers), 409, "last_tenant_admin"
            )
            # A change of role is named as such, even when the same body also disables the admin.
            assert "last" in error["message"]
            assert error["param"] == ("role" if "role" in body else "disabled")
    assert _users(platform, tenant_a)[tenant_a.admin_email] == first
    assert (
        platform.client.get(f"/{tenant_a.slug}/admin/users", headers=tenant_a.admin_headers).status_code
        == 200
    )

    # With a second admin the first may step down; then the second is the last one.
    second = platform.create_user(tenant_a.slug, "second@example.com", role="tenant_admin")
    second_url = f"/{tenant_a.slug}/admin/users/{second['id']}"
    assert (
        platform.client.patch(first_url, json={"role": "member"}, headers=tenant_a.admin_headers).status_code
        == 200
    )
    assert_error(
        platform.client.patch(second_url, json={"disabled": True}, headers=platform.admin_headers), 409
    )
    # A disabled admin administers nothing, so it does not count.
    third = platform.create_user(tenant_a.slug, "third@example.com", role="tenant_admin")
    third_url = f"/{tenant_a.slug}/admin/users/{third['id']}"
    assert (
        platform.client.patch(third_url, json={"disabled": True}, headers=platform.admin_headers).status_code
        == 200
    )
    assert_error(
        platform.client.patch(second_url, json={"role": "member"}, headers=platform.admin_headers), 409
    )
    # Changes that keep an admin are untouched by the rule.
    assert (
        platform.client.patch(
            second_url, json={"role": "tenant_admin"}, headers=platform.admin_headers
        ).status_code
        == 200
    )
    assert (
        platform.client.patch(third_url, json={"disabled": False}, headers=platform.admin_headers).status_code
        == 200
    )
    assert (
        platform.client.patch(second_url, json={"role": "member"}, headers=platform.admin_headers).status_code
        == 200
    )


def test_two_admins_demoting_each_other_at_once_leave_one_admin(platform, tenant_a, settings):
    """Each sees the other still an admin unless the check and the change are serialised per tenant."""
    second = platform.create_user(tenant_a.slug, "second@example.com", role="tenant_admin")
    first = _users(platform, tenant_a)[tenant_a.admin_email]

    async def demote_both() -> list[str]:
        engine = create_engine_for(settings)
        sessions = create_session_factory(engine)

        async def demote(user_id: str) -> str:
            async with sessions() as session:
                try:
                    await service.update_user(
                        session, uuid.UUID(tenant_a.id), uuid.UUID(user_id), role=UserRole.member
                    )
                except Conflict:
                    return "refused"
                return "demoted"

        try:
            return await asyncio.gather(demote(first["id"]), demote(second["id"]))
        finally:
            await engine.dispose()

    for _ in range(3):  # the race is timing-dependent: give it more than one chance to show
        assert sorted(asyncio.run(demote_both())) == ["demoted", "refused"]
        admins = [u for u in _users(platform, tenant_a).values() if u["role"] == "tenant_admin"]
        assert len(admins) == 1
        for user in (first, second):
            assert_status(
                platform.client.patch(
                    f"/{tenant_a.slug}/admin/users/{user['id']}",
                    json={"role": "tenant_admin"},
                    headers=platform.admin_headers,
                )
            )
