"""Conversations: history kept server-side, visible only to the principal that made it; and the store a
chat turn recalls a conversation from and remembers its turn in."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from llm_platform.auth.principal import Principal
from llm_platform.chat.models import Conversation, ConversationMessage
from llm_platform.core import cursors
from llm_platform.core.db import utcnow
from llm_platform.core.errors import NotFound
from llm_platform.core.unicode_text import storable
from models_registry.worker.protocol import ChatMessage

DEFAULT_PAGE = 50
MAX_PAGE = 100


def _owned_by(tenant_id: uuid.UUID, principal: Principal):  # type: ignore[no-untyped-def]
    return (
        Conversation.tenant_id == tenant_id,
        Conversation.owner_kind == principal.kind,
        Conversation.owner_id == principal.id,
    )


async def create_conversation(
    session: AsyncSession, tenant_id: uuid.UUID, principal: Principal, title: str | None = None
) -> Conversation:
    conversation = Conversation(
        tenant_id=tenant_id,
        owner_kind=principal.kind,
        owner_id=principal.id,
        title=(title or "New conversation")[:200],
    )
    session.add(conversation)
    await session.commit()
    return conversation


async def get_conversation(
    session: AsyncSession, tenant_id: uuid.UUID, principal: Principal, conversation_id: str | uuid.UUID
) -> Conversation:
    """The caller's own conversation; anyone else's (or a malformed id) is simply not found."""
    try:
        wanted = uuid.UUID(str(conversation_id))
    except ValueError:
        wanted = None
    conversation = None
    if wanted is not None:
        conversation = await session.scalar(
            select(Conversation).where(Conversation.id == wanted, *_owned_by(tenant_id, principal))
        )
    if conversation is None:
        raise NotFound("Conversation not found", code="conversation_not_found", param="conversation_id")
    return conversation


async def list_conversations(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    principal: Principal,
    *,
    cursor: str | None = None,
    limit: int = DEFAULT_PAGE,
) -> tuple[list[Conversation], str | None]:
    """The caller's own, most recently active first (a new turn moves its conversation to the top).
    The cursor names the last conversation of the page (updated_at, id)."""
    query = select(Conversation).where(*_owned_by(tenant_id, principal))
    if cursor is not None:
        query = query.where(cursors.older_than(Conversation.updated_at, Conversation.id, cursor, uuid.UUID))
    query = query.order_by(Conversation.updated_at.desc(), Conversation.id.desc()).limit(limit + 1)
    rows = (await session.scalars(query)).all()
    return cursors.cut(rows, limit, lambda conversation: (conversation.updated_at, conversation.id))


async def messages(session: AsyncSession, conversation: Conversation) -> list[ConversationMessage]:
    query = (
        select(ConversationMessage)
        .where(ConversationMessage.conversation_id == conversation.id)
        .order_by(ConversationMessage.position)
    )
    return list(await session.scalars(query))


async def history(session: AsyncSession, conversation: Conversation) -> list[ChatMessage]:
    return [ChatMessage(role=m.role, content=m.content) for m in await messages(session, conversation)]  # type: ignore[arg-type]


async def append_turn(
    session: AsyncSession,
    conversation_id: uuid.UUID,
    new_messages: list[ChatMessage],
    answer: str,
    model: str,
) -> None:
    """Stores what the caller said this turn and the model's answer, after the answer completed."""
    conversation = await session.get(Conversation, conversation_id, with_for_update=True)
    if conversation is None:  # deleted while the answer was being generated
        return
    position = await session.scalar(
        select(func.coalesce(func.max(ConversationMessage.position), -1)).where(
            ConversationMessage.conversation_id == conversation_id
        )
    )
    for message in [*new_messages, ChatMessage(role="assistant", content=answer)]:
        position += 1
        session.add(
            ConversationMessage(
                conversation_id=conversation_id,
                position=position,
                role=message.role,
                content=storable(message.content),
                model=model if message.role == "assistant" else None,
            )
        )
    if conversation.title == "New conversation":
        first_user = next((m.content for m in new_messages if m.role == "user"), None)
        if first_user:
            conversation.title = (
                storable(first_user.strip().splitlines()[0][:200])
                if first_user.strip()
                else conversation.title
            )
    conversation.updated_at = utcnow()
    await session.commit()


@dataclass(frozen=True)
class Memory:
    """Where a turn is remembered: its conversation, and what the caller said in this turn."""

    conversation_id: uuid.UUID
    new_messages: list[ChatMessage]


class ConversationStore:
    """Conversations as a chat turn uses them, each call in a session of its own: a turn needs none
    unless it names a conversation, and a stream outlives its request's session."""

    __slots__ = ("_sessions",)

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def recall(
        self,
        tenant_id: uuid.UUID,
        principal: Principal,
        conversation_id: str,
        new_messages: list[ChatMessage],
    ) -> tuple[list[ChatMessage], Memory]:
        """The caller's conversation's stored messages, and where to remember this turn."""
        async with self._sessions() as session:
            conversation = await get_conversation(session, tenant_id, principal, conversation_id)
            return await history(session, conversation), Memory(conversation.id, new_messages)

    async def remember(self, memory: Memory, answer: str, model: str) -> None:
        async with self._sessions() as session:
            await append_turn(session, memory.conversation_id, memory.new_messages, answer, model)
