"""LLMP_LOG_FORMAT=json: every line a JSON object, and one line per request that says who asked what
of which model, with what result, and never a credential."""

from __future__ import annotations

import json

from fastapi.testclient import TestClient

from llm_platform.app import create_app
from tests.conftest import QUESTION, TINY_MODEL
from tests.responses import bearer


def _json_lines(text: str) -> list[dict]:
    lines = [line for line in text.splitlines() if line.startswith("{")]
    return [json.loads(line) for line in lines]


def test_one_json_line_per_request_with_who_what_and_how_much(served, tenant_a, settings, capfd):
    created = served.create_key(tenant_a)
    key = created["key"]
    json_settings = settings.model_copy(update={"log_format": "json"})
    capfd.readouterr()
    with TestClient(create_app(json_settings)) as client:
        body = {"model": TINY_MODEL, "messages": QUESTION, "max_tokens": 5, "temperature": 0}
        answer = client.post("/v1/chat/completions", json=body, headers=bearer(key))
        assert answer.status_code == 200, answer.text
        refused = client.get(f"/{tenant_a.slug}/admin/usage", headers={"Authorization": f"Bearer {key}x"})
        assert refused.status_code == 401
    output = capfd.readouterr().err
    lines = _json_lines(output)
    assert lines and all(
        {"time", "level", "logger", "message", "request_id"} <= line.keys() for line in lines
    )
    requests = [line for line in lines if line["logger"] == "llm_platform.requests"]
    [chat] = [line for line in requests if line["route"] == "/v1/chat/completions"]
    usage = answer.json()["usage"]
    assert chat["request_id"] == answer.headers["x-request-id"]
    assert (chat["method"], chat["status"], chat["model"]) == ("POST", 200, TINY_MODEL)
    assert chat["tenant_id"] == tenant_a.id
    assert chat["actor"] == f"api_key:{created['id']}"
    assert chat["key_prefix"] == created["prefix"]
    assert (chat["prompt_tokens"], chat["completion_tokens"]) == (
        usage["prompt_tokens"],
        usage["completion_tokens"],
    )
    assert chat["cache_hit"] is False and chat["latency_ms"] >= 0
    [denied] = [line for line in requests if line["route"] == "/{tenant}/admin/usage"]
    assert denied["status"] == 401 and denied["request_id"] == refused.headers["x-request-id"]
    # The key's secret part appears nowhere, not even the wrong key's; the prefix (no secret) may.
    secret = key.split("_", 1)[1]
    assert secret not in output
    # And uvicorn's access log is not doubled by ours (the test client has none; `llmp serve` turns it off).
    assert not [line for line in lines if line["logger"] == "uvicorn.access"]


def test_text_stays_the_default(served, tenant_a, settings, capfd):
    key = served.create_key(tenant_a)["key"]
    capfd.readouterr()
    with TestClient(create_app(settings)) as client:
        body = {"model": TINY_MODEL, "messages": QUESTION, "max_tokens": 3}
        assert client.post("/v1/chat/completions", json=body, headers=bearer(key)).status_code == 200
    assert not _json_lines(capfd.readouterr().err)
