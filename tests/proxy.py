"""A TCP relay in front of the test Postgres, so a test can cut the database off and bring it back
without stopping the shared server. It runs on a thread and event loop of its own: the app under test
may run in another thread (TestClient) or in the test's own loop."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine

from sqlalchemy.engine import make_url

from tests.workers import free_port


class TcpProxy:
    def __init__(self, target_port: int) -> None:
        self.port, self.target_port = free_port(), target_port
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="tcp-proxy", daemon=True)
        self._thread.start()
        self._server: asyncio.Server | None = None
        self._links: set[asyncio.StreamWriter] = set()

    @classmethod
    def in_front_of(cls, database_url: str) -> TcpProxy:
        return cls(make_url(database_url).port or 5432)

    def url(self, database_url: str) -> str:
        """`database_url` through the proxy."""
        return make_url(database_url).set(port=self.port).render_as_string(hide_password=False)

    def start(self) -> None:
        """Accepts connections again (the database is back)."""
        self._run(self._start())

    def cut(self) -> None:
        """Refuses new connections and drops the open ones (the database is unreachable)."""
        self._run(self._cut())

    def close(self) -> None:
        if self._server is not None:
            self.cut()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)

    def _run(self, work: Coroutine[object, object, None]) -> None:
        asyncio.run_coroutine_threadsafe(work, self._loop).result(timeout=10)

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", self.port)

    async def _cut(self) -> None:
        assert self._server is not None
        self._server.close()
        for link in list(self._links):
            link.close()
        await self._server.wait_closed()
        self._server = None

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        self._links |= {writer, upstream_writer}

        async def pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            try:
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                sink.close()
                self._links.discard(sink)

        await asyncio.gather(pump(reader, upstream_writer), pump(upstream_reader, writer))
