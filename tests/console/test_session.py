"""Signing in, staying signed in across a reload (the refresh cookie), signing out; the pages' security
headers; errors shown as the API's message."""

from __future__ import annotations

import httpx
from playwright.sync_api import expect

from tests.console.conftest import sign_in


def test_console_pages_carry_security_headers(console):
    redirect = httpx.get(f"{console.url}/console")
    assert redirect.status_code == 307 and redirect.headers["location"] == "/console/"
    for path in ("/console/", "/console/js/app.js", "/console/vendor/pico/pico.min.css"):
        response = httpx.get(f"{console.url}{path}")
        assert response.status_code == 200, path
        policy = response.headers["content-security-policy"]
        assert "script-src 'self'" in policy and "unsafe-inline" not in policy
        assert "frame-ancestors 'none'" in policy
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["referrer-policy"] == "no-referrer"
    assert httpx.get(f"{console.url}/console/no-such-file.js").status_code == 404


def test_sign_in_survives_a_reload_and_sign_out_ends_it(console, open_console, screenshots):
    _, root = console.platform_admin()
    slug = console.tenant(root, ("ada@example.com", "member"))
    page = open_console()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    page.screenshot(path=screenshots / "sign-in.png")
    sign_in(page, "ada@example.com", slug)
    expect(page.get_by_role("heading", name="Playground")).to_be_visible()

    # The refresh token is a cookie no script can read, sent only to /auth; nothing is kept in storage.
    (cookie,) = page.context.cookies()
    assert cookie["name"] == "llmp_refresh" and cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert cookie["path"] == "/auth"
    assert page.evaluate("document.cookie") == ""
    assert page.evaluate("localStorage.length + sessionStorage.length") == 0

    page.reload()  # the access token was in memory only: the cookie gets a new one
    expect(page.get_by_role("heading", name="Playground")).to_be_visible()
    expect(page.get_by_text("ada@example.com")).to_be_visible()

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    assert page.context.cookies() == []
    page.reload()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()


def test_a_failed_sign_in_shows_the_apis_message(console, open_console):
    page = open_console()
    page.get_by_label("Tenant").fill("nobody-here")
    page.get_by_label("Email").fill("who@example.com")
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Sign in").click()
    form = {"tenant": "nobody-here", "username": "who@example.com", "password": "not the password"}
    answer = httpx.post(f"{console.url}/auth/token", data=form)
    assert answer.status_code == 401
    expect(page.get_by_role("alert")).to_have_text(answer.json()["error"]["message"])
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
