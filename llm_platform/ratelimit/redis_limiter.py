"""The limiter shared by every API replica: sliding-window logs and quota counters in Redis, updated by
Lua scripts.

One script admits a request atomically across all its scopes (tenant and API key) and every dimension
(requests, tokens, concurrency, monthly and daily quota): nothing is counted when any of them refuses.
It reads Redis's own clock, so replicas with drifting clocks still agree. Another script settles a lease:
its token reservation becomes the real usage and its concurrency slot is freed. A sliding log admits
exactly the limit within any 60 s (no burst at a fixed window's edge). `limits`' moving window does the
same for plain counts, but not reservations reconciled later, nor several scopes at once: hence ours.
"""

from __future__ import annotations

from redis.asyncio import Redis

from llm_platform.core.redis_batch import ScriptBatcher
from llm_platform.ratelimit.admission import WINDOW_MS, Decision, Periods, Scope, ScopeUsage

_ADMIT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window, lease, lease_ttl = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3])
local reserve, n = tonumber(ARGV[4]), tonumber(ARGV[5])
local KN, AN = 8, 5

local function reset_of(key)
  local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  if #oldest == 0 then return 0 end
  return tonumber(oldest[2]) + window - now
end

local scopes = {}
for i = 0, n - 1 do
  local k, a = i * KN, 5 + i * AN
  local s = {req = KEYS[k + 1], tok = KEYS[k + 2], tokv = KEYS[k + 3], toksum = KEYS[k + 4],
             slots = KEYS[k + 5], leases = KEYS[k + 6], qm = KEYS[k + 7], qd = KEYS[k + 8],
             rpm = tonumber(ARGV[a + 1]), tpm = tonumber(ARGV[a + 2]), conc = tonumber(ARGV[a + 3]),
             qm_limit = tonumber(ARGV[a + 4]), qd_limit = tonumber(ARGV[a + 5])}
  redis.call('ZREMRANGEBYSCORE', s.req, '-inf', now - window)
  local expired = redis.call('ZRANGEBYSCORE', s.tok, '-inf', now - window)
  if #expired > 0 then
    local freed = 0
    for _, v in ipairs(redis.call('HMGET', s.tokv, unpack(expired))) do freed = freed + (tonumber(v) or 0) end
    redis.call('DECRBY', s.toksum, freed)
    redis.call('HDEL', s.tokv, unpack(expired))
    redis.call('ZREMRANGEBYSCORE', s.tok, '-inf', now - window)
  end
  redis.call('ZREMRANGEBYSCORE', s.slots, '-inf', now)
  s.month, s.day = 0, 0
  for _, q in ipairs({{'qm', 'qm_limit', 'month'}, {'qd', 'qd_limit', 'day'}}) do
    if s[q[2]] >= 0 then
      local v = redis.call('GET', s[q[1]])
      if not v then return {0, 'rebuild', i, q[3]} end
      s[q[3]] = tonumber(v)
    else
      redis.call('DEL', s[q[1]])  -- a quota set again later is rebuilt from the ledger, never stale
    end
  end
  s.used_req = redis.call('ZCARD', s.req)
  s.used_tok = tonumber(redis.call('GET', s.toksum) or '0')
  s.req_reset, s.tok_reset = reset_of(s.req), reset_of(s.tok)
  scopes[i + 1] = s
end

