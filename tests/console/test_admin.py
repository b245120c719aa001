"""The admin pages in a real browser: a platform admin makes a tenant and its admin; that admin makes an
API key, sees its secret once, revokes it; the audit log shows those actions and its chain verifies; a
member is refused the admin pages; another tenant's data never shows."""

from __future__ import annotations

import re
import uuid

import httpx
from playwright.sync_api import expect

from tests.conftest import PASSWORD
from tests.console.conftest import sign_in

KEY = re.compile(r"^sk-\S{20,}$")  # what a new API key's secret looks like


def test_a_platform_admin_creates_a_tenant_and_its_admin(console, open_console, screenshots):
    root_email, root = console.platform_admin()
    page = open_console()
    sign_in(page, root_email)
    expect(page.get_by_role("heading", name="Tenants")).to_be_visible()

    slug = f"acme-{uuid.uuid4().hex[:6]}"
    page.get_by_label("Slug").fill(slug)
    page.get_by_label("Name").fill("Acme Corp")
    page.get_by_role("button", name="Create tenant").click()
    expect(page.get_by_text(f"Tenant {slug} created.")).to_be_visible()
    row = page.get_by_role("row").filter(has_text=slug)
    expect(row).to_contain_text("active")

    # The API's own refusal, shown as its message: that slug is taken now.
    page.get_by_label("Slug").fill(slug)
    page.get_by_role("button", name="Create tenant").click()
    taken = httpx.post(f"{console.url}/admin/tenants", json={"slug": slug}, headers=root)
    assert taken.status_code == 409
    expect(page.get_by_role("alert")).to_have_text(taken.json()["error"]["message"])

    # Suspend, with a confirmation; cancelling changes nothing.
    row.get_by_role("button", name="Suspend").click()
    page.get_by_role("dialog").get_by_role("button", name="Cancel").click()
    expect(row).to_contain_text("active")
    row.get_by_role("button", name="Suspend").click()
    page.get_by_role("dialog").get_by_role("button", name="Suspend").click()
    expect(row).to_contain_text("suspended")
    assert httpx.get(f"{console.url}/admin/tenants/{slug}", headers=root).json()["status"] == "suspended"
    row.get_by_role("button", name="Resume").click()
    page.get_by_role("dialog").get_by_role("button", name="Resume").click()
    expect(row).to_contain_text("active")
    page.screenshot(path=screenshots / "tenants.png", full_page=True)

    # Its first admin, on the tenant's users page.
    row.get_by_role("link", name=slug).click()
    expect(page.get_by_role("heading", name=f"Users of {slug}")).to_be_visible()
    expect(page.get_by_text("No users yet")).to_be_visible()
    page.get_by_label("Email").fill(f"boss@{slug}.example.com")
    page.get_by_label("Password").fill(PASSWORD)
    page.locator("select[name=role]").select_option("tenant_admin")
    page.get_by_role("button", name="Add user").click()
    expect(page.get_by_role("row").filter(has_text=f"boss@{slug}.example.com")).to_be_visible()
    page.screenshot(path=screenshots / "users.png", full_page=True)
    console.login(f"boss@{slug}.example.com", slug)  # a real tenant admin, who can sign in


def test_a_tenant_admin_sees_a_new_keys_secret_once_and_revokes_it(console, open_console, screenshots):
    _, root = console.platform_admin()
    slug = console.tenant(root, ("admin@a.example.com", "tenant_admin"))
    page = open_console()
    sign_in(page, "admin@a.example.com", slug)
    page.get_by_role("link", name="API keys").click()
    expect(page.get_by_text("No API keys yet")).to_be_visible()

    page.get_by_label("Name").fill("ci-pipeline")
    page.get_by_role("button", name="Create key").click()
    secret = page.locator("#new-key-secret")
    expect(secret).to_have_text(KEY)
    key = secret.inner_text()
    expect(page.get_by_text("It is shown only this once")).to_be_visible()
    expect(page.get_by_role("button", name="Copy")).to_be_visible()
    # The key works as shown.
    assert httpx.get(f"{console.url}/auth/me", headers={"Authorization": f"Bearer {key}"}).status_code == 200
    page.screenshot(path=screenshots / "api-key-created.png", full_page=True)

    page.reload()  # gone: the platform keeps only its hash
    row = page.get_by_role("row").filter(has_text="ci-pipeline")
    expect(row).to_contain_text("active")
    expect(page.locator("#new-key-secret")).to_have_count(0)
    assert key not in page.content()

    row.get_by_role("button", name="Revoke ci-pipeline").click()
    expect(page.get_by_role("dialog")).to_contain_text("stops working")
    page.get_by_role("dialog").get_by_role("button", name="Revoke").click()
    expect(row).to_contain_text("revoked")
    assert httpx.get(f"{console.url}/auth/me", headers={"Authorization": f"Bearer {key}"}).status_code == 401
    page.screenshot(path=screenshots / "api-keys.png", full_page=True)

    # The console's actions are API calls, audited as any: by this admin, and the chain holds.
    page.get_by_role("link", name="Audit log").click()
    for action in ("create_api_key", "revoke_api_key"):
        expect(page.locator(f"tr[data-action={action}]")).to_have_count(1)
    page.get_by_role("button", name="Verify chain").click()
    expect(page.locator("#verify-result")).to_contain_text("Chain verified: ok")
    page.get_by_label("Action").fill("revoke_api_key")
    page.get_by_role("button", name="Apply filters").click()
    expect(page.locator("tbody tr")).to_have_count(1)
    page.screenshot(path=screenshots / "audit.png", full_page=True)
    admin = console.login("admin@a.example.com", slug)
    me = httpx.get(f"{console.url}/auth/me", headers=admin).json()
    rows = httpx.get(f"{console.url}/{slug}/admin/audit", params={"action": "create_api_key"}, headers=admin)
    (created,) = rows.json()["data"]
    assert created["actor_kind"] == "user" and created["actor_id"] == me["id"] and created["status"] == 201


