"""The adapter registry: LoRA adapters, their scores and status, and the events that changed which one serves.

Changing the serving adapter is one transaction around a caller-supplied ``apply`` step (loading the adapter
into the model server): if the server refuses, nothing in the registry changes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import class_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from bot.errors import NotFound, StorageError
from bot.storage.errors import execute, fetch_all

_COLUMNS = """name, base_model, path, parent, dataset_hash, dataset_size, train_config, metrics, status,
    created_by, created_at, promoted_by, promoted_at"""
INSERT_ADAPTER = """
INSERT INTO sft_adapters (name, base_model, path, parent, dataset_hash, dataset_size, train_config, created_by)
VALUES (%(name)s, %(base_model)s, %(path)s, %(parent)s, %(dataset_hash)s, %(dataset_size)s, %(train_config)s,
        %(actor)s)
ON CONFLICT (name) DO NOTHING
"""
INSERT_EVENT = """
INSERT INTO sft_adapter_events (adapter, action, actor, detail)
VALUES (%(adapter)s, %(action)s, %(actor)s, %(detail)s)
"""
SELECT_ALL = f"SELECT {_COLUMNS} FROM sft_adapters ORDER BY created_at, name"
SELECT_ONE = f"SELECT {_COLUMNS} FROM sft_adapters WHERE name = %(name)s"
SELECT_SERVING = f"SELECT {_COLUMNS} FROM sft_adapters WHERE status = 'serving'"
LOCK_REGISTRY = "LOCK TABLE sft_adapters IN SHARE ROW EXCLUSIVE MODE"
UPDATE_METRICS = "UPDATE sft_adapters SET metrics = %(metrics)s WHERE name = %(name)s"
RETIRE_SERVING = "UPDATE sft_adapters SET status = %(status)s WHERE status = 'serving'"
SET_SERVING = """
UPDATE sft_adapters SET status = 'serving', promoted_by = %(actor)s, promoted_at = now() WHERE name = %(name)s
"""
SET_STATUS = "UPDATE sft_adapters SET status = %(status)s WHERE name = %(name)s"
# A cycle whose candidate passed the gate but waited for a person is promoted with it: its examples are learned.
CYCLE_PROMOTED = "UPDATE sft_cycles SET state = 'promoted' WHERE candidate = %(name)s AND state = 'passed'"
# The adapter to roll back to: the most recently promoted one that was neither rolled back nor rejected.
SELECT_PREVIOUS = f"""
SELECT {_COLUMNS} FROM sft_adapters a
JOIN LATERAL (
    SELECT max(e.id) AS last_promotion FROM sft_adapter_events e
    WHERE e.adapter = a.name AND e.action = 'promoted'
) p ON p.last_promotion IS NOT NULL
WHERE a.status = 'retired'
ORDER BY p.last_promotion DESC
LIMIT 1
"""
SELECT_EVENTS = """
SELECT id, adapter, action, actor, at, detail FROM sft_adapter_events ORDER BY id DESC LIMIT %(limit)s
"""


@dataclass(frozen=True, slots=True)
class AdapterRow:
    name: str
    base_model: str
    path: str
    parent: str | None
    dataset_hash: str
    dataset_size: int
    train_config: dict[str, Any]
    metrics: dict[str, Any]
    status: str  # candidate | serving | retired | rejected
    created_by: str
    created_at: datetime
    promoted_by: str | None
    promoted_at: datetime | None


@dataclass(frozen=True, slots=True)
class EventRow:
    id: int
    adapter: str
    action: str
    actor: str
    at: datetime
    detail: dict[str, Any]


Apply = Callable[[AdapterRow], Awaitable[None]]


async def register(
    pool: AsyncConnectionPool,
    *,
    name: str,
    base_model: str,
    path: str,
    parent: str | None,
    dataset_hash: str,
    dataset_size: int,
    train_config: dict[str, Any],
    actor: str,
) -> bool:
    """Add a candidate adapter; returns False (and changes nothing) when the name is already registered."""
    params = {
        "name": name,
        "base_model": base_model,
        "path": path,
        "parent": parent,
        "dataset_hash": dataset_hash,
        "dataset_size": dataset_size,
        "train_config": Jsonb(train_config),
        "actor": actor,
    }
    try:
        async with pool.connection() as conn, conn.transaction():
            cursor = await conn.execute(INSERT_ADAPTER, params)
            if cursor.rowcount == 0:
                return False
            await _event(conn, name, "registered", actor, {"path": path})
            return True
    except psycopg.errors.CheckViolation as e:
        raise StorageError(f"invalid adapter name {name!r}: letters, digits, '.', '_' and '-', at most 64") from e
    except psycopg.errors.ForeignKeyViolation as e:
        raise NotFound(f"no adapter named {parent!r} to continue from") from e
    except psycopg.Error as e:
        raise StorageError(f"cannot register adapter {name!r}: {e}") from e


async def set_metrics(pool: AsyncConnectionPool, name: str, metrics: dict[str, Any]) -> None:
    params = {"name": name, "metrics": Jsonb(metrics)}
    await execute(pool, UPDATE_METRICS, params, failure=f"cannot store metrics of {name!r}")


async def reject(pool: AsyncConnectionPool, name: str, actor: str, detail: dict[str, Any]) -> None:
    """Mark a candidate rejected (it failed the gate)."""
    try:
        async with pool.connection() as conn, conn.transaction():
            await conn.execute(SET_STATUS, {"name": name, "status": "rejected"})
            await _event(conn, name, "rejected", actor, detail)
    except psycopg.Error as e:
        raise StorageError(f"cannot reject adapter {name!r}: {e}") from e


async def adapters(pool: AsyncConnectionPool) -> list[AdapterRow]:
    return await _rows(pool, SELECT_ALL, {}, AdapterRow)


async def adapter(pool: AsyncConnectionPool, name: str) -> AdapterRow | None:
    rows = await _rows(pool, SELECT_ONE, {"name": name}, AdapterRow)
    return rows[0] if rows else None


async def serving(pool: AsyncConnectionPool) -> AdapterRow | None:
    rows = await _rows(pool, SELECT_SERVING, {}, AdapterRow)
    return rows[0] if rows else None


async def events(pool: AsyncConnectionPool, *, limit: int = 50) -> list[EventRow]:
    """The latest registry events, newest first."""
    return await _rows(pool, SELECT_EVENTS, {"limit": limit}, EventRow)


async def promote(
    pool: AsyncConnectionPool, name: str, actor: str, apply: Apply, detail: dict[str, Any]
) -> tuple[AdapterRow | None, AdapterRow]:
    """Make ``name`` the serving adapter; ``apply`` runs inside the transaction, so a refusal changes nothing.

    Returns ``(previously serving, now serving)``. Promoting the adapter that already serves re-applies it
    (the model server may have restarted) without a new event. Raises :class:`NotFound` for an unknown name.
    """
    try:
        async with pool.connection() as conn, conn.transaction():
            await conn.execute(LOCK_REGISTRY)
            target = await _one(conn, SELECT_ONE, {"name": name})
            if target is None:
                raise NotFound(f"no adapter named {name!r} (see `lorebot sft status`)")
            previous = await _one(conn, SELECT_SERVING, {})
            await apply(target)
            if previous is not None and previous.name == name:
                return previous, previous
            await conn.execute(RETIRE_SERVING, {"status": "retired"})
            await conn.execute(SET_SERVING, {"name": name, "actor": actor})
            await conn.execute(CYCLE_PROMOTED, {"name": name})
            await _event(conn, name, "promoted", actor, {**detail, "previous": previous and previous.name})
            now = await _one(conn, SELECT_ONE, {"name": name})
            return previous, now
    except psycopg.Error as e:
        raise StorageError(f"cannot promote adapter {name!r}: {e}") from e


async def rollback(pool: AsyncConnectionPool, actor: str, apply: Apply) -> tuple[AdapterRow, AdapterRow]:
    """Serve the adapter promoted before the current one again; the current one becomes ``rejected``.

    Returns ``(rolled back, now serving)``; raises :class:`NotFound` when nothing serves or nothing came before.
    """
    try:
        async with pool.connection() as conn, conn.transaction():
            await conn.execute(LOCK_REGISTRY)
            current = await _one(conn, SELECT_SERVING, {})
            if current is None:
                raise NotFound("no adapter is serving: nothing to roll back")
            previous = await _one(conn, SELECT_PREVIOUS, {})
            if previous is None:
                raise NotFound(f"{current.name} is the first adapter ever promoted: nothing to roll back to")
            await apply(previous)
            await conn.execute(SET_STATUS, {"name": current.name, "status": "rejected"})
            await conn.execute(SET_SERVING, {"name": previous.name, "actor": actor})
            await _event(conn, current.name, "rolled_back", actor, {"to": previous.name})
            await _event(conn, previous.name, "promoted", actor, {"rollback_from": current.name})
            now = await _one(conn, SELECT_ONE, {"name": previous.name})
            return current, now
    except psycopg.Error as e:
        raise StorageError(f"cannot roll back: {e}") from e


async def _event(conn: psycopg.AsyncConnection, adapter: str, action: str, actor: str, detail: dict) -> None:
    params = {"adapter": adapter, "action": action, "actor": actor, "detail": Jsonb(detail)}
    await conn.execute(INSERT_EVENT, params)


async def _one(conn: psycopg.AsyncConnection, query: str, params: dict[str, Any]) -> AdapterRow | None:
    cursor = conn.cursor(row_factory=class_row(AdapterRow))
    await cursor.execute(query, params)
    return await cursor.fetchone()


async def _rows(pool: AsyncConnectionPool, query: str, params: dict[str, Any], row: type) -> list:
    return await fetch_all(pool, query, params, row=row, failure="cannot read the adapter registry")
