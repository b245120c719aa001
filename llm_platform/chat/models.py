"""Server-side conversation history, scoped to a tenant and to the user or key that owns it."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from llm_platform.core.db import Base, UUIDPrimaryKey, utcnow


class Conversation(UUIDPrimaryKey, Base):
    __tablename__ = "conversations"
    __table_args__ = (Index("ix_conversations_owner", "tenant_id", "owner_kind", "owner_id", "updated_at"),)

    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    owner_kind: Mapped[str] = mapped_column(String(16))  # user | api_key
    owner_id: Mapped[uuid.UUID]
    title: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class ConversationMessage(UUIDPrimaryKey, Base):
    __tablename__ = "conversation_messages"
    __table_args__ = (Index("ix_conversation_messages_order", "conversation_id", "position", unique=True),)

    conversation_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    position: Mapped[int]
    role: Mapped[str] = mapped_column(String(16))
    content: Mapped[str] = mapped_column(Text)
    model: Mapped[str | None] = mapped_column(String(200))  # which model wrote an assistant message
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
