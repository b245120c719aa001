"""Scripts called concurrently go to Redis together and each caller gets its own answer (real Redis)."""

from __future__ import annotations

import asyncio

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from llm_platform.core.redis_batch import ScriptBatcher
from llm_platform.core.redis_client import connect

COUNT = "return {ARGV[1], redis.call('INCRBY', KEYS[1], tonumber(ARGV[2]))}"
FAILS_ON_NEGATIVE = "if tonumber(ARGV[1]) < 0 then return redis.error_reply('negative') end return ARGV[1]"
KEY = "llmp:test:batch"


def _run(redis_url: str, scenario) -> None:  # type: ignore[no-untyped-def]
    async def main() -> None:
        redis = connect(redis_url)
        try:
            await redis.delete(KEY)
            await scenario(redis)
        finally:
            await redis.aclose()

    asyncio.run(main())


def test_concurrent_calls_each_get_their_own_answer(redis_url):
    async def scenario(redis) -> None:  # type: ignore[no-untyped-def]
        sent: list[int] = []
        batcher = ScriptBatcher(redis)
        pipeline = batcher._pipeline

        async def counted(batch):  # type: ignore[no-untyped-def]
            sent.append(len(batch))
            return await pipeline(batch)

        batcher._pipeline = counted  # type: ignore[method-assign]
        count = batcher.script(COUNT)
        await redis.script_load(COUNT)  # else the first round trip answers NOSCRIPT and a second one runs it
        answers = await asyncio.gather(*(count([KEY], [f"caller-{i}", i]) for i in range(1, 51)))
        assert [name for name, _ in answers] == [f"caller-{i}".encode() for i in range(1, 51)]
        totals = [total for _, total in answers]
        assert sorted(totals) == totals and totals[-1] == sum(range(1, 51)) == int(await redis.get(KEY))
        assert sent == [50]  # called in the same turn of the loop: one round trip
        assert await count([KEY], ["alone", 1]) == [b"alone", sum(range(1, 51)) + 1]
        assert sent == [50, 1]

    _run(redis_url, scenario)


def test_a_failing_script_fails_only_its_own_caller(redis_url):
    async def scenario(redis) -> None:  # type: ignore[no-untyped-def]
        script = ScriptBatcher(redis).script(FAILS_ON_NEGATIVE)
        answers = await asyncio.gather(*(script([], [n]) for n in (1, -1, 2)), return_exceptions=True)
        assert answers[0] == b"1" and answers[2] == b"2"
        assert isinstance(answers[1], ResponseError) and "negative" in str(answers[1])

    _run(redis_url, scenario)


def test_scripts_flushed_from_redis_are_loaded_again(redis_url):
    async def scenario(redis) -> None:  # type: ignore[no-untyped-def]
        count = ScriptBatcher(redis).script(COUNT)
        assert (await count([KEY], ["a", 1]))[1] == 1
        await redis.script_flush()  # as after a Redis restart
        answers = await asyncio.gather(count([KEY], ["b", 1]), count([KEY], ["c", 1]))
        assert sorted(total for _, total in answers) == [2, 3]

    _run(redis_url, scenario)


def test_a_cancelled_caller_leaves_the_others_their_answers(redis_url):
    async def scenario(redis) -> None:  # type: ignore[no-untyped-def]
        count = ScriptBatcher(redis).script(COUNT)
        first, second = (
            asyncio.ensure_future(count([KEY], ["a", 1])),
            asyncio.ensure_future(count([KEY], ["b", 1])),
        )
        await asyncio.sleep(0)  # both queued
        first.cancel()
        assert (await second)[0] == b"b"
        with pytest.raises(asyncio.CancelledError):
            await first

    _run(redis_url, scenario)


def test_unreachable_redis_raises_to_every_caller():
    async def scenario() -> None:
        redis = connect("redis://127.0.0.1:1/0")
        try:
            count = ScriptBatcher(redis).script(COUNT)
            answers = await asyncio.gather(
                *(count([KEY], ["x", 1]) for _ in range(3)), return_exceptions=True
            )
            assert all(isinstance(answer, RedisConnectionError) for answer in answers), answers
        finally:
            await redis.aclose()

    asyncio.run(scenario())
