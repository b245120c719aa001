"""The bundled SmolLM2, end to end: converted from the package's GGUF, served by a worker, answering."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.responses import assert_status, bearer, sse_chunks
from tests.workers import WorkerProcess, wait_registered, worker_env

# Converted weights are cached beside the checkout, so only the first run pays the ~20 s conversion.
MODELS_DIR = Path(__file__).resolve().parents[2] / "var" / "models"


@pytest.fixture(scope="module")
def smollm2_worker(database_url, redis_url, tmp_path_factory):  # type: ignore[no-untyped-def]
    env = worker_env(
        database_url, redis_url, tmp_path_factory.mktemp("smollm2"), LLMP_MODELS_DIR=str(MODELS_DIR)
    )
    worker = WorkerProcess("smollm2-135m", env).wait_ready(timeout_s=300)
    yield worker
    worker.stop()


def test_bundled_model_knows_the_capital_of_france(smollm2_worker, platform, tenant_a, redis_url):
    wait_registered(redis_url, "smollm2-135m")
    key = bearer(platform.create_key(tenant_a)["key"])
    response = platform.client.post(
        "/v1/chat/completions",
        headers=key,
        json={
            "model": "smollm2-135m",
            "temperature": 0,
            "max_tokens": 30,
            "messages": [{"role": "user", "content": "What is the capital of France?"}],
        },
    )
    assert response.status_code == 200, response.text
    assert "Paris" in response.json()["choices"][0]["message"]["content"]


def test_streamed_chinese_and_emoji_equal_the_whole_answer(smollm2_worker, platform, tenant_a, redis_url):
    wait_registered(redis_url, "smollm2-135m")
    key = bearer(platform.create_key(tenant_a)["key"])
    body = {
        "model": "smollm2-135m",
        "temperature": 0,
        "max_tokens": 40,
        "messages": [{"role": "user", "content": "Translate to Chinese and add emoji: I love 🍜 and 🐼."}],
    }
    whole = assert_status(platform.client.post("/v1/chat/completions", headers=key, json=body)).json()
    answer = whole["choices"][0]["message"]["content"]
    assert any(ord(ch) > 0x2E80 for ch in answer), answer  # it did answer with CJK or emoji
    fresh = {**key, "Cache-Control": "no-cache"}  # the engine's own stream, not the cache's replay
    streamed = platform.client.post("/v1/chat/completions", headers=fresh, json=body | {"stream": True})
    assert streamed.status_code == 200, streamed.text
    chunks = sse_chunks(streamed)
    pieces = [c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"]]
    assert "".join(pieces).encode() == answer.encode()
    # Only a final flush (max_tokens cut a character in half) may carry a replacement character.
    spoken = [piece for piece in pieces if piece]
    assert all("\ufffd" not in piece for piece in spoken[:-1])