local function answer(allowed, reason, index)
  local out = {allowed, reason, index, ''}
  for _, s in ipairs(scopes) do
    for _, v in ipairs({s.used_req, s.used_tok, s.req_reset, s.tok_reset, s.month, s.day}) do
      out[#out + 1] = v
    end
  end
  return out
end

-- Quotas first: a spent budget is the answer that lasts, whatever the per-minute limits say.
for i, s in ipairs(scopes) do
  if s.qm_limit >= 0 and s.month + reserve > s.qm_limit then return answer(0, 'monthly_quota', i - 1) end
  if s.qd_limit >= 0 and s.day + reserve > s.qd_limit then return answer(0, 'daily_quota', i - 1) end
end
for i, s in ipairs(scopes) do
  if s.rpm >= 0 and s.used_req + 1 > s.rpm then return answer(0, 'requests', i - 1) end
  if s.tpm >= 0 and s.used_tok + reserve > s.tpm then
    local wait = -1
    if reserve <= s.tpm then
      local need, freed = s.used_tok + reserve - s.tpm, 0
      local entries = redis.call('ZRANGE', s.tok, 0, -1, 'WITHSCORES')
      for j = 1, #entries, 2 do
        freed = freed + (tonumber(redis.call('HGET', s.tokv, entries[j])) or 0)
        if freed >= need then wait = tonumber(entries[j + 1]) + window - now break end
      end
    end
    s.tok_reset = wait
    return answer(0, 'tokens', i - 1)
  end
  if s.conc >= 0 and redis.call('ZCARD', s.slots) + 1 > s.conc then return answer(0, 'concurrency', i - 1) end
end

for _, s in ipairs(scopes) do
  redis.call('ZADD', s.req, now, lease)
  redis.call('PEXPIRE', s.req, window)
  if reserve > 0 then
    redis.call('ZADD', s.tok, now, lease)
    redis.call('HSET', s.tokv, lease, reserve)
    redis.call('INCRBY', s.toksum, reserve)
    for _, key in ipairs({s.tok, s.tokv, s.toksum}) do redis.call('PEXPIRE', key, window) end
  end
  if s.conc >= 0 then
    redis.call('ZADD', s.slots, now + lease_ttl, lease)
    redis.call('PEXPIRE', s.slots, lease_ttl)
  end
  redis.call('HSET', s.leases, lease, reserve)
  redis.call('PEXPIRE', s.leases, lease_ttl)
  if s.qm_limit >= 0 then s.month = redis.call('INCRBY', s.qm, reserve) end
  if s.qd_limit >= 0 then s.day = redis.call('INCRBY', s.qd, reserve) end
  s.used_req, s.used_tok = s.used_req + 1, s.used_tok + reserve
  s.req_reset, s.tok_reset = reset_of(s.req), reset_of(s.tok)
end
return answer(1, '', -1)
"""

_SETTLE = """
local lease, used = ARGV[1], tonumber(ARGV[2])
for i = 0, tonumber(ARGV[3]) - 1 do
  local tokv, toksum, slots, leases = KEYS[i * 6 + 1], KEYS[i * 6 + 2], KEYS[i * 6 + 3], KEYS[i * 6 + 4]
  local reserved = tonumber(redis.call('HGET', leases, lease) or '-1')
  if reserved >= 0 then
    redis.call('HDEL', leases, lease)
    local delta = used - reserved
    if redis.call('HEXISTS', tokv, lease) == 1 then
      redis.call('HSET', tokv, lease, used)
      redis.call('INCRBY', toksum, delta)
    end
    -- A counter flushed meanwhile is rebuilt from the ledger, which already has this request.
    for _, q in ipairs({KEYS[i * 6 + 5], KEYS[i * 6 + 6]}) do
      if redis.call('EXISTS', q) == 1 then redis.call('INCRBY', q, delta) end
    end
  end
  redis.call('ZREM', slots, lease)
end
return 1
"""

_PEEK = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[1]))
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if #oldest == 0 then return {0, 0} end
return {redis.call('ZCARD', KEYS[1]), tonumber(oldest[2]) + tonumber(ARGV[1]) - now}
"""

LEASE_TTL_MS = 15 * 60_000  # a crashed replica's concurrency slots free themselves after this


def _base(scope: Scope) -> str:
    return f"llmp:rl:{{{scope.group}}}:{scope.name}"


def quota_key(scope: Scope, period: str) -> str:
    return f"{_base(scope)}:q:{period}"


def _admit_keys(scope: Scope, periods: Periods) -> list[str]:
    base = _base(scope)
    return [
        *(f"{base}:{part}" for part in ("req", "tok", "tokv", "toksum", "slots", "leases")),
        quota_key(scope, periods.month),
        quota_key(scope, periods.day),
    ]


def _limit(value: int | None) -> int:
    return -1 if value is None else value


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class RedisLimiter:
    def __init__(self, redis: Redis, window_ms: int = WINDOW_MS, lease_ttl_ms: int = LEASE_TTL_MS) -> None:
        self._redis = redis
        batcher = ScriptBatcher(redis)  # concurrent requests' admissions and settlements: one round trip
        self._admit = batcher.script(_ADMIT)
        self._settle = batcher.script(_SETTLE)
        self._peek = redis.register_script(_PEEK)
        self._window_ms = window_ms
        self._lease_ttl_ms = lease_ttl_ms

    async def admit(self, scopes: list[Scope], lease: str, reserve_tokens: int, periods: Periods) -> Decision:
        keys = [key for scope in scopes for key in _admit_keys(scope, periods)]
        args: list[int | str] = [self._window_ms, lease, self._lease_ttl_ms, reserve_tokens, len(scopes)]
        for scope in scopes:
            limits = scope.limits
            args += [
                _limit(limits.requests_per_minute),
                _limit(limits.tokens_per_minute),
                _limit(limits.concurrent_requests),
                _limit(limits.monthly_tokens),
                _limit(limits.daily_tokens),
            ]
        allowed, reason, index, period, *numbers = await self._admit(keys, args)
        if _text(reason) == "rebuild":
            return Decision(False, None, -1, (), rebuild=(int(index), _text(period)))
        usage = tuple(
            ScopeUsage(*(int(value) for value in numbers[i : i + 6])) for i in range(0, len(numbers), 6)
        )
        return Decision(bool(allowed), _text(reason) or None, int(index), usage)

    async def settle(self, scopes: list[Scope], lease: str, used_tokens: int, periods: Periods) -> None:
        keys: list[str] = []
        for scope in scopes:
            base = _base(scope)
            keys += [f"{base}:tokv", f"{base}:toksum", f"{base}:slots", f"{base}:leases"]
            keys += [quota_key(scope, periods.month), quota_key(scope, periods.day)]
        await self._settle(keys, [lease, used_tokens, len(scopes)])

    async def seed_quota(self, scope: Scope, period: str, used_tokens: int, expires_at_ms: int) -> None:
        await self._redis.set(quota_key(scope, period), used_tokens, nx=True, pxat=expires_at_ms)

    async def peek(self, scope: Scope) -> tuple[int, int]:
        requests, reset_ms = await self._peek([f"{_base(scope)}:req"], [self._window_ms])
        return int(requests), int(reset_ms)

    async def clear(self, scope: Scope) -> None:
        base = _base(scope)
        await self._redis.delete(
            *(f"{base}:{part}" for part in ("req", "tok", "tokv", "toksum", "slots", "leases"))
        )
