"""What a client learns before its first call: the OpenAPI document (every error it declares, in the one
shape), 405s that say what is allowed, the docs pages without internet, and CORS for browsers."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from llm_platform.app import create_app
from llm_platform.core.errors import error_body
from llm_platform.core.settings import Settings
from tests.conftest import TINY_MODEL, PlatformHelper
from tests.responses import assert_error, bearer
from tests.workers import wait_registered

ORIGIN = "https://chat.example.com"
PREFLIGHT = {
    "Origin": ORIGIN,
    "Access-Control-Request-Method": "POST",
    "Access-Control-Request-Headers": "authorization, content-type",
}
EXPOSED = {
    "x-request-id",
    "x-ratelimit-remaining-requests",
    "x-ratelimit-reset-tokens",
    "retry-after",
    "x-cache",
}
ERROR_REF = "#/components/schemas/ErrorResponse"


@pytest.fixture(scope="module")
def document() -> dict:
    """The OpenAPI document as /openapi.json serves it (no lifespan: building it needs no database)."""
    return TestClient(create_app(Settings())).get("/openapi.json").json()


def _operations(document: dict) -> Iterator[tuple[str, str, dict]]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            yield method.upper(), path, operation


def _takes_cursor(operation: dict) -> bool:
    """A paged list: it takes the `cursor` of a previous page."""
    return any(parameter["name"] == "cursor" for parameter in operation.get("parameters", []))


def _error_schema(response: dict) -> str | None:
    return response.get("content", {}).get("application/json", {}).get("schema", {}).get("$ref")


# --- the OpenAPI document -------------------------------------------------------------------------


def test_every_error_an_operation_declares_has_the_one_shape(document):
    schemas = document["components"]["schemas"]
    assert "HTTPValidationError" not in schemas and "ValidationError" not in schemas
    assert schemas["ErrorResponse"]["required"] == ["error"]
    detail = schemas["ErrorDetail"]
    shape = set(error_body("message", "type", "code")["error"])  # what the handlers send
    assert set(detail["properties"]) == shape == set(detail["required"])
    for method, path, operation in _operations(document):
        for status, response in operation["responses"].items():
            if status.startswith(("4", "5")) and (method, path, status) != ("GET", "/readyz", "503"):
                assert _error_schema(response) == ERROR_REF, (method, path, status, response)


def test_errors_declared_where_they_occur(document):
    for method, path, operation in _operations(document):
        declared = set(operation["responses"])
        where = (method, path, sorted(declared))
        if "/v1/" in path:  # OpenAI's status for a malformed request, and so ours there
            assert "422" not in declared, where
        if operation.get("security"):
            assert {"401", "403", "503"} <= declared, where  # 403: a suspended tenant's credentials
        if "{" in path:
            assert "404" in declared, where  # another tenant's, or a missing, resource
        if "requestBody" in operation:
            assert {"400", "413"} <= declared and ("422" in declared or "/v1/" in path), where
        if operation.get("parameters") and "/v1/" not in path:
            assert "422" in declared, where
        if _takes_cursor(operation):
            assert "400" in declared, where  # a cursor the API did not make
    paths = document["paths"]
    for path in ("/v1/chat/completions", "/{tenant}/v1/chat/completions", "/{tenant}/chat"):
        assert {"400", "404", "429", "503"} <= set(paths[path]["post"]["responses"]), path
    paged = {path for _, path, operation in _operations(document) if _takes_cursor(operation)}
    assert {"/{tenant}/conversations", "/{tenant}/kb/documents", "/{tenant}/admin/audit"} <= paged
    assert "400" in paths["/v1/models"]["get"]["responses"]  # a platform admin names no tenant there
    assert "429" in paths["/auth/token"]["post"]["responses"]
    assert "401" in paths["/auth/logout"]["post"]["responses"]  # a spent or unknown refresh token
    for path in ("/admin/tenants", "/admin/models", "/{tenant}/admin/users"):
        assert "409" in paths[path]["post"]["responses"], path
    readiness = paths["/readyz"]["get"]["responses"]
    assert (
        readiness["503"]["content"]["application/json"]["schema"]
        == (readiness["200"]["content"]["application/json"]["schema"])
    )


def test_headers_of_declared_errors(document):
    responses = document["paths"]["/v1/chat/completions"]["post"]["responses"]
    assert "WWW-Authenticate" in responses["401"]["headers"]
    assert "Retry-After" in responses["429"]["headers"] and "Retry-After" in responses["503"]["headers"]


def test_streaming_routes_declare_server_sent_events(document):
    for path in ("/v1/chat/completions", "/{tenant}/v1/chat/completions", "/{tenant}/chat"):
        content = document["paths"][path]["post"]["responses"]["200"]["content"]
        assert set(content) == {"application/json", "text/event-stream"}, path
        assert content["application/json"]["schema"]["$ref"].startswith("#/components/schemas/")


def test_405_names_every_method_the_path_allows(client):
    # /admin/tenants is two routes (GET and POST): the Allow header lists both, not the first one found.
    response = client.delete("/admin/tenants")
    assert_error(response, 405, "method_not_allowed")
    assert response.headers["allow"] == "GET, POST"
    models = client.put("/admin/models/some/model")  # GET and PATCH; the tenant models route has neither
    assert_error(models, 405, "method_not_allowed")
    assert models.headers["allow"] == "GET, PATCH"
    assert client.post("/healthz").headers["allow"] == "GET"


# --- the docs pages, offline ----------------------------------------------------------------------

_URL = re.compile(r"""(?:src|href|spec-url)\s*=\s*["']([^"']+)["']|url:\s*'([^']+)'""")


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_load_everything_from_this_server(page, settings):
    with TestClient(create_app(settings)) as client:
        html = client.get(page)
        assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
        urls = [a or b for a, b in _URL.findall(html.text)]
        assert len(urls) >= 3, html.text  # the script, the stylesheet or favicon, the OpenAPI document
        for url in urls:
            assert url.startswith("/") and not url.startswith("//"), url
            assert client.get(url).status_code == 200, url
        assert "http://" not in html.text and "https://" not in html.text, html.text


