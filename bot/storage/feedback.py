"""Ratings of answers: one vote per user per message; voting again changes the vote.

A vote without a comment keeps an earlier comment, so flipping a reaction does not erase what the user wrote.
"""

from __future__ import annotations

import psycopg
from psycopg_pool import AsyncConnectionPool

from bot.domain import Actor, Score
from bot.errors import NotFound, StorageError

UPSERT_FEEDBACK = """
INSERT INTO feedback (message_id, platform, user_id, score, comment)
VALUES (%(message_id)s, %(platform)s, %(user_id)s, %(score)s, %(comment)s)
ON CONFLICT (message_id, platform, user_id) DO UPDATE SET
    score = EXCLUDED.score,
    comment = CASE WHEN EXCLUDED.comment <> '' THEN EXCLUDED.comment ELSE feedback.comment END,
    updated_at = now()
"""


async def record(pool: AsyncConnectionPool, message_id: int, actor: Actor, score: Score, comment: str = "") -> None:
    """Store or change ``actor``'s vote; raises :class:`NotFound` when no such answer exists."""
    params = {
        "message_id": message_id,
        "platform": actor.platform,
        "user_id": actor.user_id,
        "score": score,
        "comment": comment,
    }
    try:
        async with pool.connection() as conn:
            await conn.execute(UPSERT_FEEDBACK, params)
    except (psycopg.errors.ForeignKeyViolation, psycopg.errors.NumericValueOutOfRange) as e:
        raise NotFound(f"no answer with id {message_id}") from e
    except psycopg.Error as e:
        raise StorageError(f"cannot record feedback: {e}") from e
