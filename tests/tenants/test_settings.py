"""A tenant's own settings: PUT replaces them all, PATCH changes some, neither takes a null or a stranger."""

from __future__ import annotations

from tests.responses import assert_error, assert_status

SETTINGS = {
    "cache_enabled": False,
    "cache_ttl_s": 60,
    "cache_max_entry_bytes": 4096,
    "cache_sampled": True,
    "audit_store_text": True,
}


def _read(platform, tenant) -> dict:  # type: ignore[no-untyped-def]
    response = platform.client.get(f"/{tenant.slug}/admin/settings", headers=tenant.admin_headers)
    assert response.status_code == 200, response.text
    return {name: response.json()[name] for name in SETTINGS}


def test_a_put_of_settings_must_name_every_field(platform, tenant_a):
    url = f"/{tenant_a.slug}/admin/settings"
    assert platform.client.put(url, json=SETTINGS, headers=tenant_a.admin_headers).status_code == 200
    error = assert_error(
        platform.client.put(url, json={"cache_ttl_s": 30}, headers=tenant_a.admin_headers), 422
    )
    assert error["param"] == "cache_enabled" and "audit_store_text" in error["message"]
    assert _read(platform, tenant_a) == SETTINGS  # the others did not return to their defaults


def test_a_patch_of_settings_changes_only_what_it_names(platform, tenant_a, tenant_b):
    url = f"/{tenant_a.slug}/admin/settings"
    assert_status(platform.client.put(url, json=SETTINGS, headers=tenant_a.admin_headers))
    patched = platform.client.patch(url, json={"cache_ttl_s": 30}, headers=tenant_a.admin_headers)
    assert patched.status_code == 200, patched.text
    assert _read(platform, tenant_a) == SETTINGS | {"cache_ttl_s": 30}
    # A tenant that never saved its settings patches its defaults.
    defaults = _read(platform, tenant_b)
    patched = platform.client.patch(
        f"/{tenant_b.slug}/admin/settings", json={"cache_sampled": True}, headers=tenant_b.admin_headers
    )
    assert patched.status_code == 200, patched.text
    assert _read(platform, tenant_b) == defaults | {"cache_sampled": True}


def test_settings_refuse_nulls_and_unknown_fields_by_name(platform, tenant_a):
    url = f"/{tenant_a.slug}/admin/settings"
    before = _read(platform, tenant_a)
    for method in ("put", "patch"):
        for body, param in (
            (SETTINGS | {"cache_enabled": None}, "cache_enabled"),
            (SETTINGS | {"cache_tll_s": 5}, "cache_tll_s"),
        ):
            response = getattr(platform.client, method)(url, json=body, headers=tenant_a.admin_headers)
            error = assert_error(response, 422)
            assert error["param"] == param and param in error["message"], (method, error)
    assert _read(platform, tenant_a) == before
