"""A worker that answers nonsense: the client gets our error, never the worker's bytes or a 500."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.responses import StreamingResponse
from redis.asyncio import Redis

from models_registry.dispatch import Dispatcher, ModelUnavailable
from models_registry.registry import InProcessWorkerRegistry, RedisWorkerRegistry
from models_registry.worker.protocol import EMBED_PATH, GENERATE_PATH, EmbedRequest, WorkerEvent, WorkerInfo
from tests.conftest import register_model
from tests.responses import assert_error, bearer
from tests.workers import free_port

MODEL = "faulty"
SECRET_LINE = b"Traceback (most recent call last): worker internals\n"
TEXT = (WorkerEvent(text="Hel", prompt_tokens=3, completion_tokens=1).model_dump_json() + "\n").encode()
# Longer than the dispatcher's read buffer allows for one event line.
HUGE_LINE = b'{"text": "' + b"x" * (3 << 20) + b'"}\n'


class FaultyWorker:
    """A worker whose every answer is `body`, served on a thread by uvicorn."""

    def __init__(self) -> None:
        self.body: list[bytes] = []
        app = FastAPI()

        async def lines():  # type: ignore[no-untyped-def]
            for line in self.body:
                yield line

        @app.post(GENERATE_PATH)
        async def generate() -> StreamingResponse:
            return StreamingResponse(lines(), media_type="application/x-ndjson")

        @app.post(EMBED_PATH)
        async def embed() -> StreamingResponse:
            return StreamingResponse(lines(), media_type="application/json")

        @app.post("/v1/chat/completions")  # as an OpenAI-compatible upstream
        async def upstream() -> StreamingResponse:
            return StreamingResponse(lines(), media_type="text/event-stream")

        self.port = free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="error"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> FaultyWorker:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "the fake worker did not start"
            time.sleep(0.02)
        return self

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture
def faulty_worker(db_engine, redis_url, clean_state) -> Iterator[FaultyWorker]:  # type: ignore[no-untyped-def]
    register_model(db_engine, MODEL, "unused", 512)
    with FaultyWorker() as worker:
        info = WorkerInfo("faulty-1", f"http://127.0.0.1:{worker.port}", (MODEL,), 8, 0, time.time())

        async def register() -> None:
            redis = Redis.from_url(redis_url)
            await RedisWorkerRegistry(redis, ttl_s=60).heartbeat(info)
            await redis.aclose()

        asyncio.run(register())
        yield worker


def _ask(platform, key: str, stream: bool = False):  # type: ignore[no-untyped-def]
    body = {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}], "stream": stream}
    return platform.client.post("/v1/chat/completions", json=body, headers=bearer(key))


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param([SECRET_LINE], id="not-an-event"),
        pytest.param([], id="empty"),
        pytest.param([HUGE_LINE], id="line-over-the-buffer"),
    ],
)
def test_a_broken_answer_before_any_token_is_a_503(faulty_worker, platform, tenant_a, answer) -> None:  # type: ignore[no-untyped-def]
    faulty_worker.body = answer
    key = platform.create_key(tenant_a)["key"]
    response = _ask(platform, key)
    assert_error(response, 503, "model_unavailable")
    assert "Traceback" not in response.text and "internals" not in response.text


def test_an_answer_cut_after_its_first_token_is_a_model_error(faulty_worker, platform, tenant_a) -> None:  # type: ignore[no-untyped-def]
    faulty_worker.body = [TEXT]  # then the body ends, without the final event
    key = platform.create_key(tenant_a)["key"]
    response = _ask(platform, key)
    assert_error(response, 503, "model_error")
    assert "Hel" not in response.text  # half an answer is not passed off as a whole one


def test_a_stream_broken_after_its_first_token_ends_with_an_error_frame(  # type: ignore[no-untyped-def]
    faulty_worker, platform, tenant_a
) -> None:
    faulty_worker.body = [TEXT, SECRET_LINE]
    key = platform.create_key(tenant_a)["key"]
    response = _ask(platform, key, stream=True)
    assert response.status_code == 200  # the first token was already on its way
    frames = [line for line in response.text.splitlines() if line.startswith("data: ")]
    token = next(i for i, frame in enumerate(frames) if '"Hel"' in frame)
    assert any('"model_error"' in frame for frame in frames[token + 1 :])
    assert "Traceback" not in response.text and "internals" not in response.text


def test_an_upstream_that_answers_nonsense_is_a_503(faulty_worker, platform, tenant_a) -> None:  # type: ignore[no-untyped-def]
    registered = platform.client.post(
        "/admin/models",
        headers=platform.admin_headers,
        json={
            "name": "faulty-upstream",
            "backend": "openai",
            "base_url": f"http://127.0.0.1:{faulty_worker.port}/v1",
            "source": "whatever",
            "context_length": 512,
        },
    )
    assert registered.status_code == 201, registered.text
    key = platform.create_key(tenant_a)["key"]
    body = {"model": "faulty-upstream", "messages": [{"role": "user", "content": "Hi"}]}
    for answer in ([b"data: " + SECRET_LINE], [HUGE_LINE]):
        faulty_worker.body = answer
        response = platform.client.post("/v1/chat/completions", json=body, headers=bearer(key))
        assert_error(response, 503, "model_unavailable")
        assert "Traceback" not in response.text


def test_an_embedding_worker_that_answers_nonsense_is_unavailable() -> None:
    async def scenario(port: int) -> None:
        registry = InProcessWorkerRegistry(ttl_s=60)
        await registry.heartbeat(WorkerInfo("e1", f"http://127.0.0.1:{port}", ("enc",), 8, 0, time.time()))
        dispatcher = Dispatcher(registry, "secret")
        try:
            with pytest.raises(ModelUnavailable):
                await dispatcher.embed(EmbedRequest(request_id="r", tenant="t", model="enc", inputs=["hi"]))
        finally:
            await dispatcher.aclose()

    with FaultyWorker() as worker:
        worker.body = [b'{"vectors": "not vectors"}']
        asyncio.run(scenario(worker.port))


def test_streams_that_fail_after_their_first_token_are_audited_as_failed(  # type: ignore[no-untyped-def]
    faulty_worker, platform, tenant_a
) -> None:
    """The audit row says what the client's stream said (its error event: model_error, a 503), not the
    200 that went out with the first token; on every door."""
    faulty_worker.body = [TEXT, SECRET_LINE]
    key = platform.create_key(tenant_a)["key"]
    assert _ask(platform, key, stream=True).status_code == 200
    simple = {"prompt": "Hi", "model": MODEL, "stream": True}
    streamed = platform.client.post(f"/{tenant_a.slug}/chat", json=simple, headers=bearer(key))
    assert streamed.status_code == 200 and '"model_error"' in streamed.text
    with platform.client.websocket_connect(f"/{tenant_a.slug}/ws/chat?token={key}") as ws:
        ws.receive_json()
        ws.send_json({"type": "chat", **simple})
        assert ws.receive_json()["type"] == "chunk"
        assert ws.receive_json()["error"]["code"] == "model_error"
    rows = platform.audit_rows(tenant_a)
    statuses = {row["action"]: row["status"] for row in rows if row["model"] == MODEL}
    assert statuses == {"chat_completions": 503, "chat": 503, "ws_chat": 503}
