"""What the `llmp` commands share: settings, failing with a message, sessions, ports."""

from __future__ import annotations

import shutil
import socket
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import NoReturn, TypeVar

import typer
from pydantic import ValidationError
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from llm_platform.core.db import run_in_session
from llm_platform.core.errors import PlatformError
from llm_platform.core.migrate import revisions
from llm_platform.core.settings import Settings

T = TypeVar("T")


def load_settings() -> Settings:
    """Settings from the environment; a bad or unsafe value ends the command with a clear message."""
    try:
        return Settings()
    except ValidationError as exc:
        for error in exc.errors():
            where = ".".join(str(part) for part in error["loc"])
            reason = str(error.get("ctx", {}).get("error") or error["msg"])
            typer.echo(f"error: invalid settings{f' ({where})' if where else ''}: {reason}", err=True)
        raise typer.Exit(code=2) from exc


def fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code=1)


def require_migrated(settings: Settings) -> None:
    """A command run from the wrong directory (so another data dir) or before `llmp migrate` says so in
    one line, instead of a traceback from its first query; it creates nothing on the way."""
    if settings.embedded and not settings.database_file.exists():
        fail(
            f"no database at {settings.database_file.resolve()}: run `llmp migrate` first, or set "
            "LLMP_DATA_DIR to the platform's data directory (./var of the directory `make run` ran in)"
        )
    try:
        current, head = revisions(settings.resolved_database_url)
    except SQLAlchemyError as exc:
        fail(f"cannot reach the database at {database_shown(settings)}: {first_line(exc)}")
    if current != head:
        hint = " (or set LLMP_DATA_DIR to the platform's data directory)" if settings.embedded else ""
        fail(
            f"the database at {database_shown(settings)} is not migrated (at revision {current or 'none'}, "
            f"this llmp needs {head}): run `llmp migrate`{hint}"
        )


def database_shown(settings: Settings) -> str:
    return make_url(settings.resolved_database_url).render_as_string(hide_password=True)


def first_line(exc: SQLAlchemyError) -> str:
    """The driver's reason alone: SQLAlchemy's message adds the statement and a link on further lines."""
    return str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]


def run_with_session(settings: Settings, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    require_migrated(settings)
    try:
        return run_in_session(settings, work)
    except PlatformError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(code=1) from exc


def llmp_command() -> str:
    """How to run this `llmp` from here: `llmp` if it is the one on PATH (an activated venv), else its
    path (`.venv/bin/llmp` after `make`)."""
    executable = Path(sys.executable).parent / "llmp"
    on_path = shutil.which("llmp")
    if on_path and Path(on_path).resolve() == executable.resolve():
        return "llmp"
    try:
        return str(executable.relative_to(Path.cwd()))
    except ValueError:
        return str(executable)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]
