"""Chat over the real path: API -> registry -> a worker process -> engine, and back (tiny model)."""

from __future__ import annotations

import pytest

from models_registry.engine.loader import chat_prompt_ids, load_chat_model
from tests.conftest import QUESTION, TINY_CONTEXT, TINY_MODEL
from tests.responses import assert_error, assert_status, bearer, sse_chunks, sse_events


@pytest.fixture
def uncached_caller(tenant_a_caller):  # type: ignore[no-untyped-def]
    """tenant_a_caller asking for fresh answers: these tests compare what the engine itself streams and
    returns."""
    client, headers = tenant_a_caller
    return client, {**headers, "Cache-Control": "no-cache"}


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):  # type: ignore[no-untyped-def]
    return load_chat_model(tiny_model_dir)[1]


def _completion(client, headers, **body):  # type: ignore[no-untyped-def]
    return client.post(
        "/v1/chat/completions", json={"model": TINY_MODEL, "messages": QUESTION, **body}, headers=headers
    )


def test_openai_non_streaming_answer_with_exact_usage(uncached_caller, tokenizer):
    client, headers = uncached_caller
    # ignore_eos: the answer runs to max_tokens whatever the random model says, so the counts are exact.
    response = _completion(client, headers, temperature=0, max_tokens=12, ignore_eos=True)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["object"] == "chat.completion" and body["model"] == TINY_MODEL
    assert body["choices"][0]["message"]["role"] == "assistant"
    assert body["choices"][0]["finish_reason"] == "length"
    usage = body["usage"]
    assert usage["prompt_tokens"] == len(chat_prompt_ids(tokenizer, QUESTION))
    assert usage["completion_tokens"] == 12
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def test_openai_stream_adds_up_to_the_non_streamed_answer(uncached_caller):
    client, headers = uncached_caller
    whole = _completion(client, headers, temperature=0, max_tokens=20).json()
    stream = _completion(
        client, headers, temperature=0, max_tokens=20, stream=True, stream_options={"include_usage": True}
    )
    assert stream.status_code == 200 and stream.headers["content-type"].startswith("text/event-stream")
    assert sse_events(stream)[-1] == "[DONE]"
    chunks = sse_chunks(stream)
    assert all(c["object"] == "chat.completion.chunk" and c["id"] == chunks[0]["id"] for c in chunks)
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == whole["choices"][0]["message"]["content"]
    finish = [
        c["choices"][0]["finish_reason"] for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]
    ]
    assert finish == [whole["choices"][0]["finish_reason"]]
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == whole["usage"]


def test_tenant_chat_api_plain_and_streamed(uncached_caller, tenant_a):
    client, headers = uncached_caller
    body = {
        "prompt": "What is the capital of France?",
        "history": [],
        "max_tokens": 15,
        "temperature": 0,
        "model": TINY_MODEL,
    }
    plain = client.post(f"/{tenant_a.slug}/chat", json=body, headers=headers)
    assert plain.status_code == 200, plain.text
    answer = plain.json()
    assert answer["history"] == [
        {"role": "user", "content": body["prompt"]},
        {"role": "assistant", "content": answer["response"]},
    ]
    assert answer["model"] == TINY_MODEL
    streamed = client.post(f"/{tenant_a.slug}/chat", json=body | {"stream": True}, headers=headers)
    assert streamed.status_code == 200, streamed.text
    events = sse_chunks(streamed)
    assert "".join(e.get("text", "") for e in events) == answer["response"]
    assert events[-1]["done"] is True and events[-1]["usage"] == answer["usage"]
    assert {e["message_id"] for e in events} == {events[0]["message_id"]}


def test_tenant_scoped_openai_path_and_isolation(uncached_caller, platform, tenant_a, tenant_b):
    client, headers = uncached_caller
    path = f"/{tenant_a.slug}/v1/chat/completions"
    body = {"model": TINY_MODEL, "messages": QUESTION, "max_tokens": 3}
    assert client.post(path, json=body, headers=headers).status_code == 200
    assert_error(client.post(f"/{tenant_b.slug}/v1/chat/completions", json=body, headers=headers), 404)
    assert_error(client.get(f"/{tenant_b.slug}/v1/models", headers=headers), 404)


