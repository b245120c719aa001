"""`llmp serve`, `llmp worker` and `llmp migrate`: running the platform."""

from __future__ import annotations

import os
import signal
from typing import Annotated, Any

import typer
from sqlalchemy.exc import SQLAlchemyError

from llm_platform.cli.support import (
    database_shown,
    fail,
    first_line,
    free_port,
    load_settings,
    require_migrated,
    run_with_session,
)
from llm_platform.core.logging_setup import uvicorn_log_config
from llm_platform.core.migrate import upgrade_to_head
from llm_platform.core.settings import Settings


def serve(
    host: Annotated[str | None, typer.Option(help="Bind address [default: LLMP_HOST]")] = None,
    port: Annotated[int | None, typer.Option(help="Bind port [default: LLMP_PORT]")] = None,
    no_workers: Annotated[
        bool, typer.Option("--no-workers", help="Do not start the bundled model workers")
    ] = False,
) -> None:
    """Start the API server. In embedded mode the database is migrated first and a worker is started
    for each enabled hf model."""
    import uvicorn

    settings = load_settings()
    if settings.embedded:
        # Run from another directory, serve would start a new, empty platform: say which one this is.
        typer.echo(f"embedded mode: database and secrets in {settings.data_dir.resolve()}", err=True)
        upgrade_to_head(settings.resolved_database_url)
    else:
        require_migrated(settings)
    from llm_platform.app import create_app
    from llm_platform.workers import WorkerSupervisor, served_models

    if host or port:  # workers report to the address this server really binds
        settings = settings.model_copy(update={"host": host or settings.host, "port": port or settings.port})
    models = (
        served_models(settings) if settings.embedded and settings.serve_workers and not no_workers else []
    )
    supervisor = WorkerSupervisor(settings, models)
    # uvicorn shuts down on SIGTERM or SIGINT, then restores the handler it found and raises the signal
    # again; with the default handler the process would die right there, before stopping its workers.
    for stop_signal in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop_signal, _raise_stop)
    app = create_app(settings)  # first: it sets up the logging that the supervisor's lines go to
    stopped_by: int | None = None
    try:
        supervisor.start()
        uvicorn.run(
            app,
            host=settings.host,
            port=settings.port,
            proxy_headers=True,
            log_level=settings.log_level.lower(),
            **_uvicorn_logging(settings),
        )
    except _StopSignal as stop:
        stopped_by = stop.signum
    finally:
        supervisor.stop()
    if stopped_by is not None:
        # Now end by the signal, as uvicorn alone would have: service managers take that for a clean
        # stop (systemd does not take exit status 143 for one).
        signal.signal(stopped_by, signal.SIG_DFL)
        os.kill(os.getpid(), stopped_by)


class _StopSignal(BaseException):  # not an Exception: nothing on the way may catch it
    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _raise_stop(signum: int, _frame: object) -> None:
    raise _StopSignal(signum)


def worker(
    model: Annotated[str, typer.Option(help="Catalogue name of the model to serve")],
    device: Annotated[str, typer.Option(help="cpu, cuda or cuda:N")] = "cpu",
    port: Annotated[int | None, typer.Option(help="Port [default: a free one]")] = None,
    host: Annotated[str, typer.Option(help="Bind address")] = "127.0.0.1",
    parent_pid: Annotated[
        int | None, typer.Option(hidden=True, help="Exit when this process (`llmp serve`) ends")
    ] = None,
) -> None:
    """Run a model worker: load the model, warm up, register, and serve generations."""
    import uvicorn

    from models_registry.worker.parent_watch import ParentGone, exit_with_parent

    if parent_pid is not None:
        try:
            exit_with_parent(parent_pid)
        except ParentGone as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(code=1) from exc

    from models_registry import service as catalogue
    from models_registry.sources import ModelSourceMissing, resolve_model_dir
    from models_registry.worker.app import create_worker_app

    settings = load_settings()
    entry = run_with_session(settings, lambda session: catalogue.get_model(session, model))
    try:
        model_dir = resolve_model_dir(entry.source, settings.resolved_models_dir)
    except (ModelSourceMissing, RuntimeError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=1) from exc
    port = port or free_port(host)
    app = create_worker_app(
        settings, entry.name, str(model_dir), device, f"http://{host}:{port}", entry.kind.value
    )
    uvicorn.run(app, host=host, port=port, log_level=settings.log_level.lower(), **_uvicorn_logging(settings))


def _uvicorn_logging(settings: Settings) -> dict[str, Any]:
    """Text: uvicorn's own config and access log. JSON: its lines as JSON, and no access log (the API
    logs a line per request with more in it; a worker's requests are the API's)."""
    config = uvicorn_log_config(settings.log_format)
    return {} if config is None else {"log_config": config, "access_log": False}


def migrate() -> None:
    """Apply database migrations up to the latest revision."""
    settings = load_settings()
    try:
        upgrade_to_head(settings.resolved_database_url)
    except SQLAlchemyError as exc:
        fail(f"cannot migrate the database at {database_shown(settings)}: {first_line(exc)}")
    typer.echo("database is at the latest revision")
