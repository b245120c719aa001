"""The refresh token as an HttpOnly cookie (what the console asks for): its flags, rotation through the
cookie, logout, and the CSRF checks on the endpoints that accept it."""

from __future__ import annotations

from http.cookies import SimpleCookie

from fastapi.testclient import TestClient

from tests.conftest import PASSWORD
from tests.responses import assert_error, bearer

SAME_ORIGIN = {"X-Requested-With": "llmp-console", "Origin": "http://testserver"}


def _cookie_login(client: TestClient, email: str, tenant: str):  # type: ignore[no-untyped-def]
    form = {"username": email, "password": PASSWORD, "tenant": tenant, "refresh_cookie": "true"}
    return client.post("/auth/token", data=form)


def _set_cookie(response) -> SimpleCookie:  # type: ignore[no-untyped-def]
    (header,) = response.headers.get_list("set-cookie")
    cookie = SimpleCookie()
    cookie.load(header)
    return cookie


def test_a_cookie_login_keeps_the_refresh_token_out_of_the_body(platform, tenant_a):  # type: ignore[no-untyped-def]
    response = _cookie_login(platform.client, tenant_a.admin_email, tenant_a.slug)
    assert response.status_code == 200
    assert response.json()["refresh_token"] is None
    morsel = _set_cookie(response)["llmp_refresh"]
    assert morsel["httponly"] and morsel["samesite"] == "strict" and morsel["path"] == "/auth"
    assert not morsel["secure"]  # plain http here; https gets Secure (below)
    assert platform.client.get("/auth/me", headers=bearer(response.json()["access_token"])).status_code == 200


def test_the_cookie_is_secure_over_https(settings, clean_state, platform, tenant_a):  # type: ignore[no-untyped-def]
    from llm_platform.app import create_app

    with TestClient(create_app(settings), base_url="https://testserver") as client:
        response = _cookie_login(client, tenant_a.admin_email, tenant_a.slug)
    assert response.status_code == 200
    assert _set_cookie(response)["llmp_refresh"]["secure"]


def test_refresh_through_the_cookie_rotates_it(platform, tenant_a):  # type: ignore[no-untyped-def]
    client = platform.client
    first = _set_cookie(_cookie_login(client, tenant_a.admin_email, tenant_a.slug))["llmp_refresh"].value
    refreshed = client.post("/auth/refresh", headers=SAME_ORIGIN)
    assert refreshed.status_code == 200 and refreshed.json()["refresh_token"] is None
    second = _set_cookie(refreshed)["llmp_refresh"].value
    assert second != first
    assert client.get("/auth/me", headers=bearer(refreshed.json()["access_token"])).status_code == 200
    # The spent cookie value is refused like a spent body token (and revokes its family).
    assert_error(client.post("/auth/refresh", json={"refresh_token": first}), 401)


def test_the_cookie_is_refused_without_the_csrf_header_or_from_another_origin(platform, tenant_a):  # type: ignore[no-untyped-def]
    client = platform.client
    assert _cookie_login(client, tenant_a.admin_email, tenant_a.slug).status_code == 200
    # What a cross-site form post could send: the cookie, no custom header.
    assert_error(client.post("/auth/refresh"), 403, "csrf_check_failed")
    assert_error(client.post("/auth/logout"), 403, "csrf_check_failed")
    cross_site = {"X-Requested-With": "llmp-console", "Origin": "https://evil.example.com"}
    assert_error(client.post("/auth/refresh", headers=cross_site), 403, "csrf_check_failed")
    # Still a good session for the real console.
    assert client.post("/auth/refresh", headers=SAME_ORIGIN).status_code == 200


def test_logout_through_the_cookie_ends_the_session_and_clears_it(platform, tenant_a):  # type: ignore[no-untyped-def]
    client = platform.client
    token = _set_cookie(_cookie_login(client, tenant_a.admin_email, tenant_a.slug))["llmp_refresh"].value
    response = client.post("/auth/logout", headers=SAME_ORIGIN)
    assert response.status_code == 204
    assert _set_cookie(response)["llmp_refresh"]["max-age"] == "0"
    assert_error(client.post("/auth/refresh", json={"refresh_token": token}), 401)
    assert_error(client.post("/auth/refresh", headers=SAME_ORIGIN), 401)


def test_refresh_without_any_token_is_refused(client):  # type: ignore[no-untyped-def]
    assert_error(client.post("/auth/refresh", headers=SAME_ORIGIN), 401)
    assert_error(client.post("/auth/logout"), 401)
