"""The response cache: complete answers to deterministic requests, per tenant.

Redis when configured (shared by replicas), an in-process LRU bounded in bytes otherwise. The key
hashes the tenant, the model, the messages and every parameter that changes the output, so entries
never cross tenants. The cache is an optimisation: an unreachable Redis makes it a miss, never an error.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import uuid
from dataclasses import asdict, dataclass
from typing import Protocol

from cachetools import TLRUCache
from redis.asyncio import Redis
from redis.exceptions import RedisError

from models_registry.worker.protocol import GenerateRequest
from tenants.policy import CachePolicy

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CachedAnswer:
    pieces: tuple[str, ...]  # the text as it was streamed, so a replay sends the same chunks
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    references_used: int = 0  # how many of the request's knowledge-base passages its prompt held

    def to_bytes(self) -> bytes:
        return json.dumps(asdict(self), ensure_ascii=False, separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, raw: bytes) -> CachedAnswer:
        data = json.loads(raw)
        return cls(
            tuple(data["pieces"]),
            data["finish_reason"],
            data["prompt_tokens"],
            data["completion_tokens"],
            data.get("references_used", 0),  # entries written before grounded answers existed
        )


def cache_key(tenant_id: uuid.UUID, request: GenerateRequest) -> str:
    material = {
        "model": request.model,
        "messages": [[message.role, message.content] for message in request.messages],
        # Resolved (the model's defaults are filled in), but max_tokens only as asked for: the platform's
        # default is no part of the key, so entries keep their keys whatever LLMP_DEFAULT_MAX_TOKENS is.
        "params": request.params.model_dump(exclude={"max_tokens_is_default"})
        | {"max_tokens": request.params.asked_max_tokens()},
    }
    if request.references:  # a grounded answer: the passages it was given are part of what it answers
        material["references"] = [[reference.title, reference.text] for reference in request.references]
    canonical = json.dumps(material, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return f"llmp:cache:{tenant_id}:{hashlib.sha256(canonical.encode()).hexdigest()}"


def cacheable(request: GenerateRequest, policy: CachePolicy) -> bool:
    """Only answers that a repeat would reproduce: greedy, or seeded; sampled ones if the tenant opts in."""
    params = request.params
    return policy.enabled and (params.temperature == 0 or params.seed is not None or policy.sampled)


class ResponseCache(Protocol):
    """Entries by key: chat answers (`get`, `put`), or any other deterministic result as bytes (the
    embeddings'), under keys that name their tenant as cache_key's do."""

    async def get(self, key: str) -> CachedAnswer | None: ...

    async def put(self, key: str, answer: CachedAnswer, ttl_s: int, max_bytes: int) -> bool: ...

    async def get_bytes(self, key: str) -> bytes | None: ...

    async def put_bytes(self, key: str, raw: bytes, ttl_s: int, max_bytes: int) -> bool: ...


class RedisResponseCache:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def get(self, key: str) -> CachedAnswer | None:
        raw = await self.get_bytes(key)
        return CachedAnswer.from_bytes(raw) if raw is not None else None

    async def put(self, key: str, answer: CachedAnswer, ttl_s: int, max_bytes: int) -> bool:
        return await self.put_bytes(key, answer.to_bytes(), ttl_s, max_bytes)

    async def get_bytes(self, key: str) -> bytes | None:
        try:
            return await self._redis.get(key)
        except (RedisError, OSError) as exc:
            logger.warning("response cache bypassed (Redis unreachable: %s)", exc)
            return None

    async def put_bytes(self, key: str, raw: bytes, ttl_s: int, max_bytes: int) -> bool:
        if len(raw) > max_bytes:
            return False
        try:
            await self._redis.set(key, raw, ex=ttl_s)
        except (RedisError, OSError) as exc:
            logger.warning("response not cached (Redis unreachable: %s)", exc)
            return False
        return True


class MemoryResponseCache:
    """Least recently used entries go first once `max_bytes` is reached; each expires after its TTL."""

    def __init__(self, max_bytes: int) -> None:
        self._entries: TLRUCache[str, tuple[bytes, float]] = TLRUCache(
            maxsize=max_bytes,
            ttu=lambda _key, value, now: now + value[1],
            timer=time.monotonic,
            getsizeof=lambda value: len(value[0]),
        )

    async def get(self, key: str) -> CachedAnswer | None:
        entry = self._entries.get(key)
        return CachedAnswer.from_bytes(entry[0]) if entry is not None else None

    async def put(self, key: str, answer: CachedAnswer, ttl_s: int, max_bytes: int) -> bool:
        return await self.put_bytes(key, answer.to_bytes(), ttl_s, max_bytes)

    async def get_bytes(self, key: str) -> bytes | None:
        entry = self._entries.get(key)
        return entry[0] if entry is not None else None

    async def put_bytes(self, key: str, raw: bytes, ttl_s: int, max_bytes: int) -> bool:
        if len(raw) > max_bytes or len(raw) > self._entries.maxsize:
            return False
        self._entries[key] = (raw, float(ttl_s))
        return True


@dataclass(frozen=True)
class CacheSlot:
    """Where a fresh answer goes once it is complete."""

    cache: ResponseCache
    key: str
    ttl_s: int
    max_bytes: int

    async def store(self, answer: CachedAnswer) -> None:
        await self.cache.put(self.key, answer, self.ttl_s, self.max_bytes)
