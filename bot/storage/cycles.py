"""SFT cycles: which examples each cycle trained on, how far it got, and what the gate decided.

Examples already in a promoted cycle are what the serving adapter learned: later cycles skip them, and they
become the regression set every later candidate must still answer.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import class_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from bot.errors import StorageError
from bot.storage.errors import execute, fetch_all

_COLUMNS = "id, name, state, stage, data_key, candidate, started_by, started_at, finished_at, decision"
SELECT_OPEN = f"SELECT {_COLUMNS} FROM sft_cycles WHERE state = 'open'"
SELECT_LAST_FINISHED = f"SELECT {_COLUMNS} FROM sft_cycles WHERE state <> 'open' ORDER BY id DESC LIMIT 1"
SELECT_ALL = f"SELECT {_COLUMNS} FROM sft_cycles ORDER BY id"
INSERT_CYCLE = f"""
INSERT INTO sft_cycles (name, data_key, started_by) VALUES (%(name)s, %(data_key)s, %(actor)s)
RETURNING {_COLUMNS}
"""
INSERT_EXAMPLE = """
INSERT INTO sft_cycle_examples (cycle_id, key, message_id, lang, liked, example)
VALUES (%(cycle_id)s, %(key)s, %(message_id)s, %(lang)s, %(liked)s, %(example)s)
ON CONFLICT DO NOTHING
"""
SELECT_CYCLE_EXAMPLES = "SELECT example FROM sft_cycle_examples WHERE cycle_id = %(cycle_id)s ORDER BY key"
SELECT_LEARNED_KEYS = """
SELECT e.key FROM sft_cycle_examples e JOIN sft_cycles c ON c.id = e.cycle_id WHERE c.state = 'promoted'
"""
SELECT_REGRESSION = """
SELECT e.example, e.lang FROM sft_cycle_examples e JOIN sft_cycles c ON c.id = e.cycle_id
WHERE c.state = 'promoted' AND e.message_id IS NOT NULL AND e.liked
ORDER BY c.id DESC, e.key
LIMIT %(limit)s
"""
CYCLE_LOCK_ID = 0x5F7C1C1E  # arbitrary, constant: "one lorebot sft cycle at a time"
TRY_LOCK = "SELECT pg_try_advisory_lock(%(id)s)"
UNLOCK = "SELECT pg_advisory_unlock(%(id)s)"
UPDATE_STAGE = """
UPDATE sft_cycles SET stage = %(stage)s, candidate = COALESCE(%(candidate)s, candidate) WHERE id = %(id)s
"""
FINISH = """
UPDATE sft_cycles SET state = %(state)s, stage = 'done', decision = %(decision)s, finished_at = now()
WHERE id = %(id)s
"""
# The document each rated answer cites first: examples of one document stay on one side of the split.
SELECT_CITED_DOCUMENTS = """
SELECT m.id, d.source_uri
FROM messages m
CROSS JOIN LATERAL (
    SELECT d.source_uri FROM unnest(m.cited_chunk_ids) WITH ORDINALITY AS cited (chunk_id, position)
    JOIN chunks c ON c.id = cited.chunk_id JOIN documents d ON d.id = c.document_id
    ORDER BY cited.position LIMIT 1
) d
WHERE m.id = ANY(%(ids)s)
"""


@dataclass(frozen=True, slots=True)
class CycleRow:
    id: int
    name: str
    state: str  # open | promoted | rejected
    stage: str  # collected | dataset | trained | evaluated | done
    data_key: str
    candidate: str | None
    started_by: str
    started_at: datetime
    finished_at: datetime | None
    decision: dict[str, Any]


@dataclass(frozen=True, slots=True)
class CycleExample:
    key: str
    message_id: int | None
    lang: str
    example: dict[str, Any]
    liked: bool = True


@asynccontextmanager
async def exclusive(pool: AsyncConnectionPool) -> AsyncIterator[bool]:
    """Hold the cycle lock (a session advisory lock on one pooled connection) for the block; yields False when
    another process holds it, so two cycles never resume the same open cycle at once."""
    try:
        async with pool.connection() as conn:
            taken = (await (await conn.execute(TRY_LOCK, {"id": CYCLE_LOCK_ID})).fetchone())[0]
            try:
                yield bool(taken)
            finally:
                if taken:
                    await conn.execute(UNLOCK, {"id": CYCLE_LOCK_ID})
    except psycopg.Error as e:
        raise StorageError(f"cannot take the SFT cycle lock: {e}") from e


async def open_cycle(pool: AsyncConnectionPool) -> CycleRow | None:
    """The cycle that was started and not finished (at most one exists)."""
    rows = await _rows(pool, SELECT_OPEN, {}, CycleRow)
    return rows[0] if rows else None


async def last_finished(pool: AsyncConnectionPool) -> CycleRow | None:
    rows = await _rows(pool, SELECT_LAST_FINISHED, {}, CycleRow)
    return rows[0] if rows else None


async def cycles(pool: AsyncConnectionPool) -> list[CycleRow]:
    return await _rows(pool, SELECT_ALL, {}, CycleRow)


async def start(
    pool: AsyncConnectionPool, *, name: str, data_key: str, actor: str, examples: Sequence[CycleExample]
) -> CycleRow:
    """Record a new open cycle with its examples, in one transaction; :class:`StorageError` if one is open."""
    try:
        async with pool.connection() as conn, conn.transaction():
            cursor = conn.cursor(row_factory=class_row(CycleRow))
            await cursor.execute(INSERT_CYCLE, {"name": name, "data_key": data_key, "actor": actor})
            cycle = await cursor.fetchone()
            params = [
                {"cycle_id": cycle.id, "key": e.key, "message_id": e.message_id, "lang": e.lang,
                 "liked": e.liked, "example": Jsonb(e.example)}
                for e in examples
            ]  # fmt: skip
            if params:
                async with conn.cursor() as batch:
                    await batch.executemany(INSERT_EXAMPLE, params)
            return cycle
    except psycopg.errors.UniqueViolation as e:
        raise StorageError(f"cannot start cycle {name!r}: another cycle is open or the name is taken") from e
    except psycopg.Error as e:
        raise StorageError(f"cannot start cycle {name!r}: {e}") from e


async def examples(pool: AsyncConnectionPool, cycle_id: int) -> list[dict[str, Any]]:
    return [row["example"] for row in await _rows(pool, SELECT_CYCLE_EXAMPLES, {"cycle_id": cycle_id}, None)]


async def learned_keys(pool: AsyncConnectionPool) -> set[str]:
    """Keys of every example a promoted cycle trained on."""
    return {row["key"] for row in await _rows(pool, SELECT_LEARNED_KEYS, {}, None)}


async def regression_examples(pool: AsyncConnectionPool, *, limit: int) -> list[dict[str, Any]]:
    """Rated answers promoted cycles trained on, newest cycle first: ``{"example": ..., "lang": ...}``."""
    return await _rows(pool, SELECT_REGRESSION, {"limit": limit}, None)


async def cited_documents(pool: AsyncConnectionPool, message_ids: Sequence[int]) -> dict[int, str]:
    """The source URI of the first document each answer cites (answers citing nothing are absent)."""
    rows = await _rows(pool, SELECT_CITED_DOCUMENTS, {"ids": list(message_ids)}, None)
    return {row["id"]: row["source_uri"] for row in rows}


async def set_stage(pool: AsyncConnectionPool, cycle_id: int, stage: str, *, candidate: str | None = None) -> None:
    await _write(pool, UPDATE_STAGE, {"id": cycle_id, "stage": stage, "candidate": candidate})


async def finish(pool: AsyncConnectionPool, cycle_id: int, state: str, decision: dict[str, Any]) -> None:
    await _write(pool, FINISH, {"id": cycle_id, "state": state, "decision": Jsonb(decision)})


async def _rows(pool: AsyncConnectionPool, query: str, params: dict[str, Any], row: type | None) -> list:
    return await fetch_all(pool, query, params, row=row, failure="cannot read SFT cycles")


async def _write(pool: AsyncConnectionPool, query: str, params: dict[str, Any]) -> None:
    await execute(pool, query, params, failure=f"cannot update SFT cycle {params.get('id')}")
