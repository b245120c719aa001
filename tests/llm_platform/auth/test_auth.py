"""Login, refresh rotation, logout, /auth/me and JWT forgeries, against real Postgres and Redis."""

from __future__ import annotations

import base64
import json
import time
import uuid

from jose import jwt
from sqlalchemy import text

from tests.conftest import PASSWORD
from tests.responses import assert_error, bearer


def _login(client, email, password=PASSWORD, tenant=None, address_headers=None):  # type: ignore[no-untyped-def]
    form = {"username": email, "password": password}
    if tenant:
        form["tenant"] = tenant
    return client.post("/auth/token", data=form, headers=address_headers or {})


def test_login_returns_tokens_that_identify_the_user(platform, tenant_a):
    response = _login(platform.client, tenant_a.admin_email, tenant=tenant_a.slug)
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == platform.settings.access_token_ttl_s
    claims = jwt.get_unverified_claims(body["access_token"])
    assert claims["tenant"] == tenant_a.slug and claims["role"] == "tenant_admin"
    assert {"sub", "exp", "iat", "jti"} <= set(claims)

    me = platform.client.get("/auth/me", headers=bearer(body["access_token"]))
    assert me.status_code == 200
    assert me.json() | {"id": None} == {
        "kind": "user",
        "id": None,
        "tenant": tenant_a.slug,
        "role": "tenant_admin",
        "email": tenant_a.admin_email,
        "scopes": None,
        "api_key_prefix": None,
    }


def test_failed_logins_do_not_reveal_whether_the_user_exists(platform, tenant_a):
    wrong_password = _login(platform.client, tenant_a.admin_email, "not the password", tenant_a.slug)
    unknown_user = _login(platform.client, "nobody@example.com", PASSWORD, tenant_a.slug)
    unknown_tenant = _login(platform.client, tenant_a.admin_email, PASSWORD, "no-such-tenant")
    errors = [
        assert_error(r, 401, "invalid_credentials") for r in (wrong_password, unknown_user, unknown_tenant)
    ]
    assert len({e["message"] for e in errors}) == 1
    assert all(r.headers["www-authenticate"].startswith("Bearer") for r in (wrong_password, unknown_user))


def test_the_same_email_in_another_tenant_is_another_account(platform, tenant_a, tenant_b):
    platform.create_user(tenant_b.slug, tenant_a.admin_email)
    token = _login(platform.client, tenant_a.admin_email, tenant=tenant_b.slug).json()["access_token"]
    me = platform.client.get("/auth/me", headers=bearer(token)).json()
    assert me["tenant"] == tenant_b.slug and me["role"] == "member"


def test_failed_logins_are_throttled_per_account(platform, tenant_a):
    limit = platform.settings.login_max_failures_per_account
    for _ in range(limit):
        assert _login(platform.client, tenant_a.admin_email, "wrong", tenant_a.slug).status_code == 401
    blocked = _login(platform.client, tenant_a.admin_email, PASSWORD, tenant_a.slug)
    assert_error(blocked, 429, "rate_limit_exceeded")
    assert int(blocked.headers["retry-after"]) >= 1
    # Another account from the same address is not locked out by this one's failures.
    platform.create_user(tenant_a.slug, "other@example.com")
    assert _login(platform.client, "other@example.com", tenant=tenant_a.slug).status_code == 200


def test_failed_logins_are_throttled_per_client_address(platform, tenant_a):
    per_address = platform.settings.login_max_failures_per_address
    for attempt in range(per_address):
        response = _login(platform.client, f"guess{attempt}@example.com", "wrong", tenant_a.slug)
        assert response.status_code == 401
    # Even a correct password is refused from an address that has been guessing.
    assert_error(
        _login(platform.client, tenant_a.admin_email, tenant=tenant_a.slug), 429, "rate_limit_exceeded"
    )