def test_models_a_tenant_may_not_use_answer_404(uncached_caller, platform, tenant_a):
    client, headers = uncached_caller
    models = client.get("/v1/models", headers=headers).json()
    assert models["object"] == "list" and TINY_MODEL in [m["id"] for m in models["data"]]
    assert_status(
        platform.client.patch(
            f"/{tenant_a.slug}/admin/limits",
            json={"allowed_models": ["smollm2-135m"]},
            headers=platform.admin_headers,
        )
    )
    assert TINY_MODEL not in [m["id"] for m in client.get("/v1/models", headers=headers).json()["data"]]
    refused = assert_error(_completion(client, headers, max_tokens=3), 404, "model_not_found")
    assert TINY_MODEL in refused["message"]
    unknown = client.post(
        "/v1/chat/completions", json={"model": "gpt-9", "messages": QUESTION}, headers=headers
    )
    assert assert_error(unknown, 404, "model_not_found")["param"] == "model"


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        ({"messages": []}, 400, "messages"),
        ({"messages": [{"role": "wizard", "content": "hi"}]}, 400, "messages.0.role"),
        ({"max_tokens": -5}, 400, "max_tokens"),
        ({"temperature": 3}, 400, "temperature"),
        ({"n": 2}, 400, "n"),
        ({"tools": [{"type": "function", "function": {"name": "f"}}]}, 400, "tools"),
        ({"logprobs": True}, 400, "logprobs"),
        ({"best_of": 3}, 400, "best_of"),
        ({"stop": ["a", "b", "c", "d", "e"]}, 400, "stop"),
        ({"max_tokens": 10**9}, 400, "max_tokens"),
    ],
)
def test_bad_input_gets_a_clear_4xx(uncached_caller, body, status, param):
    client, headers = uncached_caller
    error = assert_error(_completion(client, headers, **body), status)
    assert error["param"] == param


def test_prompt_longer_than_the_context_says_by_how_much(uncached_caller, tokenizer):
    client, headers = uncached_caller
    long_question = [{"role": "user", "content": "word " * TINY_CONTEXT}]
    body = {"model": TINY_MODEL, "messages": long_question, "max_tokens": 5}
    response = client.post("/v1/chat/completions", json=body, headers=headers)
    error = assert_error(response, 400, "context_length_exceeded")
    prompt_tokens = len(chat_prompt_ids(tokenizer, long_question))
    assert str(TINY_CONTEXT) in error["message"] and str(prompt_tokens) in error["message"]


def test_huge_and_malformed_bodies(uncached_caller):
    client, headers = uncached_caller
    huge = {"model": TINY_MODEL, "messages": [{"role": "user", "content": "x" * 10 * 1024 * 1024}]}
    assert_error(client.post("/v1/chat/completions", json=huge, headers=headers), 413, "request_too_large")
    malformed = client.post(
        "/v1/chat/completions", content=b"{nope", headers=headers | {"Content-Type": "application/json"}
    )
    assert_error(malformed, 400)
    not_utf8 = client.post(
        "/v1/chat/completions",
        content=b'{"model": "\xff"}',
        headers=headers | {"Content-Type": "application/json"},
    )
    assert_error(not_utf8, 400)


def test_a_model_without_workers_answers_503_naming_it(uncached_caller, db_engine):
    from tests.conftest import register_model

    register_model(db_engine, "orphan-model", "/nonexistent", 512)
    client, headers = uncached_caller
    response = client.post(
        "/v1/chat/completions", json={"model": "orphan-model", "messages": QUESTION}, headers=headers
    )
    error = assert_error(response, 503, "model_unavailable")
    assert "orphan-model" in error["message"] and int(response.headers["retry-after"]) >= 1


