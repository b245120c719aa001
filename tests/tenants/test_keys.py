"""API keys: shown once, listed without secrets, revoked and expired at once, scoped to their tenant."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import text

from tests.responses import assert_error, bearer


def test_create_shows_the_key_once_and_it_authenticates(platform, tenant_a):
    created = platform.create_key(tenant_a)
    assert created["key"].startswith("sk-") and created["prefix"] in created["key"]
    assert created["scopes"] == ["inference"]

    for headers in (bearer(created["key"]), {"X-API-Key": created["key"]}):
        me = platform.client.get("/auth/me", headers=headers)
        assert me.status_code == 200
        assert me.json()["kind"] == "api_key" and me.json()["tenant"] == tenant_a.slug
        assert me.json()["api_key_prefix"] == created["prefix"]

    listing = platform.client.get(f"/{tenant_a.slug}/admin/keys", headers=tenant_a.admin_headers).json()
    assert [k["id"] for k in listing] == [created["id"]]
    assert "key" not in listing[0] and created["key"] not in str(listing)
    assert listing[0]["last_used_at"] is not None


def test_only_a_hash_of_the_key_is_stored(platform, tenant_a, db_engine):
    created = platform.create_key(tenant_a)
    with db_engine.connect() as connection:
        row = connection.execute(text("SELECT * FROM api_keys")).mappings().one()
    assert created["key"] not in str(dict(row))
    assert len(row["secret_hash"]) == 64


def test_revoked_key_is_rejected_on_the_next_request(platform, tenant_a):
    created = platform.create_key(tenant_a)
    assert platform.client.get("/auth/me", headers=bearer(created["key"])).status_code == 200
    revoked = platform.client.delete(
        f"/{tenant_a.slug}/admin/keys/{created['id']}", headers=tenant_a.admin_headers
    )
    assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
    assert_error(platform.client.get("/auth/me", headers=bearer(created["key"])), 401, "api_key_revoked")


def test_expired_key_is_rejected(platform, tenant_a):
    expires = datetime.now(UTC) + timedelta(seconds=1.5)
    created = platform.create_key(tenant_a, expires_at=expires.isoformat())
    assert platform.client.get("/auth/me", headers=bearer(created["key"])).status_code == 200
    time.sleep(max(0.0, (expires - datetime.now(UTC)).total_seconds()) + 0.05)
    # Its expiry is checked on every request, also while the key's authentication is cached.
    assert_error(platform.client.get("/auth/me", headers=bearer(created["key"])), 401, "api_key_expired")


def test_a_revocation_by_another_replica_holds_within_a_second(platform, tenant_a, db_engine):
    created = platform.create_key(tenant_a)
    assert platform.client.get("/auth/me", headers=bearer(created["key"])).status_code == 200
    with db_engine.begin() as connection:  # as another API process would
        connection.execute(
            text("UPDATE api_keys SET revoked_at = now() WHERE id = :id"), {"id": created["id"]}
        )
    revoked_at = time.monotonic()
    while (response := platform.client.get("/auth/me", headers=bearer(created["key"]))).status_code == 200:
        assert time.monotonic() - revoked_at < 1.5, "the revocation did not hold within a second"
        time.sleep(0.05)
    assert_error(response, 401, "api_key_revoked")


def test_expiry_in_the_past_is_refused(platform, tenant_a):
    response = platform.client.post(
        f"/{tenant_a.slug}/admin/keys",
        json={"name": "old", "expires_at": "2000-01-01T00:00:00Z"},
        headers=tenant_a.admin_headers,
    )
    assert assert_error(response, 400, "invalid_expiry")["param"] == "expires_at"


def test_tampered_or_unknown_keys_are_rejected(platform, tenant_a):
    created = platform.create_key(tenant_a)
    tampered = created["key"][:-2] + ("AA" if not created["key"].endswith("AA") else "BB")
    for bad in (tampered, "sk-doesnotexist_abc", "sk-", created["key"] + "x"):
        assert_error(platform.client.get("/auth/me", headers=bearer(bad)), 401)


def test_inference_key_cannot_use_the_admin_api_but_an_admin_key_can(platform, tenant_a):
    inference = platform.create_key(tenant_a)
    admin = platform.create_key(tenant_a, scopes=["admin", "inference"])
    assert_error(platform.client.get(f"/{tenant_a.slug}/admin/keys", headers=bearer(inference["key"])), 403)
    assert (
        platform.client.get(f"/{tenant_a.slug}/admin/keys", headers=bearer(admin["key"])).status_code == 200
    )


def test_keys_of_another_tenant_are_invisible(platform, tenant_a, tenant_b):
    key_b = platform.create_key(tenant_b)
    key_a = platform.create_key(tenant_a, scopes=["admin"])
    for headers in (tenant_a.admin_headers, bearer(key_a["key"])):
        assert_error(platform.client.get(f"/{tenant_b.slug}/admin/keys", headers=headers), 404, "not_found")
        assert_error(
            platform.client.delete(f"/{tenant_b.slug}/admin/keys/{key_b['id']}", headers=headers),
            404,
            "not_found",
        )
        # Through its own tenant's path, another tenant's key id is just as unknown.
        assert_error(
            platform.client.delete(f"/{tenant_a.slug}/admin/keys/{key_b['id']}", headers=headers),
            404,
            "api_key_not_found",
        )
    # An unknown tenant and a foreign one look the same: no enumeration.
    unknown = platform.client.get("/no-such-tenant/admin/keys", headers=tenant_a.admin_headers)
    assert (
        unknown.json()
        == platform.client.get(f"/{tenant_b.slug}/admin/keys", headers=tenant_a.admin_headers).json()
    )
    assert platform.client.get("/auth/me", headers=bearer(key_b["key"])).status_code == 200


def test_a_misspelt_key_field_is_refused_not_ignored(platform, tenant_a):
    response = platform.client.post(
        f"/{tenant_a.slug}/admin/keys",
        json={"name": "ops", "scope": ["admin"]},
        headers=tenant_a.admin_headers,
    )
    error = assert_error(response, 422)
    assert error["param"] == "scope" and "scope" in error["message"]
    assert platform.client.get(f"/{tenant_a.slug}/admin/keys", headers=tenant_a.admin_headers).json() == []
