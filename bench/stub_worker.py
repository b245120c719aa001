"""A model worker that answers at once: the internal generate protocol, registered in Redis like a real
worker, so benchmarks measure the API layer and not a model.

    python -m bench.stub_worker --model stub --port 9100 --redis-url redis://127.0.0.1:6379/1

Every answer is the text "ok" (1 prompt token, 1 completion token, finish_reason "stop").
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn
from fastapi import FastAPI, Header, HTTPException
from fastapi.responses import StreamingResponse
from redis.asyncio import Redis

from models_registry.registry import RedisWorkerRegistry
from models_registry.worker.protocol import (
    GENERATE_PATH,
    HEALTH_PATH,
    GenerateRequest,
    WorkerEvent,
    WorkerInfo,
)

HEARTBEAT_S, TTL_S = 1.0, 5.0
_TEXT = WorkerEvent(text="ok", prompt_tokens=1, completion_tokens=1).model_dump_json(exclude_defaults=True)
_DONE = WorkerEvent(
    finished=True, finish_reason="stop", prompt_tokens=1, completion_tokens=1
).model_dump_json()
ANSWER = (_TEXT + "\n" + _DONE + "\n").encode()


def build_app(model: str, port: int, redis_url: str, secret: str) -> FastAPI:
    info = WorkerInfo(f"stub-{uuid.uuid4().hex[:8]}", f"http://127.0.0.1:{port}", (model,), 10_000, 0, 0.0)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        redis = Redis.from_url(redis_url)
        registry = RedisWorkerRegistry(redis, TTL_S)

        async def beat() -> None:
            while True:
                await registry.heartbeat(WorkerInfo(**{**info.__dict__, "heartbeat_at": time.time()}))
                await asyncio.sleep(HEARTBEAT_S)

        task = asyncio.create_task(beat())
        # "Answers at once" includes no collector pauses: a full collection over the start-up objects
        # stalls every client of both measurements at once (bench/RESULTS.md, gateway, second round).
        gc.freeze()
        yield
        task.cancel()
        await registry.remove(info.worker_id)
        await redis.aclose()

    app = FastAPI(lifespan=lifespan)

    @app.post(GENERATE_PATH)
    async def generate(request: GenerateRequest, authorization: str = Header("")) -> StreamingResponse:
        if authorization != f"Bearer {secret}":
            raise HTTPException(401)

        async def lines() -> AsyncIterator[bytes]:
            yield ANSWER

        return StreamingResponse(lines(), media_type="application/x-ndjson")

    @app.get(HEALTH_PATH)
    async def health() -> dict[str, str]:
        return {"status": "ok", "worker_id": info.worker_id, "model": model}

    return app


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="stub")
    parser.add_argument("--port", type=int, default=9100)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/1")
    parser.add_argument("--secret", required=True, help="the API's LLMP_WORKER_SECRET")
    args = parser.parse_args()
    app = build_app(args.model, args.port, args.redis_url, args.secret)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
