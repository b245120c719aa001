"""The `openai` backend: models served by any OpenAI-compatible server (vLLM, TGI, Ollama), by base URL.

The upstream's stream is translated into the same events our workers send, so everything above
dispatch (streaming formats, usage, conversations) works the same. Usage comes from the upstream's own
count (`stream_options.include_usage`). Upstream error details are not passed to clients beyond what
concerns their request (a 400's message, shortened).
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
from aiohttp.http_exceptions import HttpProcessingError

from llm_platform.core.errors import BadRequest, ServiceUnavailable
from models_registry.worker.protocol import GenerateRequest, WorkerEvent

logger = logging.getLogger(__name__)
_MAX_UPSTREAM_MESSAGE = 300


@dataclass(frozen=True)
class Upstream:
    base_url: str  # e.g. http://vllm:8000/v1
    model: str  # the upstream's own model id (the catalogue's `source`)
    api_key: str | None = None


def _body(upstream: Upstream, request: GenerateRequest) -> dict[str, object]:
    params = request.params
    body: dict[str, object] = {
        "model": upstream.model,
        "messages": [m.model_dump() for m in request.messages],
        "stream": True,
        "stream_options": {"include_usage": True},
        "temperature": params.temperature,
        "top_p": params.top_p,
    }
    optional = {
        "max_tokens": params.max_tokens,
        "seed": params.seed,
        "stop": params.stop or None,
        "presence_penalty": params.presence_penalty or None,
        "frequency_penalty": params.frequency_penalty or None,
        # vLLM's extensions; sent only when asked for, since plain OpenAI servers refuse them.
        "top_k": params.top_k or None,
        "repetition_penalty": params.repetition_penalty if params.repetition_penalty != 1.0 else None,
        "ignore_eos": params.ignore_eos or None,
    }
    body.update({key: value for key, value in optional.items() if value is not None})
    return body


async def generate_upstream(
    client: aiohttp.ClientSession, upstream: Upstream, request: GenerateRequest
) -> AsyncIterator[WorkerEvent]:
    headers = {"Authorization": f"Bearer {upstream.api_key}"} if upstream.api_key else {}
    url = upstream.base_url.rstrip("/") + "/chat/completions"
    try:
        async with client.post(url, json=_body(upstream, request), headers=headers) as response:
            if response.status != 200:
                await _raise_for(response, request.model)
            finish_reason, usage = None, None
            async for raw in response.content:
                line = raw.decode().strip()
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                chunk = json.loads(line.removeprefix("data: "))
                if "error" in chunk:
                    yield WorkerEvent(finished=True, finish_reason="error", error="upstream error")
                    return
                usage = chunk.get("usage") or usage
                for choice in chunk.get("choices") or []:
                    text = (choice.get("delta") or {}).get("content")
                    if text:
                        yield WorkerEvent(text=text)
                    finish_reason = choice.get("finish_reason") or finish_reason
            usage = usage or {}
            yield WorkerEvent(
                finished=True,
                finish_reason="length" if finish_reason == "length" else "stop",
                prompt_tokens=usage.get("prompt_tokens", 0),
                completion_tokens=usage.get("completion_tokens", 0),
            )
    # Transport failures, the parser's refusals, and lines that are not JSON: the upstream is unusable.
    except (aiohttp.ClientError, TimeoutError, HttpProcessingError, ValueError) as exc:
        logger.warning("upstream of %s failed: %s", request.model, exc)
        raise ServiceUnavailable(
            f"The model '{request.model}' is temporarily unavailable",
            code="model_unavailable",
            headers={"Retry-After": "2"},
        ) from exc


async def _raise_for(response: aiohttp.ClientResponse, model: str) -> None:
    if response.status == 400:
        try:
            message = str(json.loads(await response.read())["error"]["message"])[:_MAX_UPSTREAM_MESSAGE]
        except (ValueError, KeyError, TypeError):
            message = "the request was rejected"
        raise BadRequest(f"The model '{model}' rejected the request: {message}", code="invalid_request")
    logger.warning("upstream of %s answered %s", model, response.status)
    raise ServiceUnavailable(
        f"The model '{model}' is temporarily unavailable",
        code="model_unavailable",
        headers={"Retry-After": "2"},
    )
