"""Dispatch: send a generation to the least-loaded live worker serving the model, and stream it back.

A worker that fails before the first token is retried once on another worker; after the first token a
failure ends the stream with an error event (the client already has part of the answer). Worker
internals never reach the client: their errors are mapped to our own messages.

The HTTP client is aiohttp, not httpx: on this hot path (every model call) it costs a seventh of the
CPU (bench/RESULTS.md, gateway, second round), and a stream read
to its end returns its connection to the pool instead of a new TCP connection per call.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import replace

import aiohttp
from aiohttp.http_exceptions import HttpProcessingError

from llm_platform.core.errors import BadRequest, ServiceUnavailable
from llm_platform.core.middleware import current_request_id
from models_registry.registry import WorkerRegistry
from models_registry.upstream import Upstream, generate_upstream
from models_registry.worker.protocol import (
    EMBED_PATH,
    GENERATE_PATH,
    READY,
    EmbedRequest,
    EmbedResponse,
    GenerateRequest,
    WorkerEvent,
    WorkerInfo,
)

logger = logging.getLogger(__name__)

# Worker answers that are the client's fault, passed on as our own 400s.
_CLIENT_ERROR_CODES = {"context_length_exceeded", "invalid_request"}
RETRY_AFTER_S = 2
# Reads may wait long (a long prompt prefills for seconds), connecting may not.
_TIMEOUT = aiohttp.ClientTimeout(total=None, sock_connect=3.0, sock_read=300.0)
_MAX_CONNECTIONS = 1000
_READ_BUFFER_BYTES = 1 << 20  # an event line may be this long (a long final text, an error)
# What a failed call to a worker raises: aiohttp's errors, its read timeouts, and its parser's
# refusals (a line over the read buffer raises LineTooLong, which is none of the others).
_TRANSPORT_ERRORS = (aiohttp.ClientError, asyncio.TimeoutError, HttpProcessingError)


class ModelUnavailable(ServiceUnavailable):
    code = "model_unavailable"


class WorkerFailed(Exception):
    """The worker failed after streaming had begun."""


class Dispatcher:
    def __init__(
        self,
        registry: WorkerRegistry,
        worker_secret: str,
        upstream_api_keys: dict[str, str] | None = None,
    ) -> None:
        self._upstream_api_keys = upstream_api_keys or {}
        self._registry = registry
        self._http: aiohttp.ClientSession | None = None
        self._headers = {"Authorization": f"Bearer {worker_secret}", "Content-Type": "application/json"}
        self._in_flight: Counter[str] = Counter()  # this process's requests per worker, between heartbeats

    async def generate(
        self, request: GenerateRequest, upstream: Upstream | None = None
    ) -> AsyncIterator[WorkerEvent]:
        """Streams the model's events (from our workers, or an OpenAI-compatible upstream); the last one
        has `finished` set."""
        if upstream is not None:
            upstream = replace(upstream, api_key=self._upstream_api_keys.get(request.model))
            async for event in generate_upstream(self._client(), upstream, request):
                yield event
            return
        busy = False
        for worker in await self._candidates(request.model):
            started = False
            self._in_flight[worker.worker_id] += 1
            try:
                async for event in self._stream_from(worker, request):
                    started = True
                    yield event
                return
            except _WorkerBusy:
                busy = True
            except (*_TRANSPORT_ERRORS, _WorkerBroken) as exc:
                if started:
                    logger.warning("worker %s failed mid-stream: %s", worker.worker_id, exc)
                    raise WorkerFailed(str(exc)) from exc
                logger.warning("worker %s failed before the first token: %s", worker.worker_id, exc)
            finally:
                self._in_flight[worker.worker_id] -= 1
        raise _exhausted(request.model, busy)

    async def embed(self, request: EmbedRequest) -> EmbedResponse:
        """Vectors from the least-loaded worker serving the embedding model (one retry elsewhere)."""
        busy = False
        for worker in await self._candidates(request.model):
            self._in_flight[worker.worker_id] += 1
            try:
                async with self._client().post(
                    worker.url + EMBED_PATH, data=request.model_dump_json(), headers=self._request_headers()
                ) as response:
                    if response.status == 200:
                        return _embeddings(await response.read())
                    await self._raise_for(response)
            except _WorkerBusy:
                busy = True
            except (*_TRANSPORT_ERRORS, _WorkerBroken) as exc:
                logger.warning("worker %s failed to embed: %s", worker.worker_id, exc)
            finally:
                self._in_flight[worker.worker_id] -= 1
        raise _exhausted(request.model, busy)

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None

    def _client(self) -> aiohttp.ClientSession:
        """One connection pool for the process, made on first use (aiohttp wants a running loop)."""
        if self._http is None or self._http.closed:
            self._http = aiohttp.ClientSession(
                timeout=_TIMEOUT,
                connector=aiohttp.TCPConnector(limit=_MAX_CONNECTIONS),
                read_bufsize=_READ_BUFFER_BYTES,
            )
        return self._http

    def _request_headers(self) -> dict[str, str]:
        """The worker's log lines carry the request id of the API request they serve."""
        return {**self._headers, "X-Request-ID": current_request_id()}

    async def _candidates(self, model: str) -> list[WorkerInfo]:
        """The least-loaded ready worker of the model, then the next (for one retry)."""
        live = await self._registry.live_workers(model)
        candidates = sorted((worker for worker in live if worker.state == READY), key=self._load)
        if not candidates:
            raise ModelUnavailable(
                f"No worker is serving the model '{model}' right now; try again shortly",
                headers={"Retry-After": str(RETRY_AFTER_S)},
            )
        return candidates[:2]

    def _load(self, worker: WorkerInfo) -> float:
        return (worker.load + self._in_flight[worker.worker_id]) / max(1, worker.capacity)

    async def _stream_from(self, worker: WorkerInfo, request: GenerateRequest) -> AsyncIterator[WorkerEvent]:
        async with self._client().post(
            worker.url + GENERATE_PATH, data=request.model_dump_json(), headers=self._request_headers()
        ) as response:
            if response.status != 200:
                await self._raise_for(response)
            final: WorkerEvent | None = None
            try:
                async for line in response.content:
                    if line.strip():
                        event = WorkerEvent.model_validate_json(line)
                        if event.finished:
                            final = event
                        else:
                            yield event
            except ValueError as exc:  # a line that is not an event
                raise _unreadable(exc) from exc
            if final is None:
                raise _WorkerBroken("stream ended without a final event")
        # Handed on only once the body has ended: the caller stops at the final event, and a response
        # read to its end puts its connection back in the pool (a new TCP connection per call otherwise).
        yield final

    @staticmethod
    async def _raise_for(response: aiohttp.ClientResponse) -> None:
        try:
            error = json.loads(await response.read())["error"]
        except (ValueError, KeyError, TypeError):
            error = {}
        if response.status == 400 and error.get("code") in _CLIENT_ERROR_CODES:
            raise BadRequest(str(error.get("message")), code=error["code"], param=error.get("param"))
        if response.status == 503:
            raise _WorkerBusy()
        raise _WorkerBroken(f"worker answered {response.status}")


def _embeddings(body: bytes) -> EmbedResponse:
    try:
        return EmbedResponse.model_validate_json(body)
    except ValueError as exc:  # not what a worker answers: treated as a failed worker, never a 500
        raise _unreadable(exc) from exc


def _unreadable(exc: ValueError) -> _WorkerBroken:
    return _WorkerBroken(f"unreadable answer: {str(exc)[:200]}")


def _exhausted(model: str, busy: bool) -> ServiceUnavailable:
    if busy:
        return ServiceUnavailable(
            f"The model '{model}' is at capacity; retry shortly",
            code="model_overloaded",
            headers={"Retry-After": str(RETRY_AFTER_S)},
        )
    return ModelUnavailable(
        f"The model '{model}' is temporarily unavailable", headers={"Retry-After": str(RETRY_AFTER_S)}
    )


class _WorkerBusy(Exception):
    pass


class _WorkerBroken(Exception):
    pass
