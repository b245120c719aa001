"""The rest of the admin pages in a real browser: the model catalogue, a tenant's limits (platform admins
change them, its admins only read them), its settings, and usage against the monthly quota."""

from __future__ import annotations

import uuid

import httpx
from playwright.sync_api import expect

from tests.console.conftest import sign_in


def test_a_platform_admin_registers_an_upstream_and_sets_a_tenants_limits(console, open_console, screenshots):
    root_email, root = console.platform_admin()
    slug = console.tenant(root, ("boss@a.example.com", "tenant_admin"))
    page = open_console()
    sign_in(page, root_email)

    page.get_by_role("link", name="Models").click()
    name = f"upstream-{uuid.uuid4().hex[:6]}"
    page.get_by_label("Name", exact=True).fill(name)
    page.get_by_label("Upstream model").fill("gpt-4o-mini")
    page.get_by_label("Base URL").fill("http://127.0.0.1:9/v1")
    page.get_by_role("button", name="Register upstream").click()
    row = page.get_by_role("row").filter(has_text=name)
    expect(row).to_contain_text("enabled")
    row.get_by_role("button", name="Disable").click()
    page.get_by_role("dialog").get_by_role("button", name="Disable").click()
    expect(row).to_contain_text("disabled")
    assert httpx.get(f"{console.url}/admin/models/{name}", headers=root).json()["enabled"] is False
    page.screenshot(path=screenshots / "models.png", full_page=True)

    # The switcher acts on the tenant; a platform admin may change its limits.
    page.locator("select[name=tenant-switcher]").select_option(slug)
    page.get_by_role("link", name="Limits & settings").click()
    page.get_by_label("Monthly token quota").fill("5000")
    page.get_by_role("button", name="Save limits").click()
    expect(page.get_by_text("Limits saved.")).to_be_visible()
    limits = httpx.get(f"{console.url}/{slug}/admin/limits", headers=root).json()
    assert limits["monthly_token_quota"] == 5000
    page.get_by_label("Cache answers").uncheck()
    page.get_by_role("button", name="Save settings").click()
    expect(page.get_by_text("Settings saved.")).to_be_visible()
    assert httpx.get(f"{console.url}/{slug}/admin/settings", headers=root).json()["cache_enabled"] is False
    page.screenshot(path=screenshots / "limits-settings.png", full_page=True)

    # The tenant's admin reads the limits but cannot change them, and sees usage against the quota.
    page.get_by_role("button", name="Sign out").click()
    sign_in(page, "boss@a.example.com", slug)
    page.get_by_role("link", name="Limits & settings").click()
    expect(page.get_by_label("Monthly token quota")).to_have_value("5000")
    expect(page.get_by_label("Monthly token quota")).to_be_disabled()
    expect(page.get_by_role("button", name="Save limits")).to_be_hidden()
    page.get_by_role("link", name="Usage").click()
    expect(page.get_by_text("0 of 5000 tokens used this month")).to_be_visible()
    expect(page.get_by_text("No usage from")).to_be_visible()
