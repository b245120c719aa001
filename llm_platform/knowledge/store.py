"""Where tenants' indexes are kept between processes: under LLMP_KNOWLEDGE_INDEX_DIR (default
data_dir/knowledge), so that a process started again answers a tenant's first search from disk rather
than reading and indexing every chunk from the database again (bench/RESULTS.md, knowledge base).

A tenant's index lives in a home of its own, `<root>/<tenant id>/<home id>/`:
- `lock`: flock'ed by the process that owns the home. One process at a time changes an index; a home
  whose process died is free again (the kernel let its lock go).
- `lexical/`: the tantivy index, on disk (its owner searches and changes it there).
- `dense.faiss`: the FAISS index as of the last save.
- `state.json`: the version, vector size and documents the files hold. A save writes it last; the first
  change after a save deletes it first. So a home with a state is a consistent snapshot, and one without
  (its process died while changing it, or stopped without saving) is deleted when found free.

A process needing a tenant's index claims the free home with the newest state, else makes a new one;
homes other processes hold are left alone (replicas sharing a data directory keep one each). The database
stays the source of truth: a loaded index is brought up to date from it like any other (search.py).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path

import faiss
import numpy as np

from llm_platform.knowledge.index import IndexedDocument, TenantIndex

logger = logging.getLogger(__name__)

STATE = "state.json"
DENSE = "dense.faiss"
LEXICAL = "lexical"
_LOCK = "lock"


class Home:
    """One tenant index's directory, owned (locked) by this process until `release`."""

    def __init__(self, path: Path, lock_fd: int) -> None:
        self.path = path
        self._lock_fd: int | None = lock_fd

    @property
    def lexical(self) -> Path:
        return self.path / LEXICAL

    def state(self) -> dict | None:  # type: ignore[type-arg]
        """What the last save wrote, or None (never saved, or changed since)."""
        try:
            return json.loads((self.path / STATE).read_text(encoding="utf-8"))  # type: ignore[no-any-return]
        except (OSError, ValueError):
            return None

    def discard_state(self) -> None:
        """Before the first change after a save: the files stop being a snapshot."""
        with contextlib.suppress(FileNotFoundError):
            (self.path / STATE).unlink()
        _sync_directory(self.path)

    def save(self, index: TenantIndex) -> None:
        """Writes the index's dense part and state (its lexical part is on disk already, committed):
        the home is a snapshot of it."""
        documents = [
            [str(document_id), str(document.collection_id), document.chunk_ids.tolist()]
            for document_id, document in index.documents.items()
        ]
        state = {"version": index.version, "dim": index.dim, "trained_on": index.trained_on}
        self._publish(DENSE, lambda path: faiss.write_index(index.dense, str(path)))
        self._publish(
            STATE,
            lambda path: path.write_text(json.dumps(state | {"documents": documents}), encoding="utf-8"),
        )
        index.saved = True

    def load(self, ann_min_vectors: int) -> TenantIndex | None:
        """The index this home holds a snapshot of, or None (none, or unreadable: then never read)."""
        state = self.state()
        if state is None:
            return None
        try:
            dense = faiss.read_index(str(self.path / DENSE))
            documents = {
                uuid.UUID(document): IndexedDocument(uuid.UUID(collection), np.asarray(ids, dtype=np.int64))
                for document, collection, ids in state["documents"]
            }
            index = TenantIndex(int(state["dim"]), ann_min_vectors, int(state["version"]), home=self)
            index.restore(dense, int(state["trained_on"]), documents)
        except (RuntimeError, ValueError, KeyError, TypeError, OSError) as exc:
            logger.warning("knowledge index at %s could not be read (%s): rebuilt", self.path, exc)
            self._empty()
            return None
        return index

    def _empty(self) -> None:
        """Back to a new home's contents (an unreadable snapshot's files must not be built upon)."""
        self.discard_state()
        (self.path / DENSE).unlink(missing_ok=True)
        shutil.rmtree(self.lexical, ignore_errors=True)
        self.lexical.mkdir()

    def _publish(self, name: str, write: Callable[[Path], object]) -> None:
        """Writes `name` aside, then moves it into place: a reader sees the old file or the new one."""
        scratch = self.path / f".{name}.{uuid.uuid4().hex}"
        try:
            write(scratch)
            with open(scratch, "rb") as written:
                os.fsync(written.fileno())
            os.replace(scratch, self.path / name)
        finally:
            scratch.unlink(missing_ok=True)
        _sync_directory(self.path)

    def release(self, *, delete: bool = False) -> None:
        """Lets another process (or this one, later) claim the home; `delete` removes it first."""
        if self._lock_fd is None:
            return
        if delete:
            shutil.rmtree(self.path, ignore_errors=True)
        os.close(self._lock_fd)  # the flock goes with it
        self._lock_fd = None


class IndexStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def claim_saved(self, tenant_id: uuid.UUID) -> Home | None:
        """The free home of `tenant_id` with the newest snapshot, if any; free homes without a snapshot,
        and older snapshots, are deleted on the way."""
        tenant_dir = self.root / str(tenant_id)
        if not tenant_dir.is_dir():
            return None
        best: tuple[int, Home] | None = None
        for path in sorted(p for p in tenant_dir.iterdir() if p.is_dir()):
            home = _try_lock(path)
            if home is None:
                continue  # another process's
            state = home.state()
            version = state.get("version") if isinstance(state, dict) else None
            if not isinstance(version, int):
                home.release(delete=True)
            elif best is None or version > best[0]:
                if best is not None:
                    best[1].release(delete=True)
                best = (version, home)
            else:
                home.release(delete=True)
        return best[1] if best is not None else None

    def new_home(self, tenant_id: uuid.UUID) -> Home:
        path = self.root / str(tenant_id) / uuid.uuid4().hex
        path.mkdir(mode=0o700, parents=True)
        (path / LEXICAL).mkdir()
        home = _try_lock(path)
        if home is None:  # a directory just made is no one else's: only a full disk gets here
            raise OSError(f"could not lock {path}")
        return home

    def sweep(self, tenants: set[uuid.UUID]) -> int:
        """Deletes the free homes of tenants not in `tenants` (deleted since); returns how many."""
        deleted = 0
        if not self.root.is_dir():
            return 0
        for tenant_dir in self.root.iterdir():
            try:
                if uuid.UUID(tenant_dir.name) in tenants:
                    continue
            except ValueError:
                continue  # not one of ours
            for path in [p for p in tenant_dir.iterdir() if p.is_dir()]:
                if (home := _try_lock(path)) is not None:
                    home.release(delete=True)
                    deleted += 1
            with contextlib.suppress(OSError):
                tenant_dir.rmdir()  # only once empty
        return deleted


def _try_lock(path: Path) -> Home | None:
    try:
        fd = os.open(path / _LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return Home(path, fd)


def _sync_directory(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
