"""Conversations and answered messages: the history a follow-up question is condensed with, the record SFT
rebuilds training examples from (question, the exact numbered context, answer, cited chunks), and the answer
itself, to show it again later from any process (sharing a private answer).
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from bot.domain import Answer, ConversationKey, Passage, Question, Turn
from bot.errors import StorageError

_KEY_MATCH = "platform = %(platform)s AND workspace = %(workspace)s AND channel = %(channel)s AND thread = %(thread)s"

CONVERSATION_EXISTS = f"SELECT EXISTS (SELECT 1 FROM conversations WHERE {_KEY_MATCH})"

SELECT_HISTORY = f"""
SELECT question, answer FROM (
    SELECT m.id, m.question, m.answer
    FROM messages m
    WHERE m.conversation_id = (SELECT id FROM conversations WHERE {_KEY_MATCH})
    ORDER BY m.id DESC
    LIMIT %(limit)s
) AS recent
ORDER BY id
"""

UPSERT_CONVERSATION = """
INSERT INTO conversations (platform, workspace, channel, thread)
VALUES (%(platform)s, %(workspace)s, %(channel)s, %(thread)s)
ON CONFLICT (platform, workspace, channel, thread) DO UPDATE SET thread = EXCLUDED.thread
RETURNING id
"""

INSERT_MESSAGE = """
INSERT INTO messages (
    conversation_id, platform, user_id, user_name, question, search_query, answer, found, scopes,
    retrieved_chunk_ids, cited_chunk_ids, prompt_context, model, latency_ms
) VALUES (
    %(conversation_id)s, %(platform)s, %(user_id)s, %(user_name)s, %(question)s, %(search_query)s, %(answer)s,
    %(found)s, %(scopes)s::text[], %(retrieved_chunk_ids)s::bigint[], %(cited_chunk_ids)s::bigint[],
    %(prompt_context)s, %(model)s, %(latency_ms)s
)
RETURNING id
"""

SELECT_ANSWER = """
SELECT platform, user_id, answer AS text, found, model, search_query, retrieved_chunk_ids, cited_chunk_ids
FROM messages WHERE id = %(id)s
"""

SELECT_CITED_CHUNKS = """
SELECT c.id AS chunk_id, c.document_id, d.title, coalesce(l.url, d.source_uri) AS source_uri, c.text, d.scope, c.ordinal
FROM chunks c JOIN documents d ON d.id = c.document_id
LEFT JOIN chunk_links l ON l.chunk_id = c.id  -- the exact place upstream of a synced chunk (bot.sources)
WHERE c.id = ANY(%(ids)s::bigint[])
"""


@dataclass(frozen=True, slots=True)
class StoredAnswer:
    """A recorded answer: who asked, what they were told, and the cited passages under their marker numbers (a
    passage whose document was removed since is missing)."""

    message_id: int
    platform: str
    user_id: str
    text: str
    found: bool
    model: str
    search_query: str
    cited: tuple[tuple[int, Passage], ...]


def _key_params(key: ConversationKey) -> dict[str, str]:
    return {"platform": key.platform, "workspace": key.workspace, "channel": key.channel, "thread": key.thread}


async def exists(pool: AsyncConnectionPool, key: ConversationKey) -> bool:
    """True when the bot has answered in this conversation before."""
    try:
        async with pool.connection() as conn:
            row = await (await conn.execute(CONVERSATION_EXISTS, _key_params(key))).fetchone()
    except psycopg.Error as e:
        raise StorageError(f"cannot look up the conversation: {e}") from e
    return bool(row and row[0])


async def history(pool: AsyncConnectionPool, key: ConversationKey, limit: int) -> list[Turn]:
    """The last ``limit`` exchanges of the conversation, oldest first (empty for an unknown conversation)."""
    if limit <= 0:
        return []
    try:
        async with pool.connection() as conn:
            rows = await (await conn.execute(SELECT_HISTORY, {**_key_params(key), "limit": limit})).fetchall()
    except psycopg.Error as e:
        raise StorageError(f"cannot read the conversation history: {e}") from e
    return [Turn(question=question, answer=answer) for question, answer in rows]


async def record_message(
    pool: AsyncConnectionPool, question: Question, answer: Answer, *, prompt_context: str, latency_ms: int
) -> int:
    """Store one answered question (creating its conversation on first use) and return the message id.

    ``prompt_context`` is the numbered context the model saw (empty when it saw none), for SFT to rebuild from.
    """
    params = {
        "platform": question.actor.platform,
        "user_id": question.actor.user_id,
        "user_name": question.actor.display_name,
        "question": question.text,
        "search_query": answer.search_query,
        "answer": answer.text,
        "found": answer.found,
        "scopes": list(question.scopes),
        "retrieved_chunk_ids": [p.chunk_id for p in answer.passages],
        "cited_chunk_ids": [c.chunk_id for c in answer.citations],
        "prompt_context": prompt_context,
        "model": answer.model,
        "latency_ms": latency_ms,
    }
    try:
        async with pool.connection() as conn, conn.transaction():
            conversation_id = None
            if question.conversation is not None:
                cursor = await conn.execute(UPSERT_CONVERSATION, _key_params(question.conversation))
                conversation_id = (await cursor.fetchone())[0]  # type: ignore[index]
            cursor = await conn.execute(INSERT_MESSAGE, {**params, "conversation_id": conversation_id})
            return (await cursor.fetchone())[0]  # type: ignore[index]
    except psycopg.Error as e:
        raise StorageError(f"cannot record the answer: {e}") from e


async def stored_answer(pool: AsyncConnectionPool, message_id: int) -> StoredAnswer | None:
    """The answer recorded as ``message_id``, or None. Marker ``[n]`` is the n-th retrieved chunk, as when asked."""
    try:
        async with pool.connection() as conn:
            cursor = conn.cursor(row_factory=dict_row)
            row = await (await cursor.execute(SELECT_ANSWER, {"id": message_id})).fetchone()
            if row is None:
                return None
            chunks = await (await cursor.execute(SELECT_CITED_CHUNKS, {"ids": row["cited_chunk_ids"]})).fetchall()
    except psycopg.Error as e:
        raise StorageError(f"cannot read answer {message_id}: {e}") from e
    passages = {chunk["chunk_id"]: Passage(score=0.0, **chunk) for chunk in chunks}
    retrieved, cited_ids = row.pop("retrieved_chunk_ids"), row.pop("cited_chunk_ids")
    cited = tuple(
        (retrieved.index(chunk_id) + 1, passages[chunk_id])
        for chunk_id in cited_ids
        if chunk_id in passages and chunk_id in retrieved
    )
    return StoredAnswer(message_id=message_id, cited=cited, **row)
