"""How an answer's sources look in a terminal: the one footer under ``lorebot ask`` and ``lorebot chat`` answers."""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text

from bot.domain import Citation


def sources_text(citations: Sequence[Citation]) -> Text:
    """Numbered sources, one per line: ``  [1] Title — uri`` (dim, never read as markup)."""
    lines = [f"  [{citation.number}] {citation.title or 'untitled'} — {citation.source_uri}" for citation in citations]
    return Text("\n".join(lines), style="dim")
