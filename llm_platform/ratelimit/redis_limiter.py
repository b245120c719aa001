"""The limiter shared by every API replica: sliding-window logs in Redis, updated by Lua scripts.

One script admits a request atomically across all three dimensions (nothing is counted when any of
them refuses), with Redis's own clock, so replicas with drifting clocks still agree. Another settles a
lease: its token reservation becomes the real usage and its concurrency slot is freed. A sliding log
admits exactly the limit within any 60 s (no burst at a fixed window's edge); `limits`' moving window
does the same for requests alone, but not reservations that are reconciled later, hence our scripts.
Keys share a hash tag per scope, so a Redis Cluster keeps them on one node.
"""

from __future__ import annotations

from redis.asyncio import Redis

from llm_platform.ratelimit.admission import WINDOW_MS, Admission, Limits

_ADMIT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[7])
local rpm, tpm, conc = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local reserve, lease, lease_ttl = tonumber(ARGV[4]), ARGV[5], tonumber(ARGV[6])
local req, tok, tokv, toksum, slots = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]

redis.call('ZREMRANGEBYSCORE', req, '-inf', now - window)
local expired = redis.call('ZRANGEBYSCORE', tok, '-inf', now - window)
if #expired > 0 then
  local freed = 0
  for _, v in ipairs(redis.call('HMGET', tokv, unpack(expired))) do freed = freed + (tonumber(v) or 0) end
  redis.call('DECRBY', toksum, freed)
  redis.call('HDEL', tokv, unpack(expired))
  redis.call('ZREMRANGEBYSCORE', tok, '-inf', now - window)
end
redis.call('ZREMRANGEBYSCORE', slots, '-inf', now)

local used_req = redis.call('ZCARD', req)
local used_tok = tonumber(redis.call('GET', toksum) or '0')
local function reset_of(key)
  local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  if #oldest == 0 then return 0 end
  return tonumber(oldest[2]) + window - now
end

if rpm >= 0 and used_req + 1 > rpm then
  return {0, 'requests', used_req, used_tok, reset_of(req), reset_of(tok)}
end
if tpm >= 0 and used_tok + reserve > tpm then
  local wait = -1
  if reserve <= tpm then
    local need, freed = used_tok + reserve - tpm, 0
    local entries = redis.call('ZRANGE', tok, 0, -1, 'WITHSCORES')
    for i = 1, #entries, 2 do
      freed = freed + (tonumber(redis.call('HGET', tokv, entries[i])) or 0)
      if freed >= need then wait = tonumber(entries[i + 1]) + window - now break end
    end
  end
  return {0, 'tokens', used_req, used_tok, reset_of(req), wait}
end
if conc >= 0 and redis.call('ZCARD', slots) + 1 > conc then
  return {0, 'concurrency', used_req, used_tok, reset_of(req), reset_of(tok)}
end

redis.call('ZADD', req, now, lease)
redis.call('PEXPIRE', req, window)
if reserve > 0 then
  redis.call('ZADD', tok, now, lease)
  redis.call('HSET', tokv, lease, reserve)
  redis.call('INCRBY', toksum, reserve)
  for _, key in ipairs({tok, tokv, toksum}) do redis.call('PEXPIRE', key, window) end
end
if conc >= 0 then
  redis.call('ZADD', slots, now + lease_ttl, lease)
  redis.call('PEXPIRE', slots, lease_ttl)
end
return {1, '', used_req + 1, used_tok + reserve, reset_of(req), reset_of(tok)}
"""

_SETTLE = """
local reserved = tonumber(redis.call('HGET', KEYS[3], ARGV[1]) or '-1')
if reserved >= 0 then
  local used = tonumber(ARGV[2])
  redis.call('HSET', KEYS[3], ARGV[1], used)
  redis.call('INCRBY', KEYS[4], used - reserved)
end
redis.call('ZREM', KEYS[5], ARGV[1])
return reserved
"""

LEASE_TTL_MS = 15 * 60_000  # a crashed replica's concurrency slots free themselves after this


def _keys(scope: str) -> list[str]:
    base = f"llmp:rl:{{{scope}}}"
    return [f"{base}:req", f"{base}:tok", f"{base}:tokv", f"{base}:toksum", f"{base}:slots"]


def _limit(value: int | None) -> int:
    return -1 if value is None else value


class RedisLimiter:
    def __init__(self, redis: Redis, window_ms: int = WINDOW_MS, lease_ttl_ms: int = LEASE_TTL_MS) -> None:
        self._admit = redis.register_script(_ADMIT)
        self._settle = redis.register_script(_SETTLE)
        self._window_ms = window_ms
        self._lease_ttl_ms = lease_ttl_ms

    async def admit(self, scope: str, limits: Limits, lease: str, reserve_tokens: int) -> Admission:
        args = [
            _limit(limits.requests_per_minute),
            _limit(limits.tokens_per_minute),
            _limit(limits.concurrent_requests),
            reserve_tokens,
            lease,
            self._lease_ttl_ms,
            self._window_ms,
        ]
        allowed, reason, requests, tokens, requests_reset, tokens_reset = await self._admit(
            _keys(scope), args
        )
        return Admission(
            allowed=bool(allowed),
            reason=(reason.decode() if isinstance(reason, bytes) else reason) or None,
            requests_used=int(requests),
            tokens_used=int(tokens),
            requests_reset_ms=int(requests_reset),
            tokens_reset_ms=int(tokens_reset),
        )

    async def settle(self, scope: str, lease: str, used_tokens: int) -> None:
        await self._settle(_keys(scope), [lease, used_tokens])