def test_model_endpoints_take_either_credential_header_and_declare_both(uncached_caller, platform, tenant_a):
    client, headers = uncached_caller
    key = headers["Authorization"].removeprefix("Bearer ")
    body = {"model": TINY_MODEL, "messages": QUESTION, "max_tokens": 2}
    for path in ("/v1/chat/completions", f"/{tenant_a.slug}/v1/chat/completions"):
        assert client.post(path, json=body, headers={"X-API-Key": key}).status_code == 200
        assert_error(client.post(path, json=body), 401, "invalid_credentials")
        assert_error(client.post(path, json=body, headers={"Authorization": f"Basic {key}"}), 401)
        refused = client.post(path, json=body, headers=bearer("sk-not_a_key"))
        assert_error(refused, 401, "invalid_credentials")
        assert refused.headers["www-authenticate"] == 'Bearer realm="llm-platform"'
    simple = client.post(
        f"/{tenant_a.slug}/chat",
        json={"prompt": "Hi", "model": TINY_MODEL, "max_tokens": 2},
        headers={"X-API-Key": key},
    )
    assert simple.status_code == 200
    schema = client.get("/openapi.json").json()
    for path in ("/v1/chat/completions", "/{tenant}/v1/chat/completions", "/{tenant}/chat"):
        assert schema["paths"][path]["post"]["security"] == [{"HTTPBearer": []}, {"APIKeyHeader": []}]
    assert set(schema["components"]["securitySchemes"]) == {"HTTPBearer", "APIKeyHeader"}


def test_keys_without_inference_scope_and_platform_admins(uncached_caller, platform, tenant_a):
    client, _ = uncached_caller
    admin_only = platform.create_key(tenant_a, scopes=["admin"])["key"]
    assert_error(_completion(client, bearer(admin_only), max_tokens=2), 403, "missing_scope")
    assert_error(_completion(client, platform.admin_headers, max_tokens=2), 400, "tenant_required")
    path = f"/{tenant_a.slug}/v1/chat/completions"
    as_admin = client.post(
        path,
        json={"model": TINY_MODEL, "messages": QUESTION, "max_tokens": 2},
        headers=platform.admin_headers,
    )
    assert as_admin.status_code == 200


def test_retrieve_a_model_on_both_paths(uncached_caller, platform, tenant_a, tenant_b):
    client, headers = uncached_caller
    [listed] = [m for m in client.get("/v1/models", headers=headers).json()["data"] if m["id"] == TINY_MODEL]
    for path in (f"/v1/models/{TINY_MODEL}", f"/{tenant_a.slug}/v1/models/{TINY_MODEL}"):
        model = client.get(path, headers=headers)
        assert model.status_code == 200, model.text
        assert model.json() == listed
    assert_error(client.get(f"/{tenant_b.slug}/v1/models/{TINY_MODEL}", headers=headers), 404)
    assert_error(client.get("/v1/models/gpt-9", headers=headers), 404, "model_not_found")
    platform.set_limits(tenant_a, allowed_models=["smollm2-135m"])
    assert_error(client.get(f"/v1/models/{TINY_MODEL}", headers=headers), 404, "model_not_found")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/v1/completions"),
        ("POST", "/v1/responses"),
        ("GET", "/v1/responses/resp_123"),
        ("POST", "/v1/moderations"),
        ("POST", "/v1/images/generations"),
        ("POST", "/v1/audio/transcriptions"),
        ("DELETE", "/v1/files/file-1"),
        ("GET", "/v1/fine_tuning/jobs"),
        ("POST", "/{tenant}/v1/completions"),
    ],
)
def test_openai_endpoints_we_do_not_serve_answer_404_saying_so(uncached_caller, tenant_a, method, path):
    client, headers = uncached_caller
    response = client.request(method, path.format(tenant=tenant_a.slug), headers=headers)
    error = assert_error(response, 404, "unsupported_endpoint")
    assert "not supported" in error["message"] and "POST /v1/chat/completions" in error["message"]
    assert "POST /v1/embeddings" in error["message"]
    assert "GET /v1/models/{model}," in error["message"]  # as OpenAI documents it, not `{model:path}`
    assert error["type"] == "invalid_request_error"


def test_served_paths_keep_their_own_answers(uncached_caller):
    client, headers = uncached_caller
    assert_error(client.get("/v1/chat/completions", headers=headers), 405)
    assert_error(client.get("/v1/no-such-thing", headers=headers), 404, "not_found")
