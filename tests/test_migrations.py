"""One revision chain for Postgres and SQLite: it round-trips, and it matches the models exactly."""

from __future__ import annotations

import psycopg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect
from sqlalchemy.engine import make_url

from llm_platform.core.db import Base, sync_database_url
from llm_platform.core.migrate import downgrade_to_base, upgrade_to_head
from llm_platform.tables import import_all_models

EXPECTED_TABLES = {
    "audit_log",
    "audit_heads",
    "tenants",
    "users",
    "api_keys",
    "refresh_tokens",
    "tenant_limits",
    "tenant_settings",
    "models",
    "conversations",
    "conversation_messages",
    "usage_daily",
    "kb_collections",
    "kb_documents",
    "kb_chunks",
    "kb_versions",
    "alembic_version",
}


@pytest.fixture
def scratch_postgres_url(database_url: str):  # type: ignore[no-untyped-def]
    """A database of its own, so the round trip never races the schema other tests use."""
    url = make_url(database_url)
    admin_dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin_dsn, autocommit=True) as connection:
        connection.execute("DROP DATABASE IF EXISTS llmp_migrations WITH (FORCE)")
        connection.execute("CREATE DATABASE llmp_migrations")
    yield url.set(database="llmp_migrations").render_as_string(hide_password=False)
    with psycopg.connect(admin_dsn, autocommit=True) as connection:
        connection.execute("DROP DATABASE IF EXISTS llmp_migrations WITH (FORCE)")


def _tables(url: str) -> set[str]:
    engine = create_engine(sync_database_url(url))
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def _differences(url: str) -> list:
    import_all_models()
    engine = create_engine(sync_database_url(url))
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection)
            return compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()


@pytest.fixture(params=["postgres", "sqlite"])
def any_database_url(request, tmp_path):  # type: ignore[no-untyped-def]
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'llmp.db'}"
    return request.getfixturevalue("scratch_postgres_url")


def test_upgrade_downgrade_upgrade_round_trip(any_database_url):
    upgrade_to_head(any_database_url)
    assert _tables(any_database_url) == EXPECTED_TABLES
    downgrade_to_base(any_database_url)
    assert _tables(any_database_url) == {"alembic_version"}
    upgrade_to_head(any_database_url)
    assert _tables(any_database_url) == EXPECTED_TABLES


def test_models_and_migrations_agree(any_database_url):
    upgrade_to_head(any_database_url)
    assert _differences(any_database_url) == []
