"""``lorebot doctor``: check each dependency and say what to fix, without starting the bots."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import httpx
import psycopg

from bot.errors import LorebotError
from bot.settings import Settings


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    ok: bool
    detail: str


async def run_checks(settings: Settings) -> list[Check]:
    database = await asyncio.to_thread(_check_database, settings)
    embedder = await asyncio.to_thread(_check_embedder, settings)
    llm = await _check_llm(settings)
    return [*database, embedder, llm]


def _check_database(settings: Settings) -> list[Check]:
    from bot.storage.pool import resolve_database_url

    where = "DATABASE_URL" if settings.database_url else f"embedded server in {settings.data_dir}"
    try:
        conninfo = resolve_database_url(settings)
        with psycopg.connect(conninfo, connect_timeout=5) as conn:
            version = conn.execute("SHOW server_version").fetchone()[0]
            row = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()
            available = conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'").fetchone()
            stored = None
            if conn.execute("SELECT to_regclass('lorebot_meta')").fetchone()[0]:
                stored = conn.execute("SELECT value FROM lorebot_meta WHERE key = 'embedding_dim'").fetchone()
    except (LorebotError, psycopg.Error) as e:
        return [Check("database", False, f"{where}: {e} — check DATABASE_URL and that the server runs")]
    checks = [Check("database", True, f"PostgreSQL {version} ({where})")]
    if row:
        checks.append(Check("pgvector", True, f"vector {row[0]}"))
    elif available:
        checks.append(Check("pgvector", True, "available, not yet created — run `lorebot migrate`"))
    else:
        checks.append(Check("pgvector", False, "extension not installed on the server — use a pgvector image"))
    if stored and int(stored[0]) != settings.embedding_dim:
        checks.append(
            Check("schema", False, f"database stores {stored[0]}-d embeddings, settings say {settings.embedding_dim}")
        )
    else:
        checks.append(Check("schema", True, "migrated" if stored else "not migrated yet — run `lorebot migrate`"))
    return checks


def _check_embedder(settings: Settings) -> Check:
    from bot.embeddings import load_embedder

    try:
        embedder = load_embedder(settings)
        vector = embedder.embed_query("health check")
    except LorebotError as e:
        return Check("embeddings", False, f"{settings.embedding_backend}: {e}")
    return Check("embeddings", True, f"{embedder.name}, {len(vector)} dimensions")


async def _check_llm(settings: Settings) -> Check:
    if not settings.llm_base_url:
        return Check("llm", True, "LLM_BASE_URL unset: the embedded local model starts on demand")
    url = settings.llm_base_url.rstrip("/") + "/models"
    headers = {"Authorization": f"Bearer {settings.llm_api_key.get_secret_value()}"}
    try:
        async with httpx.AsyncClient(timeout=httpx.Timeout(5.0, connect=settings.llm_connect_timeout_s)) as client:
            response = await client.get(url, headers=headers)
            response.raise_for_status()
    except httpx.HTTPError as e:
        return Check("llm", False, f"{url}: {e.__class__.__name__} {e} — check LLM_BASE_URL and the server")
    models = [m.get("id") for m in response.json().get("data", [])]
    if settings.llm_model not in models:
        return Check("llm", False, f"{url} serves {models}, not LLM_MODEL={settings.llm_model!r}")
    return Check("llm", True, f"{settings.llm_model} at {settings.llm_base_url}")
