"""The support desk's records: channel behaviour, scope footers and hand-over targets set from chat, hand-overs,
answers people gave that were saved as curated knowledge, and the figures of the report."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import class_row, dict_row
from psycopg_pool import AsyncConnectionPool

from bot.errors import StorageError
from bot.storage.errors import execute, fetch_one

SELECT_CHANNEL = """
SELECT mode, language FROM desk_channels
WHERE platform = %(platform)s AND workspace = %(workspace)s AND channel = %(channel)s
"""
UPSERT_CHANNEL = """
INSERT INTO desk_channels (platform, workspace, channel, mode, language, updated_by)
VALUES (%(platform)s, %(workspace)s, %(channel)s, %(mode)s, %(language)s, %(updated_by)s)
ON CONFLICT (platform, workspace, channel) DO UPDATE SET
    mode = EXCLUDED.mode, language = EXCLUDED.language, updated_by = EXCLUDED.updated_by, updated_at = now()
"""
SELECT_FOOTER = "SELECT footer FROM desk_scopes WHERE scope = %(scope)s"
UPSERT_FOOTER = """
INSERT INTO desk_scopes (scope, footer, updated_by) VALUES (%(scope)s, %(footer)s, %(updated_by)s)
ON CONFLICT (scope) DO UPDATE SET footer = EXCLUDED.footer, updated_by = EXCLUDED.updated_by, updated_at = now()
"""
SELECT_TARGET = """
SELECT channel, support_group FROM desk_handover_targets WHERE scope = %(scope)s AND platform = %(platform)s
"""
UPSERT_TARGET = """
INSERT INTO desk_handover_targets (scope, platform, channel, support_group, updated_by)
VALUES (%(scope)s, %(platform)s, %(channel)s, %(support_group)s, %(updated_by)s)
ON CONFLICT (scope, platform) DO UPDATE SET
    channel = EXCLUDED.channel, support_group = EXCLUDED.support_group, updated_by = EXCLUDED.updated_by,
    updated_at = now()
"""

SELECT_ASKED = """
SELECT m.id AS message_id, m.platform, m.user_id, m.question, m.answer, m.found, m.scopes,
       c.workspace, c.channel, c.thread,
       ARRAY(
           SELECT d.title FROM unnest(m.retrieved_chunk_ids) WITH ORDINALITY AS r(chunk_id, n)
           JOIN chunks ch ON ch.id = r.chunk_id JOIN documents d ON d.id = ch.document_id
           ORDER BY r.n
       ) AS sources
FROM messages m LEFT JOIN conversations c ON c.id = m.conversation_id
WHERE m.id = %(message_id)s
"""
INSERT_ESCALATION = """
INSERT INTO escalations (message_id, reason, platform, scope, requested_by, channel)
VALUES (%(message_id)s, %(reason)s, %(platform)s, %(scope)s, %(requested_by)s, %(channel)s)
ON CONFLICT (message_id) DO UPDATE SET message_id = EXCLUDED.message_id
RETURNING id, (xmax = 0) AS created
"""
UPDATE_ESCALATION_POST = "UPDATE escalations SET post_ref = %(post_ref)s WHERE id = %(id)s"
SELECT_ESCALATION_BY_POST = """
SELECT e.id, e.scope, m.question FROM escalations e JOIN messages m ON m.id = e.message_id
WHERE e.platform = %(platform)s AND e.channel = %(channel)s AND e.post_ref = %(post_ref)s
"""
INSERT_CURATED = """
INSERT INTO curated_answers (escalation_id, scope, question, answer, document_id, saved_by)
VALUES (%(escalation_id)s, %(scope)s, %(question)s, %(answer)s, %(document_id)s, %(saved_by)s)
ON CONFLICT (escalation_id) DO UPDATE SET
    answer = EXCLUDED.answer, document_id = EXCLUDED.document_id, saved_by = EXCLUDED.saved_by, created_at = now()
