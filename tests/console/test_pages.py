"""The rest of the admin pages in a real browser: the model catalogue and its live workers, a tenant's
limits (platform admins change them, its admins only read them), its settings, usage against the monthly
quota, and the playground's model picker saying which models have no worker."""

from __future__ import annotations

import re
import uuid

import httpx
import pytest
from playwright.sync_api import expect

from tests.conftest import TINY_MODEL
from tests.console.conftest import sign_in


@pytest.fixture
def ghost(console):  # type: ignore[no-untyped-def]
    """A model of ours that no worker serves (disabled again afterwards: the catalogue outlives tests)."""
    _, root = console.platform_admin()
    name = f"ghost-{uuid.uuid4().hex[:6]}"
    body = {"name": name, "backend": "hf", "source": "/nowhere", "context_length": 256}
    assert httpx.post(f"{console.url}/admin/models", json=body, headers=root).status_code == 201
    yield name
    httpx.patch(f"{console.url}/admin/models/{name}", json={"enabled": False}, headers=root)


def test_a_platform_admin_sees_models_and_workers_and_sets_a_tenants_limits(
    console, open_console, screenshots, ghost
):
    root_email, root = console.platform_admin()
    slug = console.tenant(root, ("boss@a.example.com", "tenant_admin"))
    page = open_console()
    sign_in(page, root_email)

    page.get_by_role("link", name="Models").click()
    # The page renders once the catalogue has loaded: until then the previous page (with a "Name" field
    # of its own) is still there to be filled.
    expect(page.get_by_role("heading", name="Models", exact=True)).to_be_visible()
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

    # The live workers, as the API lists them; the model without one is pointed out.
    (worker,) = httpx.get(f"{console.url}/admin/workers", params={"model": TINY_MODEL}, headers=root).json()
    served = page.locator(f"#workers tr[data-worker='{worker['worker_id']}']")
    expect(served).to_contain_text(TINY_MODEL)
    expect(served).to_contain_text("ready")
    expect(served).to_contain_text(f"0 / {worker['capacity']}")
    expect(served).to_contain_text(worker["url"])
    expect(served).to_contain_text(re.compile(r"\d+\.\d s ago"))
    expect(page.locator("#models-without-workers")).to_contain_text(ghost)
    expect(page.locator("#workers")).not_to_contain_text(ghost)
    page.get_by_role("button", name="Refresh").click()
    expect(page.locator("#live-workers")).to_contain_text("Updated")
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
    # The playground says which models have no worker, and offers one that has one first.
    page.get_by_role("link", name="Playground").click()
    expect(page.locator(f"select[name=model] option[value='{ghost}']")).to_contain_text("no worker running")
    expect(page.locator(f"select[name=model] option[value='{TINY_MODEL}']")).not_to_contain_text("no worker")
    assert page.locator("select[name=model] option").first.get_attribute("data-served") == "yes"
    page.get_by_role("link", name="Usage").click()
    expect(page.get_by_text("0 of 5000 tokens used this month")).to_be_visible()
    expect(page.get_by_text("No usage from")).to_be_visible()
