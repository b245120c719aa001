"""Lone UTF-16 surrogates (`"\\ud800"` in JSON) in a chat body: a clear 4xx naming the field, never a 500."""

from __future__ import annotations

import json

import pytest
from fastapi.responses import JSONResponse
from starlette.websockets import WebSocketDisconnect

from llm_platform.core.errors import error_body
from llm_platform.core.unicode_text import has_lone_surrogate, printable
from tests.conftest import register_model
from tests.responses import assert_error, bearer

LONE = "a\ud800b"
OK = [{"role": "user", "content": "Hi"}]


MODEL = "unicode-model"  # in the catalogue, served by no worker: nothing here gets past validation


@pytest.fixture
def key(platform, tenant_a, db_engine) -> str:  # type: ignore[no-untyped-def]
    register_model(db_engine, MODEL, "/nonexistent", 512)
    return platform.create_key(tenant_a)["key"]


def _post(client, path: str, body: dict, key: str):  # type: ignore[no-untyped-def]
    # json.dumps escapes the surrogate as `\ud800`: valid UTF-8 JSON, which Python decodes into a lone one.
    return client.post(
        path, content=json.dumps(body), headers=bearer(key) | {"Content-Type": "application/json"}
    )


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": [{"role": "user", "content": LONE}]}, "messages.0.content"),
        ({"messages": [{"role": "user", "content": [{"type": "text", "text": LONE}]}]}, "messages.0.content"),
        ({"messages": [{"role": "system", "content": LONE}, *OK]}, "messages.0.content"),
        ({"messages": OK, "stop": LONE}, "stop"),
        ({"messages": OK, "stop": ["ok", LONE]}, "stop"),
        ({"messages": OK, "model": LONE}, "model"),
        ({"messages": OK, "user": LONE}, "user"),
        ({"messages": OK, "metadata": {"note": LONE}}, "metadata"),
    ],
)
@pytest.mark.parametrize("door", ["/v1/chat/completions", "/{tenant}/v1/chat/completions"])
def test_openai_doors_answer_400_naming_the_field(platform, tenant_a, key, door, body, param):
    response = _post(platform.client, door.format(tenant=tenant_a.slug), {"model": MODEL, **body}, key)
    error = assert_error(response, 400, "invalid_request")
    assert error["param"] == param and error["type"] == "invalid_request_error"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"prompt": LONE}, "prompt"),
        ({"system": LONE}, "system"),
        ({"history": [{"role": "user", "content": LONE}]}, "history.0.content"),
        ({"model": LONE}, "model"),
        ({"conversation_id": LONE}, "conversation_id"),
    ],
)
def test_tenant_chat_answers_like_any_invalid_field(platform, tenant_a, key, body, param):
    # 422, what every other invalid field of /{tenant}/chat answers (the 400 is the OpenAI doors' rule).
    response = _post(platform.client, f"/{tenant_a.slug}/chat", {"prompt": "Hi", "model": MODEL, **body}, key)
    error = assert_error(response, 422, "invalid_request")
    assert error["param"] == param


def test_a_field_name_with_a_lone_surrogate_is_refused_too(platform, tenant_a, key):
    response = _post(platform.client, "/v1/chat/completions", {"model": MODEL, "messages": OK, LONE: 1}, key)
    assert_error(response, 400, "invalid_request")  # no param: the name itself is what is wrong


def test_an_error_that_echoes_client_input_can_always_be_written():
    # Whatever a message or param quotes (a model name, a parameter), the response must be encodable.
    body = error_body(f"The model '{LONE}' does not exist", "invalid_request_error", "model_not_found", LONE)
    sent = json.loads(JSONResponse(body).body)
    assert sent["error"]["message"] == "The model 'a\ufffdb' does not exist"
    assert sent["error"]["param"] == "a\ufffdb"


def test_websocket_chat_frames_are_checked_too(platform, tenant_a, key):
    with platform.client.websocket_connect(f"/{tenant_a.slug}/ws/chat?token={key}") as ws:
        assert ws.receive_json()["type"] == "ready"
        for frame, param in (({"prompt": LONE}, "prompt"), ({"model": LONE}, "model")):
            ws.send_text(json.dumps({"type": "chat", "prompt": "Hi", "model": MODEL, **frame}))
            error = ws.receive_json()
            assert error["type"] == "error" and error["error"]["code"] == "invalid_request"
            assert error["error"]["param"] == param
        ws.send_text(json.dumps({"type": LONE}))  # an unknown type is named back, printably
        assert ws.receive_json()["error"]["param"] == "type"


def test_printable_replaces_only_lone_surrogates():
    assert not has_lone_surrogate("plain ascii") and not has_lone_surrogate("caf\u00e9 \U0001f600")
    assert has_lone_surrogate("\udfff") and printable("x\ud800y\udc00") == "x\ufffdy\ufffd"
    assert printable("caf\u00e9") == "caf\u00e9"


def test_a_websocket_auth_frame_with_a_lone_surrogate_is_bad_credentials(platform, tenant_a, key):
    with (
        pytest.raises(WebSocketDisconnect) as closed,
        platform.client.websocket_connect(f"/{tenant_a.slug}/ws/chat") as ws,
    ):
        ws.send_text(json.dumps({"type": "auth", "token": key + LONE}))
        ws.receive_json()
    assert closed.value.code == 4401