"""
SELECT_CURATED = """
SELECT id, scope, question, answer, document_id FROM curated_answers ORDER BY id LIMIT %(limit)s
"""


@dataclass(frozen=True, slots=True)
class AskedMessage:
    """An answered question with where it was asked and the titles of the passages retrieved for it."""

    message_id: int
    platform: str
    user_id: str
    question: str
    answer: str
    found: bool
    scopes: list[str]
    workspace: str | None
    channel: str | None
    thread: str | None
    sources: list[str]


@dataclass(frozen=True, slots=True)
class EscalationRef:
    id: int
    scope: str
    question: str


@dataclass(frozen=True, slots=True)
class CuratedAnswer:
    id: int
    scope: str
    question: str
    answer: str
    document_id: int | None


async def _fetch_one(pool: AsyncConnectionPool, query: str, params: dict[str, Any], what: str) -> Any:
    return await fetch_one(pool, query, params, failure=f"cannot {what}")


async def _execute(pool: AsyncConnectionPool, query: str, params: dict[str, Any], what: str) -> None:
    await execute(pool, query, params, failure=f"cannot {what}")


async def channel(pool: AsyncConnectionPool, platform: str, workspace: str, channel: str) -> tuple[str, str] | None:
    """``(mode, language)`` set from chat for the channel, or None."""
    params = {"platform": platform, "workspace": workspace, "channel": channel}
    return await _fetch_one(pool, SELECT_CHANNEL, params, "read the channel's desk settings")


async def set_channel(
    pool: AsyncConnectionPool, platform: str, workspace: str, channel: str, *, mode: str, language: str, by: str
) -> None:
    params = {
        "platform": platform,
        "workspace": workspace,
        "channel": channel,
        "mode": mode,
        "language": language,
        "updated_by": by,
    }
    await _execute(pool, UPSERT_CHANNEL, params, "store the channel's desk settings")


async def footer(pool: AsyncConnectionPool, scope: str) -> str | None:
    row = await _fetch_one(pool, SELECT_FOOTER, {"scope": scope}, "read the scope's footer")
    return row[0] if row else None


async def set_footer(pool: AsyncConnectionPool, scope: str, footer: str, *, by: str) -> None:
    params = {"scope": scope, "footer": footer, "updated_by": by}
    await _execute(pool, UPSERT_FOOTER, params, "store the scope's footer")


async def handover_target(pool: AsyncConnectionPool, scope: str, platform: str) -> tuple[str, str] | None:
    """``(channel, support_group)`` set from chat for the scope on ``platform``, or None."""
    return await _fetch_one(
        pool, SELECT_TARGET, {"scope": scope, "platform": platform}, "read the scope's hand-over target"
    )


async def set_handover_target(
    pool: AsyncConnectionPool, scope: str, platform: str, channel: str, support_group: str, *, by: str
) -> None:
    params = {
        "scope": scope,
        "platform": platform,
        "channel": channel,
        "support_group": support_group,
        "updated_by": by,
    }
    await _execute(pool, UPSERT_TARGET, params, "store the scope's hand-over target")


async def asked_message(pool: AsyncConnectionPool, message_id: int) -> AskedMessage | None:
    try:
        async with pool.connection() as conn:
            cursor = conn.cursor(row_factory=class_row(AskedMessage))
            return await (await cursor.execute(SELECT_ASKED, {"message_id": message_id})).fetchone()
    except psycopg.errors.NumericValueOutOfRange:
        return None
    except psycopg.Error as e:
        raise StorageError(f"cannot read message {message_id}: {e}") from e


async def add_escalation(
    pool: AsyncConnectionPool, message_id: int, *, reason: str, platform: str, scope: str, by: str, channel: str
) -> tuple[int, bool]:
    """The hand-over's id, and whether it is new (False when the message was already handed over)."""
    params = {
        "message_id": message_id,
        "reason": reason,
        "platform": platform,
        "scope": scope,
        "requested_by": by,
        "channel": channel,
    }
    escalation_id, created = await _fetch_one(pool, INSERT_ESCALATION, params, "record the hand-over")
    return escalation_id, created


async def set_escalation_post(pool: AsyncConnectionPool, escalation_id: int, post_ref: str) -> None:
    """Remember the hand-over post (its thread is where people answer)."""
    params = {"id": escalation_id, "post_ref": post_ref}
    await _execute(pool, UPDATE_ESCALATION_POST, params, "record the hand-over post")


async def escalation_by_post(
    pool: AsyncConnectionPool, platform: str, channel: str, post_ref: str
) -> EscalationRef | None:
    params = {"platform": platform, "channel": channel, "post_ref": post_ref}
    try:
        async with pool.connection() as conn:
            cursor = conn.cursor(row_factory=class_row(EscalationRef))
            return await (await cursor.execute(SELECT_ESCALATION_BY_POST, params)).fetchone()
    except psycopg.Error as e:
        raise StorageError(f"cannot read the hand-over: {e}") from e


async def add_curated(
    pool: AsyncConnectionPool,
    *,
    escalation_id: int,
    scope: str,
    question: str,
    answer: str,
    document_id: int,
    by: str,
) -> None:
    """Record a saved answer (saving the same hand-over again replaces it)."""
    params = {
        "escalation_id": escalation_id,
        "scope": scope,
        "question": question,
        "answer": answer,
        "document_id": document_id,
        "saved_by": by,
    }
    await _execute(pool, INSERT_CURATED, params, "record the curated answer")


async def curated_answers(pool: AsyncConnectionPool, *, limit: int) -> list[CuratedAnswer]:
    """Saved answers, oldest first: curated SFT data."""
    try:
        async with pool.connection() as conn:
            cursor = conn.cursor(row_factory=class_row(CuratedAnswer))
            return await (await cursor.execute(SELECT_CURATED, {"limit": limit})).fetchall()
    except psycopg.Error as e:
        raise StorageError(f"cannot read curated answers: {e}") from e


