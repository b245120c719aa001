"""What one API process holds for its lifetime: settings, database, limiter storage, hashing context."""

from __future__ import annotations

from dataclasses import dataclass

from limits.aio.storage import Storage
from passlib.context import CryptContext
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from llm_platform.auth.security import password_context
from llm_platform.auth.throttle import LoginThrottle, limits_storage
from llm_platform.db import create_engine_for, create_session_factory
from llm_platform.settings import Settings


@dataclass
class PlatformState:
    settings: Settings
    engine: AsyncEngine
    session_factory: async_sessionmaker[AsyncSession]
    limits_storage: Storage
    login_throttle: LoginThrottle
    passwords: CryptContext

    @classmethod
    def build(cls, settings: Settings) -> PlatformState:
        engine = create_engine_for(settings)
        storage = limits_storage(settings)
        return cls(
            settings=settings,
            engine=engine,
            session_factory=create_session_factory(engine),
            limits_storage=storage,
            login_throttle=LoginThrottle(settings, storage),
            passwords=password_context(settings),
        )

    async def close(self) -> None:
        await self.engine.dispose()
