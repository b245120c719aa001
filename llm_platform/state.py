"""What one API process holds for its lifetime: settings, database, Redis, the login throttle, the
hashing context, the worker registry, the dispatcher, the meter, the caches and the writers.

The app's lifespan builds it and keeps it at `app.state.platform`. Each component's FastAPI dependency,
defined beside the component (SessionDep in llm_platform.core.db, CatalogueDep in models_registry.service,
...), reads its field there by name, so that no domain imports this module: it imports every domain.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property, partial
from typing import Annotated

from fastapi import Depends
from passlib.context import CryptContext
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from starlette.requests import HTTPConnection

from llm_platform.audit.writer import AuditWriter
from llm_platform.auth.key_cache import ApiKeyCache
from llm_platform.auth.security import password_context
from llm_platform.auth.service import load_api_key
from llm_platform.auth.throttle import LoginThrottle
from llm_platform.cache.response_cache import MemoryResponseCache, RedisResponseCache, ResponseCache
from llm_platform.chat.conversations import ConversationStore
from llm_platform.chat.turn import ChatTurns
from llm_platform.core.db import create_engine_for, create_session_factory
from llm_platform.core.redis_client import connect as connect_redis
from llm_platform.core.settings import Settings
from llm_platform.embeddings.flow import EmbeddingsFlow
from llm_platform.knowledge.embedding import DispatchedEmbedder
from llm_platform.knowledge.ingestion import Ingester
from llm_platform.knowledge.search import KnowledgeBase
from llm_platform.knowledge.store import IndexStore
from llm_platform.metrics.api import ApiMetrics
from llm_platform.ratelimit.memory_limiter import MemoryLimiter
from llm_platform.ratelimit.meter import Meter
from llm_platform.ratelimit.redis_limiter import RedisLimiter
from models_registry.dispatch import Dispatcher
from models_registry.registry import InProcessWorkerRegistry, RedisWorkerRegistry, WorkerRegistry
from models_registry.service import Catalogue
from tenants.caches import AdminCaches
from tenants.policy import TenantPolicies
from tenants.usage_writer import UsageWriter


@dataclass
class PlatformState:
    settings: Settings
    engine: AsyncEngine
    session_factory: async_sessionmaker[AsyncSession]
    login_throttle: LoginThrottle
    key_cache: ApiKeyCache
    passwords: CryptContext
    redis: Redis | None
    registry: WorkerRegistry
    dispatcher: Dispatcher
    policies: TenantPolicies
    catalogue: Catalogue
    cache: ResponseCache
    meter: Meter
    audit: AuditWriter
    usage: UsageWriter
    knowledge: KnowledgeBase
    ingester: Ingester
    metrics: ApiMetrics

    @classmethod
    def build(cls, settings: Settings) -> PlatformState:
        engine = create_engine_for(settings)
        redis = (
            connect_redis(settings.redis_url, settings.redis_max_connections, settings.redis_pool_timeout_s)
            if settings.redis_url
            else None
        )
        registry: WorkerRegistry = (
            RedisWorkerRegistry(redis, settings.worker_ttl_s)
            if redis
            else InProcessWorkerRegistry(settings.worker_ttl_s)
        )
        session_factory = create_session_factory(engine)
        policies = TenantPolicies(session_factory)
        usage = UsageWriter(session_factory)
        dispatcher = Dispatcher(
            registry,
            settings.resolved_worker_secret,
            {name: key.get_secret_value() for name, key in settings.upstream_api_keys.items()},
        )
        catalogue = Catalogue(policies, session_factory)
        metrics = ApiMetrics(settings.metrics_tenant_label)
        embedder = DispatchedEmbedder(
            dispatcher, catalogue, settings.default_embedding_model, settings.knowledge_embed_batch
        )
        return cls(
            settings=settings,
            engine=engine,
            session_factory=session_factory,
            login_throttle=LoginThrottle(settings, redis),
            key_cache=ApiKeyCache(partial(load_api_key, session_factory)),
            passwords=password_context(settings),
            redis=redis,
            registry=registry,
            dispatcher=dispatcher,
            policies=policies,
            catalogue=catalogue,
            cache=RedisResponseCache(redis) if redis else MemoryResponseCache(settings.cache_memory_bytes),
            meter=Meter(
                policies,
                session_factory,
                RedisLimiter(redis),
                MemoryLimiter(),
                ledger_sync=usage.flush,
                metrics=metrics,
            )
            if redis
            else Meter(policies, session_factory, MemoryLimiter(), ledger_sync=usage.flush, metrics=metrics),
            usage=usage,
            audit=AuditWriter(
                session_factory,
                settings.resolved_audit_spool_dir,
                queue_size=settings.audit_queue_size,
                batch_size=settings.audit_batch_size,
            ),
            knowledge=KnowledgeBase(
                engine,
                session_factory,
                embedder,
                settings.knowledge_max_indexed_chunks,
                settings.knowledge_ann_min_chunks,
                IndexStore(settings.resolved_knowledge_index_dir),
            ),
            ingester=Ingester(session_factory, embedder, settings, metrics),
            metrics=metrics,
        )

    @cached_property
    def chat_turns(self) -> ChatTurns:
        """The chat turn over these components: built once, not per request (it holds no request's state)."""
        return ChatTurns(
            self.catalogue,
            self.policies,
            self.cache,
            self.meter,
            self.dispatcher,
            ConversationStore(self.session_factory),
            self.usage,
            self.settings.default_chat_model,
            self.settings.default_max_tokens,
            self.knowledge,
            self.metrics,
        )

    @cached_property
    def embeddings(self) -> EmbeddingsFlow:
        """The embeddings flow over these components: built once, like the chat turn."""
        return EmbeddingsFlow(
            self.catalogue,
            self.policies,
            self.cache,
            self.meter,
            self.dispatcher,
            self.usage,
            self.settings.default_embedding_model,
            self.metrics,
        )

    @property
    def admin_caches(self) -> AdminCaches:
        """What the tenant domain's admin changes must forget in this process."""
        return AdminCaches(api_keys=self.key_cache, policies=self.policies)

    async def start(self) -> None:
        await self.usage.start()
        await self.audit.start()
        self.ingester.start()  # its first round picks up documents a stopped process left
        await self.knowledge.start()

    async def close(self) -> None:
        await self.ingester.close()
        await self.knowledge.close()  # saved for the next start
        await self.usage.close()  # before the database goes: what is pending is written out first
        await self.audit.close()
        await self.dispatcher.aclose()
        if self.redis is not None:
            await self.redis.aclose()
        await self.engine.dispose()


async def get_state(connection: HTTPConnection) -> PlatformState:
    return connection.app.state.platform


StateDep = Annotated[PlatformState, Depends(get_state)]  # for the app shell: a domain takes its components