# --- CORS -----------------------------------------------------------------------------------------


@pytest.fixture
def cors_platform(settings, clean_state) -> Iterator[PlatformHelper]:  # type: ignore[no-untyped-def]
    configured = settings.model_copy(update={"cors_allow_origins": [ORIGIN]})
    with TestClient(create_app(configured)) as client:
        yield PlatformHelper(client, configured)


def test_no_cors_headers_unless_configured(client):
    preflight = client.options("/v1/chat/completions", headers=PREFLIGHT)
    assert not any(name.startswith("access-control-") for name in preflight.headers)
    simple = client.get("/healthz", headers={"Origin": ORIGIN})
    assert not any(name.startswith("access-control-") for name in simple.headers)


def test_preflight_from_an_allowed_origin_only(cors_platform):
    client = cors_platform.client
    allowed = client.options("/v1/chat/completions", headers=PREFLIGHT)
    assert allowed.status_code == 200, allowed.text
    assert allowed.headers["access-control-allow-origin"] == ORIGIN
    assert "POST" in allowed.headers["access-control-allow-methods"]
    assert "authorization" in allowed.headers["access-control-allow-headers"].lower()
    assert "access-control-allow-credentials" not in allowed.headers  # bearer headers, not cookies

    other = client.options("/v1/chat/completions", headers=PREFLIGHT | {"Origin": "https://evil.example"})
    assert_error(other, 400, "cors_not_allowed")
    assert not any(name.startswith("access-control-") for name in other.headers)


def test_cross_origin_responses_expose_what_clients_read(cors_platform):
    response = cors_platform.client.get("/auth/me", headers={"Origin": ORIGIN})
    assert_error(response, 401)  # errors too: a browser may read them
    assert response.headers["access-control-allow-origin"] == ORIGIN
    assert set(response.headers["access-control-expose-headers"].split(", ")) >= EXPOSED


def test_credentials_only_when_turned_on(settings, clean_state):
    configured = settings.model_copy(update={"cors_allow_origins": [ORIGIN], "cors_allow_credentials": True})
    with TestClient(create_app(configured)) as client:
        preflight = client.options("/v1/chat/completions", headers=PREFLIGHT)
    assert preflight.headers["access-control-allow-credentials"] == "true"


def test_a_streamed_chat_answer_carries_the_cors_headers(cors_platform, tiny_worker, redis_url):
    wait_registered(redis_url, TINY_MODEL)
    tenant = cors_platform.create_tenant()
    key = cors_platform.create_key(tenant)["key"]
    body = {"model": TINY_MODEL, "messages": [{"role": "user", "content": "Hi"}], "stream": True}
    body |= {"max_tokens": 4}
    with cors_platform.client.stream(
        "POST", "/v1/chat/completions", json=body, headers=bearer(key) | {"Origin": ORIGIN}
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["access-control-allow-origin"] == ORIGIN
        assert set(response.headers["access-control-expose-headers"].split(", ")) >= EXPOSED
        assert response.headers["x-cache"] == "miss"
        assert "data: [DONE]" in "".join(response.iter_text())
