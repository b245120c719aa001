"""Fixtures: a real Postgres and Redis (fail under CI when unreachable, skip otherwise), a fresh schema
per session, emptied tables per test, and an API client with helpers to make tenants and principals."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncSession

from llm_platform.app import create_app
from llm_platform.auth.security import password_context
from llm_platform.core.db import run_in_session, sync_database_url
from llm_platform.core.migrate import upgrade_to_head
from llm_platform.core.settings import Settings
from tenants import service
from tenants.models import UserRole
from tests.proxy import TcpProxy
from tests.responses import bearer
from tests.tiny_model import build_tiny_encoder, build_tiny_model
from tests.workers import (
    TTL_S,
    WORKER_SECRET,
    ApiProcess,
    WorkerProcess,
    free_port,
    wait_registered,
    worker_env,
)

TEST_DATABASE_URL = os.environ.get(
    "LLMP_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
TEST_REDIS_URL = os.environ.get("LLMP_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
TABLES = (
    "kb_chunks",
    "kb_documents",
    "kb_collections",
    "kb_versions",
    "audit_log",
    "audit_heads",
    "usage_daily",
    "conversation_messages",
    "conversations",
    "refresh_tokens",
    "api_keys",
    "tenant_limits",
    "tenant_settings",
    "users",
    "tenants",
)  # models survive: see register_model
PASSWORD = "correct horse battery staple"
# A tenant's limits as PUT /{tenant}/admin/limits wants them named (null: unlimited, every model).
LIMIT_FIELDS = (
    "requests_per_minute",
    "tokens_per_minute",
    "concurrent_requests",
    "monthly_token_quota",
    "daily_token_quota",
    "allowed_models",
)


def _unreachable(what: str, exc: Exception) -> None:
    message = f"{what} is unreachable ({exc}); run scripts/services.sh"
    if os.environ.get("CI"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def database_url() -> str:
    """The test database, emptied and migrated to head once per session."""
    try:
        with psycopg.connect(
            sync_database_url(TEST_DATABASE_URL).replace("postgresql+psycopg", "postgresql"),
            connect_timeout=3,
        ) as connection:
            connection.execute("DROP SCHEMA public CASCADE")
            connection.execute("CREATE SCHEMA public")
    except psycopg.OperationalError as exc:
        _unreachable("Postgres", exc)
    upgrade_to_head(TEST_DATABASE_URL)
    return TEST_DATABASE_URL


@pytest.fixture(scope="session")
def redis_url() -> str:
    try:
        redis.Redis.from_url(TEST_REDIS_URL, socket_connect_timeout=3).ping()
    except redis.RedisError as exc:
        _unreachable("Redis", exc)
    return TEST_REDIS_URL


@pytest.fixture
def cli_env(tmp_path) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """An embedded platform of its own: SQLite and generated secrets under a fresh data dir."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLMP_")}
    env.update(
        LLMP_DATA_DIR=str(tmp_path / "var"),
        LLMP_PORT=str(free_port()),
        LLMP_PASSWORD_HASH_MEMORY_KIB="1024",
        # The bundled model's worker is covered elsewhere; here it would only convert weights for nothing.
        LLMP_SERVE_WORKERS="false",
    )
    return env


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:  # type: ignore[no-untyped-def]
    return build_tiny_model(tmp_path_factory.mktemp("tiny-llama"))


TINY_MODEL = "tiny-llama"
TINY_CONTEXT = 512
# The chat turn most tests send: short, so a tiny-model answer is quick.
QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


def register_model(
    db_engine: Engine, name: str, source: str, context_length: int, kind: str = "chat"
) -> None:
    """A catalogue row, written directly: the catalogue table survives the per-test cleanup."""
    with db_engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO models (id, name, kind, backend, source, context_length, default_params, "
                "enabled, created_at, updated_at) "
                "VALUES (:id, :name, :kind, 'hf', :source, :context, '{}', true, now(), now()) "
                "ON CONFLICT (name) DO UPDATE SET source = EXCLUDED.source, enabled = true"
            ),
            {"id": uuid.uuid4(), "name": name, "kind": kind, "source": source, "context": context_length},
        )


@pytest.fixture(scope="session")
def tiny_worker(
    database_url, redis_url, db_engine, tiny_model_dir, tmp_path_factory
) -> Iterator[WorkerProcess]:  # type: ignore[no-untyped-def]
    """One worker serving the tiny model for the whole session."""
    register_model(db_engine, TINY_MODEL, str(tiny_model_dir), TINY_CONTEXT)
    env = worker_env(database_url, redis_url, tmp_path_factory.mktemp("worker"))
    worker = WorkerProcess(TINY_MODEL, env).wait_ready()
    yield worker
    worker.stop()


