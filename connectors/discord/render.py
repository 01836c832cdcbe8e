"""Discord's size limits and the pure functions that fit answers into them.

Discord rejects a message over 2,000 characters and an embed description over 4,096, so long answers are split
where a reader would pause (paragraph, line, sentence, word), never inside a ``[n]`` citation or a fenced code
block; a code block longer than one message is closed and reopened so every part still renders.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import discord

from bot.domain import Citation, Document, Passage

MAX_CONTENT_CHARS = 2000
MAX_EMBED_DESCRIPTION_CHARS = 4096
MAX_EMBED_TITLE_CHARS = 256
MIN_PREFERRED_PART_RATIO = 0.5
"""A paragraph or line break is preferred only if it keeps the part at least this full; else a sentence break."""
SNIPPET_CHARS = 160
SOURCES_COLOUR = 0x5865F2
PROGRESS_CURSOR = " ▌"
ELLIPSIS = "…"
THINKING_TEXT = "⏳ Looking that up…"
"""What the reply to a mention shows until the first words of the answer arrive."""

_FENCE = "```"
_CODE_BLOCK = re.compile(r"```.*?(?:```|\Z)", re.DOTALL)
_CITATION = re.compile(r"\[\d+(?:\s*[,;]\s*\d+)*\]")
_BOUNDARIES: tuple[tuple[re.Pattern[str], bool], ...] = (
    (re.compile(r"\n\s*\n"), True),
    (re.compile(r"\n"), True),
    (re.compile(r"(?<=[.!?])\s+|(?<=[。！？])"), False),
    (re.compile(r"\s+"), False),
)
"""Break patterns from best to worst, each with whether it must keep the part reasonably full."""


@dataclass(frozen=True, slots=True)
class _Cut:
    head_end: int
    rest_start: int
    head_suffix: str = ""
    rest_prefix: str = ""


def split_message(text: str, limit: int = MAX_CONTENT_CHARS) -> list[str]:
    """Split ``text`` into parts of at most ``limit`` characters at the most natural boundaries."""
    parts: list[str] = []
    rest = text.strip()
    while len(rest) > limit:
        cut = _best_cut(rest, limit)
        head = rest[: cut.head_end].rstrip() + cut.head_suffix
        rest = cut.rest_prefix + rest[cut.rest_start :].lstrip(" \n")
        if head.strip():
            parts.append(head)
    if rest.strip():
        parts.append(rest)
    return parts


def _best_cut(text: str, limit: int) -> _Cut:
    blocks = [m.span() for m in _CODE_BLOCK.finditer(text)]
    protected = blocks + [m.span() for m in _CITATION.finditer(text)]

    def allowed(position: int) -> bool:
        return 0 < position <= limit and not any(start < position < end for start, end in protected)

    for pattern, must_be_full in _BOUNDARIES:
        floor = int(limit * MIN_PREFERRED_PART_RATIO) if must_be_full else 1
        for match in reversed(list(pattern.finditer(text, 0, limit + 1))):
            if match.start() < floor:
                break
            if allowed(match.start()) and not _CITATION.match(text, match.end()):
                return _Cut(match.start(), match.end())
    opening = next(((start, end) for start, end in blocks if start < limit < end), None)
    if opening is not None and opening[0] == 0:
        return _split_code_block(text, limit)
    if opening is not None:
        return _Cut(opening[0], opening[0])
    position = limit
    while not allowed(position) and position > 1:
        position -= 1
    return _Cut(position, position)


def _split_code_block(text: str, limit: int) -> _Cut:
    """Cut a code block that alone exceeds ``limit``: close the fence here, reopen it (same language) next part."""
    language = text[len(_FENCE) : text.find("\n")].strip() if "\n" in text else ""
    suffix = "\n" + _FENCE
    budget = limit - len(suffix)
    newline = text.rfind("\n", len(_FENCE), budget)
    end = newline if newline > len(_FENCE) else budget
    return _Cut(end, end, head_suffix=suffix, rest_prefix=f"{_FENCE}{language}\n")


def progress_preview(text: str, limit: int = MAX_CONTENT_CHARS) -> str:
    """What a half-streamed answer shows: the text so far with a cursor, its tail if it is already too long."""
    shown = text.strip() + PROGRESS_CURSOR
    if len(shown) <= limit:
        return shown
    return ELLIPSIS + shown[-(limit - len(ELLIPSIS)) :]


def sources_embed(citations: Sequence[Citation]) -> discord.Embed | None:
    """An embed listing the cited sources as ``[n] title`` links (None when the answer cites nothing)."""
    if not citations:
        return None
    lines = [f"**[{c.number}]** {_link(c.title or c.source_uri, c.source_uri)}" for c in citations]
    return discord.Embed(title="Sources", description=_fit_lines(lines), colour=SOURCES_COLOUR)


def documents_embed(documents: Sequence[Document], scopes: Sequence[str]) -> discord.Embed:
    """The ``/kb list`` reply: one line per document with its id, title and chunk count."""
    lines = [
        f"`{d.id}` {_link(d.title or d.source_uri, d.source_uri)} · {d.chunk_count} chunks · {d.scope}"
        for d in documents
    ]
    title = _truncate(f"Documents in {', '.join(scopes)}", MAX_EMBED_TITLE_CHARS)
    return discord.Embed(title=title, description=_fit_lines(lines) or "No documents yet.", colour=SOURCES_COLOUR)


def passages_embed(query: str, passages: Sequence[Passage]) -> discord.Embed:
    """The ``/kb search`` reply: each passage's document, score and a short snippet."""
    lines = [
        f"**{i}.** {_link(p.title or p.source_uri, p.source_uri)} (doc `{p.document_id}`, score {p.score:.3f})\n"
        f"> {_escape(_truncate(' '.join(p.text.split()), SNIPPET_CHARS))}"
        for i, p in enumerate(passages, start=1)
    ]
    title = _truncate(f"Search: {query}", MAX_EMBED_TITLE_CHARS)
    return discord.Embed(title=title, description=_fit_lines(lines) or "Nothing relevant found.", colour=SOURCES_COLOUR)


def _fit_lines(lines: Sequence[str], limit: int = MAX_EMBED_DESCRIPTION_CHARS) -> str:
    """Join whole lines up to ``limit``, ending with how many were left out rather than cutting one."""
    kept: list[str] = []
    used = 0
    for index, line in enumerate(lines):
        line = _truncate(line, limit // 2)
        left_after = len(lines) - index - 1
        reserve = len(f"\n{ELLIPSIS} and {left_after} more") if left_after else 0
        if used + len(line) + reserve > limit:
            kept.append(f"{ELLIPSIS} and {len(lines) - index} more")
            break
        kept.append(line)
        used += len(line) + 1
    return "\n".join(kept)


def _link(label: str, uri: str) -> str:
    label = _escape(_truncate(label, 100))
    if uri.startswith(("http://", "https://")):
        return f"[{label}]({uri.replace(')', '%29').replace(' ', '%20')})"
    return label


def _escape(text: str) -> str:
    return discord.utils.escape_markdown(discord.utils.escape_mentions(text))


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - len(ELLIPSIS)] + ELLIPSIS
