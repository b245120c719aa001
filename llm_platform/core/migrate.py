"""Running Alembic from code (`llmp migrate`, start-up of the embedded platform, tests)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine

from llm_platform.core.db import sync_database_url

# `migrations` is installed beside `llm_platform` (in the checkout and in site-packages alike).
_ROOT = Path(__file__).resolve().parents[2]  # llm_platform/core/migrate.py -> the root
ALEMBIC_INI = _ROOT / "alembic.ini"
MIGRATIONS_DIR = _ROOT / "migrations"


def alembic_config(database_url: str) -> Config:
    config = Config(str(ALEMBIC_INI)) if ALEMBIC_INI.exists() else Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["database_url"] = database_url
    config.attributes["configure_logging"] = False
    return config


def upgrade_to_head(database_url: str) -> None:
    command.upgrade(alembic_config(database_url), "head")


def downgrade_to_base(database_url: str) -> None:
    command.downgrade(alembic_config(database_url), "base")


def revisions(database_url: str) -> tuple[str | None, str | None]:
    """The database's revision (None: never migrated) and the latest this code knows of."""
    head = ScriptDirectory.from_config(alembic_config(database_url)).get_current_head()
    engine = create_engine(sync_database_url(database_url))
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision(), head
    finally:
        engine.dispose()
