"""The API process's Redis client."""

from __future__ import annotations

from urllib.parse import urlsplit

from redis.asyncio import Connection, Redis
from redis.connection import HiredisRespSerializer
from redis.utils import HIREDIS_AVAILABLE


class HiredisPackingConnection(Connection):
    """redis-py packs commands with hiredis in its sync client but in Python in its asyncio one: ~1 us
    per argument, and admitting a request sends 33 (2.5% of a chat call's CPU, py-spy). Same bytes on
    the wire, packed by hiredis's C packer through redis-py's own serializer."""

    _serializer = HiredisRespSerializer()

    def pack_command(self, *args):  # type: ignore[no-untyped-def]
        return self._serializer.pack(*args)


def connect(url: str) -> Redis:
    # Short timeouts: a Redis that hangs must degrade the limits (fail-open/closed), not stall requests.
    options: dict[str, object] = {"socket_connect_timeout": 1.0, "socket_timeout": 2.0}
    if HIREDIS_AVAILABLE and urlsplit(url).scheme == "redis":  # rediss:// and unix:// keep their classes
        options["connection_class"] = HiredisPackingConnection
    return Redis.from_url(url, **options)
