"""Lua scripts run for concurrent requests in one round trip instead of one each.

Each call to a script queues it; what was queued during one turn of the event loop goes to Redis as one
pipeline (not a transaction: each script is atomic on its own, as it was called alone), and every caller
gets its own result or error. Each round trip pays redis-py's fixed costs in the API's CPU (connection
checkout, retry wrapper, packing, parsing); in a pipeline calls share them, so each costs less the more
go together (bench/RESULTS.md, gateway, third round). Nothing waits for company: a lone call goes out
on the next turn of the loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import NoScriptError

Arg = str | bytes | int | float


@dataclass(frozen=True)
class _Call:
    script: BatchedScript
    keys: Sequence[str]
    args: Sequence[Arg]
    result: asyncio.Future[object]


class BatchedScript:
    """A Lua script, called like redis-py's: `await script(keys, args)`."""

    def __init__(self, batcher: ScriptBatcher, source: str) -> None:
        self._batcher = batcher
        self.source = source
        self.sha = batcher.redis.register_script(source).sha

    async def __call__(self, keys: Sequence[str] = (), args: Sequence[Arg] = ()) -> object:
        return await self._batcher.run(self, keys, args)


class ScriptBatcher:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._queued: list[_Call] = []
        self._sending: set[asyncio.Task[None]] = set()  # held, so a batch in flight is not collected

    def script(self, source: str) -> BatchedScript:
        return BatchedScript(self, source)

    async def run(self, script: BatchedScript, keys: Sequence[str], args: Sequence[Arg]) -> object:
        loop = asyncio.get_running_loop()
        call = _Call(script, keys, args, loop.create_future())
        self._queued.append(call)
        if len(self._queued) == 1:
            loop.call_soon(self._send_queued)
        return await call.result

    def _send_queued(self) -> None:
        batch, self._queued = self._queued, []
        task = asyncio.create_task(self._send(batch))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _send(self, batch: list[_Call]) -> None:
        try:
            results = await self._pipeline(batch)
            unknown = [i for i, result in enumerate(results) if isinstance(result, NoScriptError)]
            if unknown:  # Redis restarted or its scripts were flushed: load them and run those again
                for script in {batch[i].script for i in unknown}:
                    await self.redis.script_load(script.source)
                again = await self._pipeline([batch[i] for i in unknown])
                for i, result in zip(unknown, again, strict=True):
                    results[i] = result
        except asyncio.CancelledError:
            for call in batch:
                call.result.cancel()
            raise
        except Exception as exc:  # Redis unreachable: every caller sees the error, as it would alone
            results = [exc] * len(batch)
        for call, result in zip(batch, results, strict=True):
            if call.result.done():  # its caller was cancelled
                continue
            if isinstance(result, BaseException):
                call.result.set_exception(result)
            else:
                call.result.set_result(result)

    async def _pipeline(self, batch: list[_Call]) -> list[object]:
        pipe = self.redis.pipeline(transaction=False)
        for call in batch:
            pipe.evalsha(call.script.sha, len(call.keys), *call.keys, *call.args)
        return await pipe.execute(raise_on_error=False)
