"""`/{tenant}/conversations`: the caller's own stored conversations (create, list, read)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status

from llm_platform.auth.dependencies import InferenceDep, InferenceTenantDep
from llm_platform.chat import conversations
from llm_platform.chat.schemas import (
    ConversationCreate,
    ConversationDetail,
    ConversationOut,
    ConversationPage,
    StoredMessage,
)
from llm_platform.core.db import SessionDep
from llm_platform.core.openapi_errors import errors

router = APIRouter(prefix="/{tenant}/conversations", tags=["conversations"])


@router.post("", status_code=status.HTTP_201_CREATED)
async def create_conversation(
    body: ConversationCreate, tenant: InferenceTenantDep, principal: InferenceDep, session: SessionDep
) -> ConversationOut:
    conversation = await conversations.create_conversation(session, tenant.id, principal, body.title)
    return ConversationOut.model_validate(conversation)


@router.get("", responses=errors(400))  # 400: a bad cursor
async def list_conversations(
    tenant: InferenceTenantDep,
    principal: InferenceDep,
    session: SessionDep,
    cursor: Annotated[str | None, Query(max_length=300)] = None,
    limit: Annotated[int, Query(ge=1, le=conversations.MAX_PAGE)] = conversations.DEFAULT_PAGE,
) -> ConversationPage:
    """The caller's own conversations, most recently active first, a page at a time."""
    found, next_cursor = await conversations.list_conversations(
        session, tenant.id, principal, cursor=cursor, limit=limit
    )
    return ConversationPage(data=[ConversationOut.model_validate(c) for c in found], next_cursor=next_cursor)


@router.get("/{conversation_id}")
async def read_conversation(
    conversation_id: str, tenant: InferenceTenantDep, principal: InferenceDep, session: SessionDep
) -> ConversationDetail:
    conversation = await conversations.get_conversation(session, tenant.id, principal, conversation_id)
    stored = [StoredMessage.model_validate(m) for m in await conversations.messages(session, conversation)]
    return ConversationDetail(**ConversationOut.model_validate(conversation).model_dump(), messages=stored)
