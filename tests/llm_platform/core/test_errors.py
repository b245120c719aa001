"""The one error shape on every failure path, request ids, and the body size limit."""

from __future__ import annotations

from fastapi.testclient import TestClient

from llm_platform.app import create_app
from tests.responses import assert_error, bearer


def test_unknown_route_and_wrong_method(client):
    assert_error(client.get("/no/such/route"), 404, "not_found")
    assert_error(client.delete("/healthz"), 405, "method_not_allowed")


def test_401_carries_www_authenticate(client):
    response = client.get("/auth/me", headers=bearer("sk-wrong_key"))
    assert_error(response, 401, "invalid_credentials")
    assert response.headers["www-authenticate"] == 'Bearer realm="llm-platform"'


def test_validation_error_names_the_field(platform, tenant_a):
    response = platform.client.post(
        f"/{tenant_a.slug}/admin/keys", json={"name": "k", "scopes": ["root"]}, headers=tenant_a.admin_headers
    )
    error = assert_error(response, 422, "invalid_request")
    assert error["param"] == "scopes.0" and "scopes.0" in error["message"]
    missing = platform.client.post("/auth/token", data={"password": "x"})
    assert assert_error(missing, 422)["param"] == "username"


def test_malformed_json_and_non_utf8_bodies(platform, tenant_a):
    headers = tenant_a.admin_headers | {"Content-Type": "application/json"}
    malformed = platform.client.post(f"/{tenant_a.slug}/admin/keys", content=b'{"name": ', headers=headers)
    assert assert_error(malformed, 422)["message"] == "Request body is not valid JSON"
    not_utf8 = platform.client.post(
        f"/{tenant_a.slug}/admin/keys", content=b'{"name": "\xff\xfe"}', headers=headers
    )
    assert "UTF-8" in assert_error(not_utf8, 400, "invalid_request")["message"]


def test_oversized_body_answers_413_without_reaching_the_route(platform, tenant_a, settings):
    too_big = b'{"name": "' + b"x" * settings.max_request_body_bytes + b'"}'
    headers = tenant_a.admin_headers | {"Content-Type": "application/json"}
    declared = platform.client.post(f"/{tenant_a.slug}/admin/keys", content=too_big, headers=headers)
    assert_error(declared, 413, "request_too_large")

    def chunks():  # no Content-Length: the limit is enforced while the body streams
        for offset in range(0, len(too_big), 65536):
            yield too_big[offset : offset + 65536]

    streamed = platform.client.post(f"/{tenant_a.slug}/admin/keys", content=chunks(), headers=headers)
    assert_error(streamed, 413, "request_too_large")
    listing = platform.client.get(f"/{tenant_a.slug}/admin/keys", headers=tenant_a.admin_headers)
    assert listing.json() == []


def test_request_id_is_echoed_or_generated(client):
    echoed = client.get("/healthz", headers={"X-Request-ID": "trace-abc.123"})
    assert echoed.headers["x-request-id"] == "trace-abc.123"
    generated = client.get("/healthz", headers={"X-Request-ID": "bad id with spaces\n"})
    assert len(generated.headers["x-request-id"]) == 32
    error = client.get("/nope", headers={"X-Request-ID": "err-1"})
    assert error.headers["x-request-id"] == "err-1"


def test_unexpected_errors_hide_internals_and_carry_the_request_id(settings, clean_state, caplog):
    app = create_app(settings)

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("SELECT secret FROM credentials -- internal detail")

    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/boom", headers={"X-Request-ID": "req-500"})
    error = assert_error(response, 500, "internal_error")
    assert "SELECT" not in response.text and "Traceback" not in response.text
    assert "req-500" in error["message"] and response.headers["x-request-id"] == "req-500"
    # uvicorn closes the connection after an unhandled error: a keep-alive client must not reuse it.
    assert response.headers["connection"] == "close"
