"""The model catalogue's admin API, and what tenants see of it."""

from __future__ import annotations

from sqlalchemy import text

from tests.responses import assert_error, assert_status, bearer

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

    disabled = assert_status(
        platform.client.patch(
            "/admin/models/acme-llama", json={"enabled": False}, headers=platform.admin_headers
        )
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


def _catalogue_row(db_engine, name: str) -> dict:  # type: ignore[no-untyped-def]
    with db_engine.connect() as connection:
        row = connection.execute(
            text(
                "SELECT source, base_url, context_length, default_params::text AS default_params, enabled, "
                "updated_at FROM models WHERE name = :name"
            ),
            {"name": name},
        )
        return dict(row.mappings().one())


def _forget(db_engine, name: str) -> None:  # type: ignore[no-untyped-def]
    """Catalogue rows survive the per-test cleanup (see conftest.register_model)."""
    with db_engine.begin() as connection:
        connection.execute(text("DELETE FROM models WHERE name = :name"), {"name": name})


def _registered(platform, db_engine, model: dict) -> dict:  # type: ignore[no-untyped-def]
    _forget(db_engine, model["name"])
    created = platform.client.post("/admin/models", json=model, headers=platform.admin_headers)
    assert created.status_code == 201, created.text
    return created.json()


def test_a_null_in_a_catalogue_update_is_refused_and_the_catalogue_stays_readable(platform, db_engine):
    _registered(platform, db_engine, LOCAL | {"name": "acme-null", "default_params": {"temperature": 0.3}})
    before = _catalogue_row(db_engine, "acme-null")
    for field in ("default_params", "enabled", "source", "context_length"):
        response = platform.client.patch(
            "/admin/models/acme-null", json={field: None}, headers=platform.admin_headers
        )
        error = assert_error(response, 422)
        assert error["param"] == field and field in error["message"] and "null" in error["message"]
        assert _catalogue_row(db_engine, "acme-null") == before  # nothing committed
        listing = platform.client.get("/admin/models", headers=platform.admin_headers)
        assert listing.status_code == 200 and "acme-null" in [m["name"] for m in listing.json()]
        assert (
            platform.client.get("/admin/models/acme-null", headers=platform.admin_headers).status_code == 200
        )


def test_a_catalogue_update_keeps_the_invariants_of_registration(platform, db_engine):
    _registered(platform, db_engine, LOCAL | {"name": "acme-local", "default_params": {"max_tokens": 1000}})
    remote = LOCAL | {
        "name": "acme-remote",
        "backend": "openai",
        "source": "llama",
        "base_url": "http://vllm/v1",
    }
    _registered(platform, db_engine, remote)
    refused = {
        "acme-local": [
            ({"base_url": "http://vllm:8000/v1"}, "base_url"),  # base_url only for backend openai
            ({"context_length": 512}, "default_params.max_tokens"),  # below the stored max_tokens
            ({"default_params": {"max_tokens": 4096}}, "default_params.max_tokens"),  # above context_length
        ],
        "acme-remote": [({"base_url": None}, "base_url")],  # an openai backend needs one
    }
    for name, patches in refused.items():
        before = _catalogue_row(db_engine, name)
        for patch, param in patches:
            response = platform.client.patch(
                f"/admin/models/{name}", json=patch, headers=platform.admin_headers
            )
            assert assert_error(response, 422)["param"] == param, patch
            assert _catalogue_row(db_engine, name) == before
    # Consistent changes are accepted, checked against the stored row as a whole.
    both = {"context_length": 8192, "default_params": {"max_tokens": 6000}}
    changed = platform.client.patch("/admin/models/acme-local", json=both, headers=platform.admin_headers)
    assert changed.status_code == 200, changed.text
    assert changed.json()["context_length"] == 8192 and changed.json()["default_params"] == {
        "max_tokens": 6000
    }
    moved = platform.client.patch(
        "/admin/models/acme-remote", json={"base_url": "https://other/v1"}, headers=platform.admin_headers
    )
    assert moved.status_code == 200 and moved.json()["base_url"] == "https://other/v1"
    # Registration refuses the same contradiction, naming the field.
    too_long = LOCAL | {"name": "acme-long", "context_length": 512, "default_params": {"max_tokens": 600}}
    response = platform.client.post("/admin/models", json=too_long, headers=platform.admin_headers)
    assert assert_error(response, 422)["param"] == "default_params.max_tokens"


def test_unknown_catalogue_fields_are_refused_by_name(platform, db_engine):
    _forget(db_engine, "acme-typo")
    response = platform.client.post(
        "/admin/models", json=LOCAL | {"name": "acme-typo", "enable": False}, headers=platform.admin_headers
    )
    error = assert_error(response, 422)
    assert error["param"] == "enable" and "enable" in error["message"]
    assert platform.client.get("/admin/models/acme-typo", headers=platform.admin_headers).status_code == 404
    _registered(platform, db_engine, LOCAL | {"name": "acme-fixed"})
    before = _catalogue_row(db_engine, "acme-fixed")
    for patch, param in (({"backend": "openai"}, "backend"), ({"enabled": False, "nmae": "x"}, "nmae")):
        response = platform.client.patch(
            "/admin/models/acme-fixed", json=patch, headers=platform.admin_headers
        )
        assert assert_error(response, 422)["param"] == param
    assert _catalogue_row(db_engine, "acme-fixed") == before
