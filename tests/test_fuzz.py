"""Fuzzing every operation of the OpenAPI document (schemathesis), as a platform admin and as a tenant's
API key, against a fresh app on the real Postgres and Redis.

Each response must not be a 5xx, must have a status, content type and body the document declares.
No model worker runs: model calls answer 503 `model_unavailable`, a declared response. The examples
are few per operation and derandomized, so a failure reproduces run after run.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from schemathesis.checks import not_a_server_error as schemathesis_not_a_server_error
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from llm_platform.app import create_app
from llm_platform.settings import Settings
from tests.conftest import PlatformHelper, bearer

FUZZ_TENANT = "fuzz"  # fills every {tenant} path parameter: the caller's own, so calls get past the 404
BASE_URL = f"http://{asgi.HOST}"

# The document needs no database, so it is read at collection (schemathesis' lazy, fixture-loaded
# schema does not run under pytest 9); each test then calls a fresh app of its own.
SCHEMA = schemathesis.openapi.from_dict(
    create_app(Settings()).openapi(),
    config=schemathesis.Config.from_dict(
        {
            "parameters": {"path.tenant": FUZZ_TENANT},
            # Generated credentials would only test, every time, that a random token is refused.
            "generation": {"with-security-parameters": False},
            # Reproductions show what was sent (max_tokens, refresh_token...), credentials excepted.
            "output": {"sanitization": {"sensitive-markers": ["authorization"]}},
        }
    ),
)


def not_a_server_error(ctx, response, case):  # type: ignore[no-untyped-def]
    """schemathesis' check, but for the one 5xx expected here: no worker serves the model."""
    if response.status_code == 503 and b'"code":"model_unavailable"' in response.content:
        return None
    return schemathesis_not_a_server_error(ctx, response, case)


CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture(params=["platform_admin", "tenant_api_key"])
def fuzz_client(request, settings, clean_state) -> Iterator[tuple[asgi.ASGIClient, dict[str, str]]]:  # type: ignore[no-untyped-def]
    """Schemathesis' in-process client (a requests session) on a fresh app, and a credential."""
    with asgi.get_client(create_app(settings)) as client:  # runs the app's lifespan
        platform = PlatformHelper(client, settings)  # type: ignore[arg-type]
        tenant = platform.create_tenant(FUZZ_TENANT)
        if request.param == "platform_admin":
            headers = platform.admin_headers
        else:
            headers = bearer(platform.create_key(tenant, scopes=["inference", "admin"])["key"])
        yield client, headers
    asgi.shutdown_lifespans()


@SCHEMA.parametrize()
@hypothesis_settings(
    max_examples=15, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck)
)
def test_fuzz(case: schemathesis.Case, fuzz_client) -> None:  # type: ignore[no-untyped-def]
    client, headers = fuzz_client
    case.call_and_validate(base_url=BASE_URL, session=client, headers=headers, checks=CHECKS)