@pytest.fixture(scope="session")
def long_worker(database_url, redis_url, db_engine, tmp_path_factory):  # type: ignore[no-untyped-def]
    """A tiny model with a long context, and a worker that admits one sequence and queues one more."""
    model_dir = build_tiny_model(tmp_path_factory.mktemp("tiny-long"), max_positions=16_384)
    register_model(db_engine, "tiny-long", str(model_dir), 16_384)
    env = worker_env(
        database_url,
        redis_url,
        tmp_path_factory.mktemp("long-worker"),
        LLMP_ENGINE_MAX_RUNNING="1",
        LLMP_ENGINE_FAIR_HEADROOM="0",
        LLMP_ENGINE_MAX_QUEUED="1",
        LLMP_ENGINE_MAX_SEQ_LEN="16384",
    )
    worker = WorkerProcess("tiny-long", env).wait_ready()
    yield worker
    worker.stop()


TINY_ENCODER = "tiny-encoder"
TINY_ENCODER_CONTEXT = 64  # its tokenizer's model_max_length


@pytest.fixture(scope="session")
def encoder_dir(tmp_path_factory) -> Path:  # type: ignore[no-untyped-def]
    return build_tiny_encoder(tmp_path_factory.mktemp("tiny-encoder"))


@pytest.fixture(scope="session")
def embed_worker(
    database_url, redis_url, db_engine, encoder_dir, tmp_path_factory
) -> Iterator[WorkerProcess]:  # type: ignore[no-untyped-def]
    """One worker serving the tiny encoder (an embedding model) for the whole session."""
    register_model(db_engine, TINY_ENCODER, str(encoder_dir), TINY_ENCODER_CONTEXT, kind="embedding")
    # float32: the tests compare its vectors with a local float32 Embedder's to 1e-5 (bfloat16, the
    # default on CPUs that have it, is tested against float32 in test_bundled_minilm.py).
    env = worker_env(
        database_url, redis_url, tmp_path_factory.mktemp("embed-worker"), LLMP_EMBED_PRECISION="float32"
    )
    worker = WorkerProcess(TINY_ENCODER, env).wait_ready()
    yield worker
    worker.stop()


@pytest.fixture
def served(tiny_worker, platform, redis_url):  # type: ignore[no-untyped-def]
    """The platform helper once the tiny model has a worker in the registry again (the per-test FLUSHDB
    removes it until the worker's next heartbeat)."""
    wait_registered(redis_url, TINY_MODEL)
    return platform


@pytest.fixture
def tenant_a_caller(served, tenant_a) -> tuple[TestClient, dict[str, str]]:  # type: ignore[no-untyped-def]
    """The test client and the headers of a new API key of tenant_a, with the tiny model served."""
    return served.client, bearer(served.create_key(tenant_a)["key"])


@pytest.fixture
def live_api(database_url, redis_url, tmp_path, settings, tiny_worker, clean_state):  # type: ignore[no-untyped-def]
    env = worker_env(
        database_url,
        redis_url,
        tmp_path,
        LLMP_JWT_SECRET=settings.resolved_jwt_secret,
        LLMP_PASSWORD_HASH_MEMORY_KIB="1024",
    )
    api = ApiProcess(env).wait_ready()
    try:
        wait_registered(redis_url, TINY_MODEL)
        yield api.url
    finally:
        api.stop()


@pytest.fixture
def db_proxy(database_url: str) -> Iterator[TcpProxy]:
    """A relay in front of the test Postgres: `db_proxy.url(database_url)` goes through it, `cut()` makes
    the database unreachable, `start()` brings it back. The shared Postgres itself is never stopped."""
    proxy = TcpProxy.in_front_of(database_url)
    proxy.start()
    yield proxy
    proxy.close()


@pytest.fixture(scope="session")
def db_engine(database_url: str) -> Iterator[Engine]:
    """A synchronous engine for asserting on rows directly."""
    engine = create_engine(sync_database_url(database_url))
    yield engine
    engine.dispose()


@pytest.fixture
def clean_state(db_engine: Engine, redis_url: str) -> None:
    with db_engine.begin() as connection:
        connection.execute(text(f"TRUNCATE {', '.join(TABLES)} CASCADE"))
    redis.Redis.from_url(redis_url).flushdb()


@pytest.fixture
def settings(database_url: str, redis_url: str, tmp_path) -> Settings:  # type: ignore[no-untyped-def]
    return Settings(
        worker_secret=WORKER_SECRET,
        worker_ttl_s=TTL_S,
        database_url=database_url,
        redis_url=redis_url,
        data_dir=tmp_path,
        jwt_secret="test-secret-" + "x" * 40,
        # Cheap hashing keeps the suite fast; production defaults are OWASP's.
        password_hash_memory_kib=1024,
        password_hash_time_cost=1,
        login_max_failures_per_account=3,
        login_max_failures_per_address=6,
    )


