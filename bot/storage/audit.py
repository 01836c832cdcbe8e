"""The audit log of admin actions (allowed or refused).

Every text field is cleaned (:func:`bot.validation.clean_text`) before it is written, so an action is audited
whatever ids and targets it came with: a refusal of a forged id is exactly what the log is for.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from bot.domain import Actor
from bot.errors import StorageError
from bot.validation import clean_text

INSERT_ENTRY = """
INSERT INTO audit_log (platform, user_id, user_name, action, target, allowed, detail)
VALUES (%(platform)s, %(user_id)s, %(user_name)s, %(action)s, %(target)s, %(allowed)s, %(detail)s)
"""


async def write(
    pool: AsyncConnectionPool, actor: Actor, action: str, target: str, *, allowed: bool, detail: dict[str, Any]
) -> None:
    """Append one entry; raises :class:`StorageError` if the database refuses it."""
    params = {
        "platform": clean_text(actor.platform),
        "user_id": clean_text(actor.user_id),
        "user_name": clean_text(actor.display_name),
        "action": action,
        "target": clean_text(target[:500]),
        "allowed": allowed,
        "detail": Jsonb(detail),
    }
    try:
        async with pool.connection() as conn:
            await conn.execute(INSERT_ENTRY, params)
    except psycopg.Error as e:
        raise StorageError(f"cannot write the audit log: {e}") from e
