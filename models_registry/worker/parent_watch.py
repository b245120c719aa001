"""A worker started by `llmp serve` ends with it, even when the server is killed outright (SIGKILL):
an orphaned worker would hold its model's memory and log failed heartbeats forever."""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys
import threading
import time

logger = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
POLL_S = 0.5
GRACE_S = 30.0  # after SIGTERM, the worker's clean shutdown may take this long before it is cut short


class ParentGone(RuntimeError):
    pass


def exit_with_parent(parent_pid: int) -> None:
    """Linux sends this process SIGTERM the moment its parent dies (prctl); as a backstop, and on other
    systems, a thread notices within POLL_S that it was re-parented, and sends the SIGTERM itself.
    SIGTERM lets uvicorn shut the worker down cleanly; it is cut short if that takes over GRACE_S."""
    if sys.platform == "linux":
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
            logger.warning("prctl(PR_SET_PDEATHSIG) failed: errno %d", ctypes.get_errno())
    if os.getppid() != parent_pid:  # it died before we asked to be told
        raise ParentGone(f"the process that started this worker ({parent_pid}) is gone")
    threading.Thread(target=_watch, args=(parent_pid,), name="parent-watch", daemon=True).start()


def _watch(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(POLL_S)
    logger.warning("the server that started this worker (pid %d) is gone; stopping", parent_pid)
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(GRACE_S)
    logger.error("the worker did not stop within %.0f s of its server; exiting now", GRACE_S)
    os._exit(1)
