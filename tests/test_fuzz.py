"""Fuzzing every operation of the OpenAPI document (schemathesis), as a platform admin and as a tenant's
API key, against a fresh app on the real Postgres and Redis.

Each response must not be a 5xx, must have a status, content type and body the document declares.
No model worker runs: model calls answer 503 `model_unavailable`, a declared response. The examples
are few per operation and derandomized, so a failure reproduces run after run.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

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
from sqlalchemy import text

from llm_platform.app import create_app
from llm_platform.core.settings import Settings
from tests.conftest import PlatformHelper, register_model
from tests.responses import bearer

FUZZ_TENANT, FUZZ_MODEL = "fuzz", "fuzz-model"
BASE_URL = f"http://{asgi.HOST}"

# The document needs no database, so it is read at collection (schemathesis' lazy, fixture-loaded
# schema does not run under pytest 9); each test then calls a fresh app of its own.
SCHEMA = schemathesis.openapi.from_dict(
    create_app(Settings()).openapi(),
    config=schemathesis.Config.from_dict(
        {
            # Generated credentials would only test, every time, that a random token is refused.
            "generation": {"with-security-parameters": False},
            # Reproductions show what was sent (max_tokens, refresh_token...), credentials excepted.
            "output": {"sanitization": {"sensitive-markers": ["authorization"]}},
        }
    ),
)


def not_a_server_error(ctx, response, case):  # type: ignore[no-untyped-def]
    """schemathesis' check, but for the 5xx expected here: no worker serves the model, so model calls
    answer 503 model_unavailable and /readyz says it is not ready."""
    if response.status_code == 503 and b'"code":"model_unavailable"' in response.content:
        return None
    if response.status_code == 503 and case.path == "/readyz":
        return None
    return schemathesis_not_a_server_error(ctx, response, case)


CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture
def catalogue_restored(db_engine) -> Iterator[None]:  # type: ignore[no-untyped-def]
    """The models the fuzzer registers are removed after it: the catalogue outlives the per-test
    cleanup, and a fuzzed model of the `openai` backend would have later tests call its base_url."""
    with db_engine.connect() as connection:
        before = list(connection.scalars(text("SELECT name FROM models")))
    yield
    with db_engine.begin() as connection:
        connection.execute(text("DELETE FROM models WHERE NOT (name = ANY(:before))"), {"before": before})


@dataclass
class FuzzTarget:
    client: asgi.ASGIClient  # schemathesis' in-process client (a requests session) on a fresh app
    headers: dict[str, str]  # the credential
    # Real values for path parameters, so that calls get past the 404 to the code behind it.
    path_values: dict[str, str]


@pytest.fixture(params=["platform_admin", "tenant_api_key"])
def fuzz_target(request, settings, db_engine, clean_state, catalogue_restored) -> Iterator[FuzzTarget]:  # type: ignore[no-untyped-def]
    register_model(db_engine, FUZZ_MODEL, "/nonexistent", 512)  # for PATCH /admin/models/{name}
    with asgi.get_client(create_app(settings)) as client:  # runs the app's lifespan
        platform = PlatformHelper(client, settings)  # type: ignore[arg-type]
        tenant = platform.create_tenant(FUZZ_TENANT)
        key = platform.create_key(tenant, scopes=["inference", "admin"])
        headers = platform.admin_headers if request.param == "platform_admin" else bearer(key["key"])
        conversation = client.post(f"/{FUZZ_TENANT}/conversations", json={}, headers=headers)
        assert conversation.status_code == 201, conversation.text
        path_values = {
            "tenant": FUZZ_TENANT,
            "name": FUZZ_MODEL,
            "user_id": platform.create_user(FUZZ_TENANT, "member@fuzz.example.com")["id"],
            "key_id": platform.create_key(tenant)["id"],  # not the credential: a DELETE revokes it
            "conversation_id": conversation.json()["id"],
        }
        yield FuzzTarget(client, headers, path_values)
    asgi.shutdown_lifespans()


@SCHEMA.parametrize()
@hypothesis_settings(
    max_examples=25, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck)
)
def test_fuzz(case: schemathesis.Case, fuzz_target: FuzzTarget) -> None:
    for name in case.path_parameters.keys() & fuzz_target.path_values.keys():
        case.path_parameters[name] = fuzz_target.path_values[name]
    case.call_and_validate(
        base_url=BASE_URL, session=fuzz_target.client, headers=fuzz_target.headers, checks=CHECKS
    )
