"""Database: the declarative base, the engine and session factory, the column types we share, and a
request's session as a FastAPI dependency (SessionDep)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, TypeVar

from fastapi import Depends
from sqlalchemy import DateTime, Enum, MetaData, event
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator
from starlette.requests import HTTPConnection

from llm_platform.core.errors import PlatformError
from llm_platform.core.settings import Settings

# Named constraints make migrations reproducible and let Alembic alter them on SQLite (batch mode).
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# What "the database cannot be reached" looks like through SQLAlchemy: a refused or dropped connection
# (the driver's OperationalError or InterfaceError, wrapped) or no pooled connection free in time.
DATABASE_UNREACHABLE: tuple[type[Exception], ...] = (OperationalError, InterfaceError, PoolTimeout)


def describe_error(exc: BaseException) -> str:
    """Names an error for a log line without its text: SQLAlchemy's carries the SQL and its parameters,
    the driver's the server's address."""
    original = getattr(exc, "orig", None)
    if original is None:
        return type(exc).__name__
    return f"{type(exc).__name__} ({type(original).__module__.split('.')[0]}.{type(original).__name__})"


def utcnow() -> datetime:
    return datetime.now(UTC)


def assign(row: object, values: Mapping[str, object]) -> None:
    """Copies a validated update onto a row (the request schema decided which fields may be set)."""
    for name, value in values.items():
        setattr(row, name, value)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite hands back naive ones otherwise)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTCDateTime column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def str_enum(enum_cls: type[StrEnum]) -> Enum:
    """A StrEnum column stored as VARCHAR: portable to SQLite, and no ALTER TYPE dance to add a value."""
    return Enum(enum_cls, native_enum=False, length=32, values_callable=lambda e: [m.value for m in e])


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime}


class UUIDPrimaryKey:
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)


def sync_database_url(url: str) -> str:
    """The synchronous twin of an async URL, for Alembic (psycopg 3 serves both; SQLite needs pysqlite)."""
    parsed = make_url(url)
    if parsed.drivername == "sqlite+aiosqlite":
        parsed = parsed.set(drivername="sqlite")
    return parsed.render_as_string(hide_password=False)


def create_engine_for(settings: Settings) -> AsyncEngine:
    url = settings.resolved_database_url
    # A failed statement's error carries its parameters (password hashes, prompts, key hashes) in its
    # text, which a log line or traceback would then hold: hidden.
    if url.startswith("sqlite"):
        engine = create_async_engine(url, connect_args={"timeout": 30}, hide_parameters=True)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    return create_async_engine(
        url,
        pool_size=settings.database_pool_size,
        max_overflow=settings.database_pool_size,
        pool_pre_ping=True,
        hide_parameters=True,
        # A server that accepts connections but never answers would otherwise hold each request forever.
        connect_args={"connect_timeout": settings.database_connect_timeout_s},
    )


def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    # WAL lets the API and the CLI use the embedded database at the same time.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.close()


def create_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


async def get_session(connection: HTTPConnection) -> AsyncIterator[AsyncSession]:
    """A session of the process's factory, for one request. Model calls take none: they open one only
    when they must."""
    async with connection.app.state.platform.session_factory() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session)]


T = TypeVar("T")


async def save_unique(session: AsyncSession, conflict: PlatformError, *, commit: bool = True) -> None:
    """Commits (or only flushes); a unique-constraint violation rolls back and raises `conflict`."""
    try:
        await (session.commit() if commit else session.flush())
    except IntegrityError as exc:
        await session.rollback()
        raise conflict from exc


def run_in_session(settings: Settings, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """Runs `work` in a session of its own engine and event loop: for the CLI and scripts, not requests."""

    async def runner() -> T:
        engine = create_engine_for(settings)
        try:
            async with create_session_factory(engine)() as session:
                return await work(session)
        finally:
            await engine.dispose()

    return asyncio.run(runner())
