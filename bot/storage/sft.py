"""Answers users rated 👍, with everything SFT needs to rebuild the exact prompt the model saw: the question,
the numbered context (``prompt_context``), the earlier turns of the same conversation the chain used as history,
and the answer."""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
from psycopg.rows import class_row
from psycopg_pool import AsyncConnectionPool

from bot.errors import StorageError

SELECT_RATED_ANSWERS = """
SELECT m.id, m.conversation_id, m.question, m.answer, m.prompt_context, m.scopes,
       COALESCE(h.turns, '[]'::jsonb) AS history
FROM messages m
JOIN feedback f ON f.message_id = m.id
LEFT JOIN LATERAL (
    SELECT jsonb_agg(jsonb_build_array(p.question, p.answer) ORDER BY p.id) AS turns
    FROM (
        SELECT prev.id, prev.question, prev.answer
        FROM messages prev
        WHERE prev.conversation_id = m.conversation_id AND prev.id < m.id
        ORDER BY prev.id DESC
        LIMIT %(history_turns)s
    ) AS p
) AS h ON true
WHERE m.found AND m.prompt_context <> ''
GROUP BY m.id, h.turns
HAVING sum(f.score) * %(sign)s > 0
ORDER BY m.id
LIMIT %(limit)s
"""


@dataclass(frozen=True, slots=True)
class RatedAnswer:
    id: int
    conversation_id: int | None
    question: str
    answer: str
    prompt_context: str
    scopes: list[str]
    history: list[list[str]]  # [[question, answer], ...] oldest first, as the chain saw them


async def rated_answers(
    pool: AsyncConnectionPool, *, history_turns: int, limit: int, liked: bool = True
) -> list[RatedAnswer]:
    """Answers with more 👍 than 👎 whose context was recorded (``liked=False``: more 👎 than 👍), oldest first."""
    try:
        async with pool.connection() as conn:
            cursor = conn.cursor(row_factory=class_row(RatedAnswer))
            await cursor.execute(
                SELECT_RATED_ANSWERS, {"history_turns": history_turns, "limit": limit, "sign": 1 if liked else -1}
            )
            return await cursor.fetchall()
    except psycopg.Error as e:
        raise StorageError(f"cannot read rated answers: {e}") from e
