"""The model catalogue's admin API, and what tenants see of it."""

from __future__ import annotations

from tests.conftest import assert_error, bearer

LOCAL = {
    "name": "acme-llama",
    "kind": "chat",
    "backend": "hf",
    "source": "/models/acme-llama",
    "context_length": 2048,
}


def test_bundled_model_is_in_the_catalogue_after_migrate(platform):
    names = [m["name"] for m in platform.client.get("/admin/models", headers=platform.admin_headers).json()]
    assert "smollm2-135m" in names
    bundled = platform.client.get("/admin/models/smollm2-135m", headers=platform.admin_headers).json()
    assert bundled["source"] == "bundled:smollm2-135m" and bundled["kind"] == "chat" and bundled["enabled"]


def test_platform_admin_registers_updates_and_disables(platform, tenant_a, db_engine):
    from sqlalchemy import text

    with db_engine.begin() as connection:
        connection.execute(text("DELETE FROM models WHERE name LIKE 'acme-%'"))
    created = platform.client.post(
        "/admin/models", json=LOCAL | {"default_params": {"temperature": 0.2}}, headers=platform.admin_headers
    )
    assert created.status_code == 201, created.text
    assert created.json()["default_params"] == {
        "temperature": 0.2,
        "max_tokens": None,
        "top_p": None,
        "top_k": None,
        "repetition_penalty": None,
    }
    assert_error(
        platform.client.post("/admin/models", json=LOCAL, headers=platform.admin_headers), 409, "model_exists"
    )

    key = bearer(platform.create_key(tenant_a)["key"])
    visible = [m["name"] for m in platform.client.get(f"/{tenant_a.slug}/models", headers=key).json()]
    assert "acme-llama" in visible
    listing = platform.client.get(f"/{tenant_a.slug}/models", headers=key).json()
    assert all(set(m) == {"name", "kind", "context_length"} for m in listing)  # no paths or URLs for tenants

    disabled = platform.client.patch(
        "/admin/models/acme-llama", json={"enabled": False}, headers=platform.admin_headers
    )
    assert disabled.json()["enabled"] is False
    assert "acme-llama" not in [
        m["id"] for m in platform.client.get("/v1/models", headers=key).json()["data"]
    ]
    chat = platform.client.post(
        "/v1/chat/completions",
        headers=key,
        json={"model": "acme-llama", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert_error(chat, 404, "model_not_found")


def test_catalogue_input_is_checked(platform):
    openai_without_url = LOCAL | {"name": "acme-remote", "backend": "openai"}
    assert_error(
        platform.client.post("/admin/models", json=openai_without_url, headers=platform.admin_headers), 422
    )
    bad_name = LOCAL | {"name": "../etc/passwd"}
    error = assert_error(
        platform.client.post("/admin/models", json=bad_name, headers=platform.admin_headers), 422
    )
    assert error["param"] == "name"
    bad_default = LOCAL | {"name": "acme-x", "default_params": {"temperature": 9}}
    assert_error(platform.client.post("/admin/models", json=bad_default, headers=platform.admin_headers), 422)
    assert_error(
        platform.client.get("/admin/models/nope", headers=platform.admin_headers), 404, "model_not_found"
    )


def test_only_platform_admins_manage_models(platform, tenant_a):
    admin_key = bearer(platform.create_key(tenant_a, scopes=["admin", "inference"])["key"])
    for headers in (tenant_a.admin_headers, admin_key):
        assert_error(platform.client.get("/admin/models", headers=headers), 403)
        assert_error(platform.client.post("/admin/models", json=LOCAL, headers=headers), 403)
        assert_error(
            platform.client.patch("/admin/models/smollm2-135m", json={"enabled": False}, headers=headers), 403
        )


def test_tenant_model_listing_is_isolated(platform, tenant_a, tenant_b):
    key = bearer(platform.create_key(tenant_a)["key"])
    assert_error(platform.client.get(f"/{tenant_b.slug}/models", headers=key), 404)
