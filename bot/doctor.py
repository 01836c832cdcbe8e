"""``lorebot doctor``: check each dependency and say what to fix, without starting the bots.

``--no-llm`` checks the database and the settings only: it calls no model, so the embedding model is not loaded
(torch and its weights cost seconds) and no language model endpoint is contacted. The embedding check then says
whether the configured model is installed and has the configured dimension, read from its files.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from bot.errors import LorebotError
from bot.llm_probe import probe_llm
from bot.settings import Settings

LLM_TIMEOUT_S = 5.0


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    ok: bool
    detail: str


async def run_checks(settings: Settings, *, models: bool = True) -> list[Check]:
    """Every check, in the order shown; ``models=False`` skips loading or calling any model."""
    database = await asyncio.to_thread(_check_database, settings)
    if not models:
        return [*database, _check_embedder_installed(settings)]
    embedder = await asyncio.to_thread(_check_embedder, settings)
    llm = await _check_llm(settings)
    return [*database, embedder, llm]


def _check_database(settings: Settings) -> list[Check]:
    from bot.storage.pool import resolve_database_url
    from bot.storage.status import database_status

    where = "DATABASE_URL" if settings.database_url else f"embedded server in {settings.data_dir}"
    try:
        status = database_status(resolve_database_url(settings))
    except LorebotError as e:
        return [Check("database", False, f"{where}: {e} — check DATABASE_URL and that the server runs")]
    checks = [Check("database", True, f"PostgreSQL {status.server_version} ({where})")]
    if status.vector_version:
        checks.append(Check("pgvector", True, f"vector {status.vector_version}"))
    elif status.vector_available:
        checks.append(Check("pgvector", True, "available, not yet created — run `lorebot migrate`"))
    else:
        checks.append(Check("pgvector", False, "extension not installed on the server — use a pgvector image"))
    stored = status.embedding_dim
    if stored is not None and stored != settings.embedding_dim:
        checks.append(
            Check("schema", False, f"database stores {stored}-d embeddings, settings say {settings.embedding_dim}")
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


def _check_embedder_installed(settings: Settings) -> Check:
    from bot.embeddings import describe_embedder

    try:
        detail = describe_embedder(settings)
    except LorebotError as e:
        return Check("embeddings", False, f"{settings.embedding_backend}: {e}")
    return Check("embeddings", True, f"{detail} (not loaded: --no-llm)")


async def _check_llm(settings: Settings) -> Check:
    if not settings.llm_base_url:
        return Check("llm", True, "LLM_BASE_URL unset: the embedded local model starts on demand")
    probe = await probe_llm(settings, timeout=LLM_TIMEOUT_S)
    if probe.problem:
        return Check("llm", False, f"{probe.url}: {probe.detail} — check LLM_BASE_URL and the server")
    if settings.llm_model not in probe.models:
        return Check("llm", False, f"{probe.url} serves {list(probe.models)}, not LLM_MODEL={settings.llm_model!r}")
    return Check("llm", True, f"{settings.llm_model} at {settings.llm_base_url}")
