"""A small sample knowledge base, so ``lorebot chat`` on a fresh machine has something to answer from."""

from __future__ import annotations

from pathlib import Path

from bot.domain import Actor

SAMPLE_DIR = Path(__file__).resolve().parent


def sample_files() -> list[Path]:
    return sorted(SAMPLE_DIR.glob("*.md"))


async def ensure_sample_knowledge(service, actor: Actor) -> int:
    """Add the sample documents when the default scope is empty; return how many were added."""
    scope = service.settings.default_scope
    if await service.list_documents(actor, (scope,)):
        return 0
    for path in sample_files():
        await service.add_path(actor, path, scope=scope)
    return len(sample_files())