@pytest.fixture
def client(settings: Settings, clean_state: None) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@dataclass
class TenantCtx:
    slug: str
    id: str
    admin_email: str
    admin_headers: dict[str, str]


class PlatformHelper:
    """Drives the API the way an operator would: a platform admin, then tenants, users and keys."""

    def __init__(self, client: TestClient, settings: Settings) -> None:
        self.client = client
        self.settings = settings
        self._admin_headers: dict[str, str] | None = None

    def login(self, email: str, password: str = PASSWORD, tenant: str | None = None) -> dict:
        form = {"username": email, "password": password}
        if tenant:
            form["tenant"] = tenant
        response = self.client.post("/auth/token", data=form)
        assert response.status_code == 200, response.text
        return response.json()

    @property
    def admin_headers(self) -> dict[str, str]:
        """A platform admin, made through the CLI's own code path the first time it is needed."""
        if self._admin_headers is None:
            email = f"root-{uuid.uuid4().hex[:8]}@example.com"
            create_platform_admin(self.settings, email)
            self._admin_headers = bearer(self.login(email)["access_token"])
        return self._admin_headers

    def create_tenant(self, slug: str | None = None) -> TenantCtx:
        slug = slug or f"t-{uuid.uuid4().hex[:10]}"
        response = self.client.post("/admin/tenants", json={"slug": slug}, headers=self.admin_headers)
        assert response.status_code == 201, response.text
        tenant_id = response.json()["id"]
        email = f"admin@{slug}.example.com"
        self.create_user(slug, email, role="tenant_admin", headers=self.admin_headers)
        token = self.login(email, tenant=slug)["access_token"]
        return TenantCtx(slug=slug, id=tenant_id, admin_email=email, admin_headers=bearer(token))

    def create_user(
        self, slug: str, email: str, *, role: str = "member", headers: dict[str, str] | None = None
    ) -> dict:
        response = self.client.post(
            f"/{slug}/admin/users",
            json={"email": email, "password": PASSWORD, "role": role},
            headers=headers or self.admin_headers,
        )
        assert response.status_code == 201, response.text
        return response.json()

    def audit_rows(self, tenant: TenantCtx, **filters: object) -> list[dict]:
        """The tenant's audit rows, newest first, once everything recorded so far is written."""
        self.client.portal.call(self.client.app.state.platform.audit.flush)  # type: ignore[union-attr]
        response = self.client.get(
            f"/{tenant.slug}/admin/audit", params={"limit": 500, **filters}, headers=tenant.admin_headers
        )
        assert response.status_code == 200, response.text
        return response.json()["data"]

    def set_limits(self, tenant: TenantCtx, **limits: object) -> dict:
        """Replaces the tenant's limits as a platform admin (what is not given becomes unlimited)."""
        body = dict.fromkeys(LIMIT_FIELDS) | {"fail_mode": "open"} | limits
        response = self.client.put(f"/{tenant.slug}/admin/limits", json=body, headers=self.admin_headers)
        assert response.status_code == 200, response.text
        return response.json()

    def update_settings(self, tenant: TenantCtx, **fields: object) -> dict:
        """Changes the named tenant settings as the tenant's admin."""
        response = self.client.patch(
            f"/{tenant.slug}/admin/settings", json=fields, headers=tenant.admin_headers
        )
        assert response.status_code == 200, response.text
        return response.json()

    def create_key(self, tenant: TenantCtx, *, scopes: list[str] | None = None, **extra: object) -> dict:
        body: dict[str, object] = {"name": "test key", **extra}
        if scopes is not None:
            body["scopes"] = scopes
        response = self.client.post(f"/{tenant.slug}/admin/keys", json=body, headers=tenant.admin_headers)
        assert response.status_code == 201, response.text
        return response.json()


def create_platform_admin(settings: Settings, email: str, password: str = PASSWORD) -> None:
    """Platform admins have no API to create them (only the CLI); this uses the same service call."""

    async def make(session: AsyncSession) -> None:
        await service.create_user(
            session,
            password_context(settings),
            tenant_id=None,
            email=email,
            password=password,
            role=UserRole.platform_admin,
            min_password_length=settings.min_password_length,
        )

    run_in_session(settings, make)


@pytest.fixture
def platform(client: TestClient, settings: Settings) -> PlatformHelper:
    return PlatformHelper(client, settings)


@pytest.fixture
def tenant_a(platform: PlatformHelper) -> TenantCtx:
    return platform.create_tenant("alpha")


@pytest.fixture
def tenant_b(platform: PlatformHelper) -> TenantCtx:
    return platform.create_tenant("bravo")