def test_refresh_rotates_and_an_old_refresh_token_is_rejected(platform, tenant_a):
    first = _login(platform.client, tenant_a.admin_email, tenant=tenant_a.slug).json()
    second = platform.client.post("/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert second.status_code == 200
    rotated = second.json()
    assert rotated["refresh_token"] != first["refresh_token"]
    assert platform.client.get("/auth/me", headers=bearer(rotated["access_token"])).status_code == 200

    replay = platform.client.post("/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert_error(replay, 401)
    # Replaying a spent token is treated as theft: the rotated token of that family dies too.
    stolen_family = platform.client.post("/auth/refresh", json={"refresh_token": rotated["refresh_token"]})
    assert_error(stolen_family, 401)


def test_logout_revokes_the_refresh_token(platform, tenant_a):
    tokens = _login(platform.client, tenant_a.admin_email, tenant=tenant_a.slug).json()
    assert (
        platform.client.post("/auth/logout", json={"refresh_token": tokens["refresh_token"]}).status_code
        == 204
    )
    again = platform.client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert_error(again, 401)


def test_expired_refresh_token_is_rejected(platform, tenant_a, db_engine):
    tokens = _login(platform.client, tenant_a.admin_email, tenant=tenant_a.slug).json()
    with db_engine.begin() as connection:
        connection.execute(text("UPDATE refresh_tokens SET expires_at = now() - interval '1 second'"))
    assert_error(platform.client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]}), 401)


def _segment(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _claims_for(platform, tenant) -> dict:  # type: ignore[no-untyped-def]
    token = _login(platform.client, tenant.admin_email, tenant=tenant.slug).json()["access_token"]
    return jwt.get_unverified_claims(token)


def test_unsigned_alg_none_token_is_rejected(platform, tenant_a):
    claims = _claims_for(platform, tenant_a)
    forged = f"{_segment({'alg': 'none', 'typ': 'JWT'})}.{_segment(claims)}."
    assert_error(platform.client.get("/auth/me", headers=bearer(forged)), 401, "invalid_credentials")


def test_token_signed_with_another_key_is_rejected(platform, tenant_a):
    claims = _claims_for(platform, tenant_a)
    forged = jwt.encode(claims, "some-other-secret-" + "y" * 40, algorithm="HS256")
    assert_error(platform.client.get("/auth/me", headers=bearer(forged)), 401)


def test_expired_token_is_rejected(platform, tenant_a):
    claims = _claims_for(platform, tenant_a)
    secret = platform.settings.resolved_jwt_secret
    expired = jwt.encode(claims | {"iat": int(time.time()) - 3600, "exp": int(time.time()) - 60}, secret)
    assert_error(platform.client.get("/auth/me", headers=bearer(expired)), 401)


def test_tampered_tenant_claim_is_rejected(platform, tenant_a, tenant_b):
    token = _login(platform.client, tenant_a.admin_email, tenant=tenant_a.slug).json()["access_token"]
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    tampered = f"{header}.{_segment(claims | {'tenant': tenant_b.slug})}.{signature}"
    assert_error(platform.client.get("/auth/me", headers=bearer(tampered)), 401)
    assert_error(platform.client.get(f"/{tenant_b.slug}/admin/users", headers=bearer(tampered)), 401)


def test_validly_signed_token_naming_another_tenant_is_rejected(platform, tenant_a, tenant_b):
    """Even with the signing key, a user cannot be moved into a tenant that is not theirs."""
    claims = _claims_for(platform, tenant_a)
    resigned = jwt.encode(claims | {"tenant": tenant_b.slug}, platform.settings.resolved_jwt_secret)
    assert_error(platform.client.get(f"/{tenant_b.slug}/admin/users", headers=bearer(resigned)), 401)


def test_token_of_unknown_user_and_garbage_are_rejected(platform, tenant_a):
    claims = _claims_for(platform, tenant_a) | {"sub": str(uuid.uuid4())}
    ghost = jwt.encode(claims, platform.settings.resolved_jwt_secret)
    assert_error(platform.client.get("/auth/me", headers=bearer(ghost)), 401)
    assert_error(platform.client.get("/auth/me", headers=bearer("not.a.jwt")), 401)
    missing = platform.client.get("/auth/me")
    assert_error(missing, 401)
    assert missing.headers["www-authenticate"].startswith("Bearer")


def test_platform_admin_logs_in_without_a_tenant(platform):
    me = platform.client.get("/auth/me", headers=platform.admin_headers).json()
    assert me["role"] == "platform_admin" and me["tenant"] is None


def test_auth_bodies_refuse_unknown_fields(platform, tenant_a):
    tokens = platform.login(tenant_a.admin_email, tenant=tenant_a.slug)
    for path in ("/auth/refresh", "/auth/logout"):
        response = platform.client.post(
            path, json={"refresh_token": tokens["refresh_token"], "revoke_all": True}
        )
        assert assert_error(response, 422)["param"] == "revoke_all"
    # Neither call did anything: the token still refreshes.
    assert (
        platform.client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]}).status_code
        == 200
    )
