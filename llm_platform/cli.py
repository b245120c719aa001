"""`llmp`: the operator's command line. Its surface is a contract: scripts and operators depend on it."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from llm_platform.auth.security import password_context
from llm_platform.core.db import run_in_session
from llm_platform.core.errors import Conflict, PlatformError
from llm_platform.core.logging_setup import uvicorn_log_config
from llm_platform.core.migrate import revisions, upgrade_to_head
from llm_platform.core.settings import Settings, settings_help
from models_registry.models import Model, ModelBackend, ModelKind
from tenants import service
from tenants.models import ApiKeyScope, UserRole

T = TypeVar("T")

app = typer.Typer(
    help="llm-platform: a multi-tenant API over local models.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # locals hold passwords and keys
)
admin_app = typer.Typer(help="Bootstrap tenants, users and API keys (no API needed).", no_args_is_help=True)
app.add_typer(admin_app, name="admin")
audit_app = typer.Typer(help="Maintain the audit log.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")


def _load_settings() -> Settings:
    """Settings from the environment; a bad or unsafe value ends the command with a clear message."""
    try:
        return Settings()
    except ValidationError as exc:
        for error in exc.errors():
            where = ".".join(str(part) for part in error["loc"])
            reason = str(error.get("ctx", {}).get("error") or error["msg"])
            typer.echo(f"error: invalid settings{f' ({where})' if where else ''}: {reason}", err=True)
        raise typer.Exit(code=2) from exc


def _fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code=1)


def _require_migrated(settings: Settings) -> None:
    """A command run from the wrong directory (so another data dir) or before `llmp migrate` says so in
    one line, instead of a traceback from its first query; it creates nothing on the way."""
    if settings.embedded and not settings.database_file.exists():
        _fail(
            f"no database at {settings.database_file.resolve()}: run `llmp migrate` first, or set "
            "LLMP_DATA_DIR to the platform's data directory (./var of the directory `make run` ran in)"
        )
    try:
        current, head = revisions(settings.resolved_database_url)
    except SQLAlchemyError as exc:
        _fail(f"cannot reach the database at {_database_shown(settings)}: {_first_line(exc)}")
    if current != head:
        hint = " (or set LLMP_DATA_DIR to the platform's data directory)" if settings.embedded else ""
        _fail(
            f"the database at {_database_shown(settings)} is not migrated (at revision {current or 'none'}, "
            f"this llmp needs {head}): run `llmp migrate`{hint}"
        )


def _database_shown(settings: Settings) -> str:
    return make_url(settings.resolved_database_url).render_as_string(hide_password=True)


def _first_line(exc: SQLAlchemyError) -> str:
    """The driver's reason alone: SQLAlchemy's message adds the statement and a link on further lines."""
    return str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]


def _run_with_session(settings: Settings, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    _require_migrated(settings)
    try:
        return run_in_session(settings, work)
    except PlatformError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(code=1) from exc


@app.command(epilog="Settings (environment variables):\n\n" + settings_help().replace("\n", "\n\n"))
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

    settings = _load_settings()
    if settings.embedded:
        # Run from another directory, serve would start a new, empty platform: say which one this is.
        typer.echo(f"embedded mode: database and secrets in {settings.data_dir.resolve()}", err=True)
        upgrade_to_head(settings.resolved_database_url)
    else:
        _require_migrated(settings)
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


@app.command()
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

    settings = _load_settings()
    entry = _run_with_session(settings, lambda session: catalogue.get_model(session, model))
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


@app.command()
def migrate() -> None:
    """Apply database migrations up to the latest revision."""
    settings = _load_settings()
    try:
        upgrade_to_head(settings.resolved_database_url)
    except SQLAlchemyError as exc:
        _fail(f"cannot migrate the database at {_database_shown(settings)}: {_first_line(exc)}")
    typer.echo("database is at the latest revision")


@admin_app.command("create-tenant")
def create_tenant(
    slug: Annotated[str, typer.Argument(help="Lowercase slug: ^[a-z0-9][a-z0-9-]{1,62}$")],
    name: Annotated[str | None, typer.Option(help="Display name [default: the slug]")] = None,
) -> None:
    """Create a tenant."""
    from tenants.schemas import TenantCreate

    try:
        TenantCreate(slug=slug, name=name)
    except ValueError as exc:
        typer.echo(
            f"error: invalid tenant slug '{slug}' (lowercase letters, digits, dashes; 2-63 chars)", err=True
        )
        raise typer.Exit(code=2) from exc
    settings = _load_settings()
    tenant = _run_with_session(
        settings, lambda session: service.create_tenant(session, slug, name, settings.new_tenant_limits())
    )
    typer.echo(f"created tenant {tenant.slug} ({tenant.id})")


@admin_app.command("create-user")
def create_user(
    email: Annotated[str, typer.Option(help="Login email")],
    password: Annotated[str, typer.Option(help="Initial password")],
    role: Annotated[UserRole, typer.Option(help="platform_admin needs no --tenant; the others need one")],
    tenant: Annotated[str | None, typer.Option(help="Tenant slug")] = None,
) -> None:
    """Create a user (a platform admin when no tenant is given)."""
    settings = _load_settings()

    async def work(session: AsyncSession):  # type: ignore[no-untyped-def]
        tenant_id = (await service.get_tenant(session, tenant)).id if tenant else None
        return await service.create_user(
            session,
            password_context(settings),
            tenant_id=tenant_id,
            email=email,
            password=password,
            role=role,
            min_password_length=settings.min_password_length,
        )

    user = _run_with_session(settings, work)
    typer.echo(f"created {user.role.value} {user.email} ({user.id})")


@admin_app.command("create-key")
def create_key(
    tenant: Annotated[str, typer.Option(help="Tenant slug")],
    name: Annotated[str, typer.Option(help="A name to recognise the key by")],
) -> None:
    """Create an API key; the key is printed once, alone on the last line."""

    async def work(session: AsyncSession) -> str:
        found = await service.get_tenant(session, tenant)
        api_key, secret = await service.create_api_key(session, tenant_id=found.id, name=name)
        typer.echo(f"created API key {api_key.name} (prefix {api_key.prefix}) for tenant {found.slug}")
        return secret

    typer.echo(_run_with_session(_load_settings(), work))


@admin_app.command("register-model")
def register_model(
    name: Annotated[str, typer.Option(help="Catalogue name: the `model` clients send")],
    source: Annotated[
        str,
        typer.Option(help="hf: directory, cached Hugging Face id or bundled:NAME; openai: upstream model id"),
    ],
    base_url: Annotated[
        str | None, typer.Option(help="An OpenAI-compatible server's /v1 URL (backend openai); unset: hf")
    ] = None,
    kind: Annotated[ModelKind, typer.Option(help="chat or embedding")] = ModelKind.chat,
    context_length: Annotated[int, typer.Option(help="Prompt + completion tokens the model takes")] = 4096,
) -> None:
    """Add a model to the catalogue, or bring an existing one to these values and enable it (so a
    deployment can run it on every upgrade, as the Helm chart does for its vLLM models)."""
    from models_registry import service as catalogue
    from models_registry.schemas import ModelCreate

    backend = ModelBackend.openai if base_url else ModelBackend.hf
    try:
        wanted = ModelCreate(
            name=name,
            kind=kind,
            backend=backend,
            source=source,
            base_url=base_url,
            context_length=context_length,
        )
    except ValidationError as exc:
        where = ", ".join(".".join(str(part) for part in error["loc"]) for error in exc.errors())
        typer.echo(f"error: invalid model ({where})", err=True)
        raise typer.Exit(code=2) from exc

    async def work(session: AsyncSession) -> str:
        found = await session.scalar(select(Model).where(Model.name == name))
        if found is None:
            await catalogue.register_model(session, wanted.model_dump(), catalogue=None)
            return "registered"
        if (found.kind, found.backend) != (kind, backend):
            raise Conflict(
                f"model {name} exists as {found.kind.value} on backend {found.backend.value}; "
                f"not changed to {kind.value} on {backend.value}"
            )
        changes = {"source": source, "base_url": base_url, "context_length": context_length, "enabled": True}
        await catalogue.update_model(session, name, changes, catalogue=None)
        return "updated"

    done = _run_with_session(_load_settings(), work)
    typer.echo(f"{done} model {name} ({kind.value}, backend {backend.value})")


@admin_app.command("bootstrap-demo")
def bootstrap_demo(
    slug: Annotated[str, typer.Option(help="Tenant to create")] = "demo",
) -> None:
    """Create the demo tenant, its admin user and an API key, once; print how to call the API."""
    settings = _load_settings()
    admin_email = f"admin@{slug}.example.com"
    admin_password = secrets.token_urlsafe(12)

    async def work(session: AsyncSession) -> str | None:
        if await service.find_tenant(session, slug) is not None:
            return None
        tenant = await service.create_tenant(session, slug, "Demo tenant", settings.new_tenant_limits())
        await service.create_user(
            session,
            password_context(settings),
            tenant_id=tenant.id,
            email=admin_email,
            password=admin_password,
            role=UserRole.tenant_admin,
            min_password_length=settings.min_password_length,
        )
        # `kb:write` too: the README's knowledge-base lines add documents with this key.
        scopes = [ApiKeyScope.inference, ApiKeyScope.kb_write]
        _, secret = await service.create_api_key(session, tenant_id=tenant.id, name="demo", scopes=scopes)
        return secret

    secret = _run_with_session(settings, work)
    llmp = _llmp_command()
    if secret is None:
        typer.echo(
            f"Tenant '{slug}' already exists; its key was shown when it was created. "
            f"New key: {llmp} admin create-key --tenant {slug} --name NAME"
        )
        return
    base_url = f"http://{settings.host}:{settings.port}"
    if settings.embedded:
        start = f"Start the server (`make run` does): {llmp} serve\n"
        chat = "Chat once its model worker is up (its first start converts the bundled weights, ~20 s):"
    else:  # serve starts no workers with an external database: each runs where its GPU is
        start = (
            f"Start the server: {llmp} serve\n"
            "and a worker for each model (serve starts none when LLMP_DATABASE_URL is set):\n"
            f"  {llmp} worker --model smollm2-135m [--device cuda]\n"
            f"  {llmp} worker --model all-minilm-l6-v2 [--device cuda]\n"
        )
        chat = "Chat once the worker is up:"
    typer.echo(
        f"Created tenant '{slug}' with admin {admin_email} / {admin_password}\n"
        f"API key (scopes inference and kb:write; shown once, keep it): {secret}\n\n"
        f"{start}"
        f"Try it once the server is up:\n"
        f'  curl -s {base_url}/auth/me -H "Authorization: Bearer {secret}"\n'
        f"{chat}\n"
        f'  curl -s {base_url}/v1/chat/completions -H "Authorization: Bearer {secret}" '
        f'-H \'Content-Type: application/json\' -d \'{{"model": "smollm2-135m", '
        f'"messages": [{{"role": "user", "content": "What is the capital of France?"}}]}}'
        f"'\n"
        f"OpenAPI docs: {base_url}/docs"
    )


def _llmp_command() -> str:
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


def main() -> None:
    app()


@audit_app.command("prune")
def audit_prune(
    days: Annotated[
        int | None, typer.Option(help="Keep this many days [default: LLMP_AUDIT_RETENTION_DAYS]", min=1)
    ] = None,
) -> None:
    """Delete audit rows older than the retention; every chain still verifies afterwards."""
    from datetime import UTC, datetime, timedelta

    from llm_platform.audit.service import prune

    settings = _load_settings()
    cutoff = datetime.now(UTC) - timedelta(days=days or settings.audit_retention_days)
    removed = _run_with_session(settings, lambda session: prune(session, cutoff))
    typer.echo(f"pruned {removed} audit rows older than {cutoff.isoformat(timespec='seconds')}")
