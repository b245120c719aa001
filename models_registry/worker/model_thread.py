"""The one thread a worker runs its model's work on, apart from the engine's own.

torch on CPU parallelises each operator with OpenMP (libgomp), and libgomp keeps a pool of helper
threads for every thread that has started a parallel region. Once the helper threads of all pools
outnumber the cores, libgomp stops letting idle helpers spin and puts them to sleep after a few
iterations, so each of the hundreds of small operators in a decode step pays a wake-up. Loading on one
pool thread and decoding on another was enough for that on 2 cores: a SmolLM2 decode step took 50-55 ms
instead of 38 ms (bench/RESULTS.md, engine). So a worker keeps its model work on as few threads as
possible: a chat worker loads and warms up its model on a thread that then exits (its helpers go with
it) before the engine's thread starts; an embedding worker loads, warms up and runs every forward on one
thread (asyncio.to_thread would spread forwards over the default pool's threads).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


class ModelThread:
    def __init__(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="llmp-model")

    async def run(self, function: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, function, *args)

    def close(self) -> None:
        """Ends the thread (and with it, its OpenMP helper threads) once its work is done."""
        self._executor.shutdown(wait=True)