def test_a_member_is_refused_the_admin_pages_and_told_why(console, open_console):
    _, root = console.platform_admin()
    slug = console.tenant(root, ("member@a.example.com", "member"))
    page = open_console()
    sign_in(page, "member@a.example.com", slug)
    nav = page.locator("#nav")
    expect(nav.get_by_role("link", name="Playground")).to_be_visible()
    for admin_page in ("API keys", "Users", "Audit log", "Limits & settings"):
        expect(nav.get_by_role("link", name=admin_page)).to_have_count(0)
    member = console.login("member@a.example.com", slug)
    refused = httpx.get(f"{console.url}/{slug}/admin/keys", headers=member)
    assert refused.status_code == 403
    page.goto(f"/console/#/t/{slug}/keys")
    expect(page.get_by_role("alert")).to_have_text(refused.json()["error"]["message"])
    page.goto(f"/console/#/t/{slug}/audit")
    expect(page.get_by_role("alert").first).to_have_text(refused.json()["error"]["message"])
    page.goto("/console/#/admin/tenants")
    expect(page.get_by_role("alert")).to_contain_text("platform admin")


def test_another_tenants_data_never_appears(console, open_console):
    _, root = console.platform_admin()
    alpha = console.tenant(root, ("admin@alpha.example.com", "tenant_admin"))
    bravo = console.tenant(root, ("admin@bravo.example.com", "tenant_admin"))
    alpha_admin = console.login("admin@alpha.example.com", alpha)
    made = httpx.post(
        f"{console.url}/{alpha}/admin/keys", json={"name": "alpha-secret-key"}, headers=alpha_admin
    )
    assert made.status_code == 201

    page = open_console()
    sign_in(page, "admin@bravo.example.com", bravo)
    page.get_by_role("link", name="API keys").click()
    expect(page.get_by_text("No API keys yet")).to_be_visible()
    page.get_by_role("link", name="Users").click()
    expect(page.get_by_role("row").filter(has_text="admin@bravo.example.com")).to_be_visible()
    assert "admin@alpha.example.com" not in page.content()
    # Naming the other tenant in the URL gets the API's answer for it: not found, and nothing of it.
    for path in ("keys", "users", "audit", "usage", "chat"):
        page.goto(f"/console/#/t/{alpha}/{path}")
        expect(page.get_by_role("alert").first).to_have_text("Not found")
        assert "alpha-secret-key" not in page.content()
        assert "admin@alpha.example.com" not in page.content()


def test_a_tenant_admin_changes_a_role_resets_a_password_and_disables_a_user(console, open_console):
    _, root = console.platform_admin()
    slug = console.tenant(root, ("admin@a.example.com", "tenant_admin"), ("bob@a.example.com", "member"))
    admin = console.login("admin@a.example.com", slug)
    page = open_console()
    sign_in(page, "admin@a.example.com", slug)
    page.get_by_role("link", name="Users").click()
    row = page.get_by_role("row").filter(has_text="bob@a.example.com")

    page.get_by_label("Role of bob@a.example.com").select_option("tenant_admin")
    expect(page.get_by_text("bob@a.example.com is now tenant_admin.")).to_be_visible()
    users = httpx.get(f"{console.url}/{slug}/admin/users", headers=admin).json()
    assert {u["email"]: u["role"] for u in users}["bob@a.example.com"] == "tenant_admin"

    new_password = "a brand new passphrase for bob"
    row.get_by_role("button", name="Reset password").click()
    page.get_by_role("dialog").get_by_label("New password").fill(new_password)
    page.get_by_role("dialog").get_by_role("button", name="Set password").click()
    expect(page.get_by_text("Password of bob@a.example.com reset.")).to_be_visible()
    # Bob signs in with the new password (and no longer with the old one).
    bob = open_console()
    sign_in(bob, "bob@a.example.com", slug, new_password)
    expect(bob.get_by_role("link", name="Users")).to_be_visible()  # a tenant admin now
    old = {"tenant": slug, "username": "bob@a.example.com", "password": PASSWORD}
    assert httpx.post(f"{console.url}/auth/token", data=old).status_code == 401

    row.get_by_role("button", name="Disable").click()
    expect(page.get_by_role("dialog")).to_contain_text("They can no longer sign in")
    page.get_by_role("dialog").get_by_role("button", name="Disable").click()
    expect(row).to_contain_text("disabled")
    refused = httpx.post(f"{console.url}/auth/token", data=old | {"password": new_password})
    assert refused.status_code == 401
    again = open_console()
    sign_in(again, "bob@a.example.com", slug, new_password, ok=False)
    expect(again.get_by_role("alert")).to_have_text(refused.json()["error"]["message"])
    expect(again.get_by_role("heading", name="Sign in")).to_be_visible()
