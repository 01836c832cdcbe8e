"""Citation markers in model output: parse them, map them to the retrieved passages, drop the invalid ones.

Models write markers in several ways — ``[1]``, ``[1, 2]``, ``[1][2]``, full-width ``【1】`` — so a run of
adjacent markers is read as one group. A number that points to no retrieved passage is removed from the text
(the reader must never see a source that does not exist); repeated numbers collapse to one.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from bot.answer.prompt import NOT_FOUND_ANSWER
from bot.domain import Citation, Passage

SNIPPET_CHARS = 200

_NUMBERS = r"\d{1,3}(?:\s*[,，、;]\s*\d{1,3})*"
_MARKER = rf"(?:\[\s*{_NUMBERS}\s*\]|【\s*{_NUMBERS}\s*】)"
_MARKER_RUN = re.compile(rf"(?P<space>[ \t]*)(?P<run>{_MARKER}(?:[ \t]*{_MARKER})*)")
_DIGITS = re.compile(r"\d+")
_NOT_FOUND_KEY = re.sub(r"\W+", " ", NOT_FOUND_ANSWER.lower()).strip()


def _snippet(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= SNIPPET_CHARS else flat[: SNIPPET_CHARS - 1].rstrip() + "…"


def citation(number: int, passage: Passage) -> Citation:
    """Citation ``[number]`` of ``passage``, with a short snippet of its text."""
    return Citation(
        number=number,
        chunk_id=passage.chunk_id,
        document_id=passage.document_id,
        title=passage.title,
        source_uri=passage.source_uri,
        snippet=_snippet(passage.text),
    )


def resolve_citations(text: str, passages: Sequence[Passage]) -> tuple[str, tuple[Citation, ...]]:
    """Return ``text`` with only valid markers kept, and the cited passages in order of first mention.

    Marker ``[n]`` refers to ``passages[n - 1]``, the numbering :func:`bot.answer.prompt.format_context` uses.
    """
    cited: dict[int, Citation] = {}

    def rewrite(match: re.Match[str]) -> str:
        found = [int(d) for d in _DIGITS.findall(match["run"])]
        kept = list(dict.fromkeys(n for n in found if 1 <= n <= len(passages)))
        for number in kept:
            cited.setdefault(number, citation(number, passages[number - 1]))
        if not kept:
            return ""
        if kept == found:
            return match.group(0)
        return match["space"] + "".join(f"[{n}]" for n in kept)

    cleaned = _MARKER_RUN.sub(rewrite, text)
    return cleaned.strip(), tuple(cited.values())


def strip_markers(text: str) -> str:
    """``text`` without any citation marker."""
    return _MARKER_RUN.sub("", text).strip()


def is_not_found(text: str) -> bool:
    """True when the model replied with the not-found sentence (markers, case and punctuation ignored)."""
    key = re.sub(r"\W+", " ", strip_markers(text).lower()).strip()
    return key.startswith(_NOT_FOUND_KEY)
