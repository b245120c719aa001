"""The API process's Redis client."""

from __future__ import annotations

from urllib.parse import urlsplit

from redis.asyncio import BlockingConnectionPool, Connection, Redis
from redis.connection import HiredisRespSerializer
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.utils import HIREDIS_AVAILABLE

from llm_platform.core.errors import ServiceUnavailable


class HiredisPackingConnection(Connection):
    """redis-py packs commands with hiredis in its sync client but in Python in its asyncio one, at a cost
    per argument, and admitting a request sends 33 (bench/RESULTS.md, gateway, third round). Same bytes on
    the wire, packed by hiredis's C packer through redis-py's own serializer."""

    _serializer = HiredisRespSerializer()

    def pack_command(self, *args):  # type: ignore[no-untyped-def]
        return self._serializer.pack(*args)


class RedisBusy(ServiceUnavailable):
    """Every connection of this process's pool stayed in use for the whole wait: Redis is up, the
    process is overloaded. Deliberately not a RedisError, so nothing takes it for an outage (which would
    fail open on the limits, or serve a stale worker list): the request answers 503."""

    def __init__(self) -> None:
        super().__init__(
            "The platform is too busy to take this request; please retry shortly",
            headers={"Retry-After": "1"},
        )


class WaitingConnectionPool(BlockingConnectionPool):
    """redis-py's default asyncio pool raises `MaxConnectionsError` the moment its cap is reached, a
    ConnectionError that every caller took for Redis being down. This one waits for a connection; only a
    wait past the timeout fails, as RedisBusy."""

    async def get_connection(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        try:
            return await super().get_connection(*args, **kwargs)
        except RedisConnectionError as exc:
            # The pool's own wait timing out (connecting to a Redis that is down raises otherwise).
            if isinstance(exc.__cause__, TimeoutError) and str(exc) == "No connection available.":
                raise RedisBusy() from exc
            raise


def connect(url: str, max_connections: int = 100, pool_timeout_s: float = 5.0) -> Redis:
    # Short socket timeouts: a Redis that hangs must degrade the limits (fail-open/closed), not stall
    # requests. A busy pool is another matter: a request waits up to pool_timeout_s for a connection.
    options: dict[str, object] = {"socket_connect_timeout": 1.0, "socket_timeout": 2.0}
    if HIREDIS_AVAILABLE and urlsplit(url).scheme == "redis":  # rediss:// and unix:// keep their classes
        options["connection_class"] = HiredisPackingConnection
    pool = WaitingConnectionPool.from_url(
        url, max_connections=max_connections, timeout=pool_timeout_s, **options
    )
    return Redis.from_pool(pool)
