"""Platform admin's tenant API, suspension, and the tenant boundary for users."""

from __future__ import annotations

import json

from sqlalchemy import text

from tenants.schemas import RESERVED_SLUGS
from tests.responses import assert_error, assert_status, bearer


def test_platform_admin_creates_lists_and_renames_tenants(platform):
    created = platform.client.post(
        "/admin/tenants", json={"slug": "acme", "name": "Acme"}, headers=platform.admin_headers
    )
    assert created.status_code == 201 and created.json()["status"] == "active"
    listed = platform.client.get("/admin/tenants", headers=platform.admin_headers).json()
    assert [t["slug"] for t in listed] == ["acme"]
    renamed = assert_status(
        platform.client.patch(
            "/admin/tenants/acme", json={"name": "Acme Corp"}, headers=platform.admin_headers
        )
    )
    assert renamed.json()["name"] == "Acme Corp"


def test_duplicate_and_malformed_slugs_are_refused(platform):
    assert (
        platform.client.post(
            "/admin/tenants", json={"slug": "acme"}, headers=platform.admin_headers
        ).status_code
        == 201
    )
    assert_error(
        platform.client.post("/admin/tenants", json={"slug": "acme"}, headers=platform.admin_headers), 409
    )
    for slug in ("A", "-leading", "has space", "UPPER", "x" * 64, "a", "admin", "v1", "auth", "metrics"):
        error = assert_error(
            platform.client.post("/admin/tenants", json={"slug": slug}, headers=platform.admin_headers), 422
        )
        assert error["param"] == "slug"


def test_names_a_database_cannot_store_are_refused(platform, tenant_a):
    # A NUL (Postgres text cannot hold it) or a lone surrogate (no UTF-8 for it): a 422 naming the
    # field, not a 500 from the database. Every admin body shares the check; three of them here.
    for method, url, body, param in (
        ("post", "/admin/tenants", {"slug": "nul-name", "name": "a\x00b"}, "name"),
        ("patch", f"/admin/tenants/{tenant_a.slug}", {"name": "a\ud800b"}, "name"),
        ("post", f"/{tenant_a.slug}/admin/keys", {"name": "key\x00"}, "name"),
    ):
        # json.dumps escapes the surrogate (`\\ud800`), as a client's JSON encoder would.
        headers = platform.admin_headers | {"Content-Type": "application/json"}
        response = getattr(platform.client, method)(url, content=json.dumps(body), headers=headers)
        assert assert_error(response, 422)["param"] == param, response.text
    tenants = platform.client.get("/admin/tenants", headers=platform.admin_headers).json()
    assert [t["slug"] for t in tenants] == [tenant_a.slug]


def test_tenant_users_and_keys_cannot_manage_tenants(platform, tenant_a):
    key = platform.create_key(tenant_a, scopes=["admin"])
    for headers in (tenant_a.admin_headers, bearer(key["key"])):
        assert_error(platform.client.get("/admin/tenants", headers=headers), 403)
        assert_error(platform.client.post("/admin/tenants", json={"slug": "evil"}, headers=headers), 403)


def test_suspended_tenant_is_locked_out_at_once(platform, tenant_a, tenant_b):
    key = platform.create_key(tenant_a)
    tokens = platform.login(tenant_a.admin_email, tenant=tenant_a.slug)
    suspended = assert_status(
        platform.client.patch(
            f"/admin/tenants/{tenant_a.slug}", json={"status": "suspended"}, headers=platform.admin_headers
        )
    )
    assert suspended.json()["status"] == "suspended"

    assert_error(platform.client.get("/auth/me", headers=bearer(key["key"])), 403, "tenant_suspended")
    assert_error(platform.client.get("/auth/me", headers=tenant_a.admin_headers), 403, "tenant_suspended")
    assert_error(platform.client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]}), 403)
    login = platform.client.post(
        "/auth/token",
        data={
            "username": tenant_a.admin_email,
            "password": "correct horse battery staple",
            "tenant": tenant_a.slug,
        },
    )
    assert_error(login, 403, "tenant_suspended")
    # Other tenants are untouched; reactivation restores access.
    assert platform.client.get("/auth/me", headers=tenant_b.admin_headers).status_code == 200
    assert_status(
        platform.client.patch(
            f"/admin/tenants/{tenant_a.slug}", json={"status": "active"}, headers=platform.admin_headers
        )
    )
    assert platform.client.get("/auth/me", headers=bearer(key["key"])).status_code == 200


def test_platform_admin_may_act_on_any_tenant(platform, tenant_a):
    users = platform.client.get(f"/{tenant_a.slug}/admin/users", headers=platform.admin_headers)
    assert users.status_code == 200 and [u["email"] for u in users.json()] == [tenant_a.admin_email]
    assert_error(platform.client.get("/no-such-tenant/admin/users", headers=platform.admin_headers), 404)


def test_a_tenant_update_refuses_nulls_and_unknown_fields_by_name(platform, tenant_a, db_engine):
    url = f"/admin/tenants/{tenant_a.slug}"
    for body, param in (
        ({"name": None}, "name"),
        ({"status": None}, "status"),
        ({"name": "Alpha", "state": "suspended"}, "state"),
    ):
        error = assert_error(platform.client.patch(url, json=body, headers=platform.admin_headers), 422)
        assert error["param"] == param and param in error["message"]
    with db_engine.connect() as connection:
        row = connection.execute(text("SELECT name, status FROM tenants WHERE slug = 'alpha'")).one()
    assert tuple(row) == ("alpha", "active")
    created = platform.client.post(
        "/admin/tenants", json={"slug": "acme", "limits": {}}, headers=platform.admin_headers
    )
    assert assert_error(created, 422)["param"] == "limits"


def test_every_path_the_platform_routes_is_a_reserved_slug(platform):
    """A tenant named like one of the platform's own first path segments could not be reached at
    `/{tenant}/...`. Those in the API's schema, and those it serves outside it, are all reserved."""
    documented = {path.split("/")[1] for path in platform.client.app.openapi()["paths"]} - {"{tenant}"}
    undocumented = {"internal", "docs", "redoc", "openapi.json", "console", "metrics"}
    assert documented | undocumented <= RESERVED_SLUGS
    for segment in undocumented - {"internal"}:  # each really served (internal: worker registry only)
        assert platform.client.get(f"/{segment}").status_code != 404, segment
