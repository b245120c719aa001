"""The API's Redis client: commands packed by hiredis, byte for byte what redis-py would send."""

from __future__ import annotations

import asyncio

from redis.asyncio import Connection, SSLConnection, UnixDomainSocketConnection

from llm_platform.core.redis_client import HiredisPackingConnection, connect

COMMANDS = [
    ("EVALSHA", "f" * 40, 2, "llmp:rl:{t}:req", "llmp:rl:{t}:tok", 60000, -1, 1.5, "lease-é"),
    ("CONFIG GET", "maxmemory"),  # a command name with a space goes out as two words
    (b"SET", b"k\x00\xff", 10),
]


def test_commands_are_packed_exactly_as_redis_py_packs_them():
    plain, packing = Connection(), HiredisPackingConnection()
    for command in COMMANDS:
        assert b"".join(packing.pack_command(*command)) == b"".join(plain.pack_command(*command))


def test_the_client_talks_to_redis_and_keeps_tls_and_unix_sockets(redis_url):
    async def scenario() -> None:
        client = connect(redis_url)
        try:
            assert client.connection_pool.connection_class is HiredisPackingConnection
            script = client.register_script("return {KEYS[1], ARGV[1], tonumber(ARGV[2]) + 1}")
            assert await script(keys=["llmp:test:é"], args=["lease", 41]) == [
                b"llmp:test:\xc3\xa9",
                b"lease",
                42,
            ]
            await client.set("llmp:test:bytes", b"\x00\xff", ex=5)
            assert await client.get("llmp:test:bytes") == b"\x00\xff"
        finally:
            await client.aclose()

    asyncio.run(scenario())
    assert connect("rediss://127.0.0.1:6380/0").connection_pool.connection_class is SSLConnection
    assert connect("unix:///tmp/redis.sock").connection_pool.connection_class is UnixDomainSocketConnection
