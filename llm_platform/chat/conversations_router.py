"""`/{tenant}/conversations`: the caller's own stored conversations (create, list, read)."""

from __future__ import annotations

from fastapi import APIRouter, status

from llm_platform.auth.dependencies import InferenceDep, InferenceTenantDep
from llm_platform.chat import conversations
from llm_platform.chat.schemas import ConversationCreate, ConversationDetail, ConversationOut, StoredMessage
from llm_platform.core.db import SessionDep

router = APIRouter(prefix="/{tenant}/conversations", tags=["conversations"])


@router.post("", status_code=status.HTTP_201_CREATED)
async def create_conversation(
    body: ConversationCreate, tenant: InferenceTenantDep, principal: InferenceDep, session: SessionDep
) -> ConversationOut:
    conversation = await conversations.create_conversation(session, tenant.id, principal, body.title)
    return ConversationOut.model_validate(conversation)


@router.get("")
async def list_conversations(
    tenant: InferenceTenantDep, principal: InferenceDep, session: SessionDep
) -> list[ConversationOut]:
    found = await conversations.list_conversations(session, tenant.id, principal)
    return [ConversationOut.model_validate(conversation) for conversation in found]


@router.get("/{conversation_id}")
async def read_conversation(
    conversation_id: str, tenant: InferenceTenantDep, principal: InferenceDep, session: SessionDep
) -> ConversationDetail:
    conversation = await conversations.get_conversation(session, tenant.id, principal, conversation_id)
    stored = [StoredMessage.model_validate(m) for m in await conversations.messages(session, conversation)]
    return ConversationDetail(**ConversationOut.model_validate(conversation).model_dump(), messages=stored)