# --- the report -----------------------------------------------------------------------------------

_WINDOW = "m.created_at >= %(since)s AND (%(scope)s::text IS NULL OR %(scope)s = ANY(m.scopes))"

REPORT_FIGURES = f"""
SELECT count(*) AS asked,
       count(*) FILTER (WHERE m.found) AS answered,
       count(*) FILTER (WHERE NOT m.found) AS not_found,
       COALESCE(percentile_cont(0.5) WITHIN GROUP (ORDER BY m.latency_ms), 0)::float AS median_latency_ms,
       (SELECT count(*) FROM feedback f JOIN messages m ON m.id = f.message_id WHERE {_WINDOW} AND f.score = 1)
           AS thumbs_up,
       (SELECT count(*) FROM feedback f JOIN messages m ON m.id = f.message_id WHERE {_WINDOW} AND f.score = -1)
           AS thumbs_down,
       (SELECT count(*) FROM escalations e JOIN messages m ON m.id = e.message_id WHERE {_WINDOW}) AS escalations
FROM messages m WHERE {_WINDOW}
"""

REPORT_PROBLEMS = f"""
SELECT m.id, m.question, NOT m.found AS not_found,
       EXISTS (SELECT 1 FROM feedback f WHERE f.message_id = m.id AND f.score = -1) AS thumbs_down
FROM messages m
WHERE {_WINDOW}
  AND (NOT m.found OR EXISTS (SELECT 1 FROM feedback f WHERE f.message_id = m.id AND f.score = -1))
ORDER BY m.id DESC
LIMIT %(limit)s
"""

REPORT_CITED = f"""
SELECT d.id, d.title, d.scope, count(*) AS citations
FROM messages m
CROSS JOIN LATERAL unnest(m.cited_chunk_ids) AS cited(chunk_id)
JOIN chunks c ON c.id = cited.chunk_id
JOIN documents d ON d.id = c.document_id
WHERE {_WINDOW}
GROUP BY d.id
ORDER BY citations DESC, d.id
LIMIT %(limit)s
"""

REPORT_NEVER_CITED = f"""
WITH cited AS (
    SELECT DISTINCT c.document_id
    FROM messages m
    CROSS JOIN LATERAL unnest(m.cited_chunk_ids) AS x(chunk_id)
    JOIN chunks c ON c.id = x.chunk_id
    WHERE {_WINDOW}
)
SELECT d.id, d.title, d.scope, count(*) OVER () AS total
FROM documents d
WHERE (%(scope)s::text IS NULL OR d.scope = %(scope)s) AND d.id NOT IN (SELECT document_id FROM cited)
ORDER BY d.added_at, d.id
LIMIT %(limit)s
"""

KB_STATUS = """
SELECT scope, COALESCE(d.documents, 0) AS documents, COALESCE(d.chunks, 0) AS chunks, d.last_update,
       COALESCE(src.sources, 0) AS sources, src.last_sync
FROM (
    SELECT scope, count(*) AS documents, sum(chunk_count)::bigint AS chunks, max(updated_at) AS last_update
    FROM documents GROUP BY scope
) AS d
FULL JOIN (
    SELECT scope, count(*) AS sources, max(last_sync_at) AS last_sync FROM sources GROUP BY scope
) AS src USING (scope)
ORDER BY scope
"""


@dataclass(frozen=True, slots=True)
class ReportRows:
    figures: dict[str, Any]
    problems: list[dict[str, Any]]
    cited: list[dict[str, Any]]
    never_cited: list[dict[str, Any]]


async def report_rows(
    pool: AsyncConnectionPool, *, since: datetime, scope: str | None, problem_limit: int, document_limit: int
) -> ReportRows:
    """Everything the report shows, read in one repeatable-read snapshot so the figures agree with each other."""
    window = {"since": since, "scope": scope}
    try:
        async with pool.connection() as conn, conn.transaction():
            await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            cursor = conn.cursor(row_factory=dict_row)
            figures = await (await cursor.execute(REPORT_FIGURES, window)).fetchone()
            problems = await (await cursor.execute(REPORT_PROBLEMS, {**window, "limit": problem_limit})).fetchall()
            cited = await (await cursor.execute(REPORT_CITED, {**window, "limit": document_limit})).fetchall()
            never = await (await cursor.execute(REPORT_NEVER_CITED, {**window, "limit": document_limit})).fetchall()
    except psycopg.Error as e:
        raise StorageError(f"cannot read the report: {e}") from e
    return ReportRows(figures or {}, problems, cited, never)


async def kb_status(pool: AsyncConnectionPool) -> list[dict[str, Any]]:
    """Per scope: documents, chunks and the last change; connected sources and their last sync."""
    try:
        async with pool.connection() as conn:
            cursor = conn.cursor(row_factory=dict_row)
            return await (await cursor.execute(KB_STATUS)).fetchall()
    except psycopg.Error as e:
        raise StorageError(f"cannot read the knowledge base status: {e}") from e
