"""`llmp admin` and `llmp audit`: bootstrapping tenants, users, keys and models, and audit upkeep,
straight against the database (no API needed)."""

from __future__ import annotations

import secrets
from typing import Annotated

import typer
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from llm_platform.auth.security import password_context
from llm_platform.cli.support import (
    llmp_command,
    load_settings,
    run_with_session,
)
from llm_platform.core.errors import Conflict
from models_registry.models import Model, ModelBackend, ModelKind
from tenants import service
from tenants.models import ApiKeyScope, UserRole

admin_app = typer.Typer(help="Bootstrap tenants, users and API keys (no API needed).", no_args_is_help=True)
audit_app = typer.Typer(help="Maintain the audit log.", no_args_is_help=True)


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
    settings = load_settings()
    tenant = run_with_session(
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
    settings = load_settings()

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

    user = run_with_session(settings, work)
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

    typer.echo(run_with_session(load_settings(), work))


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

    done = run_with_session(load_settings(), work)
    typer.echo(f"{done} model {name} ({kind.value}, backend {backend.value})")


@admin_app.command("bootstrap-demo")
def bootstrap_demo(
    slug: Annotated[str, typer.Option(help="Tenant to create")] = "demo",
) -> None:
    """Create the demo tenant, its admin user and an API key, once; print how to call the API."""
    settings = load_settings()
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

    secret = run_with_session(settings, work)
    llmp = llmp_command()
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


@audit_app.command("prune")
def audit_prune(
    days: Annotated[
        int | None, typer.Option(help="Keep this many days [default: LLMP_AUDIT_RETENTION_DAYS]", min=1)
    ] = None,
) -> None:
    """Delete audit rows older than the retention; every chain still verifies afterwards."""
    from datetime import UTC, datetime, timedelta

    from llm_platform.audit.service import prune

    settings = load_settings()
    cutoff = datetime.now(UTC) - timedelta(days=days or settings.audit_retention_days)
    removed = run_with_session(settings, lambda session: prune(session, cutoff))
    typer.echo(f"pruned {removed} audit rows older than {cutoff.isoformat(timespec='seconds')}")
