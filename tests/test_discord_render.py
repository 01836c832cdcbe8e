"""Fitting answers into Discord's limits: splitting, previews and embeds (pure functions)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from bot.domain import Citation, Document
from connectors.discord.render import (
    MAX_CONTENT_CHARS,
    MAX_EMBED_DESCRIPTION_CHARS,
    documents_embed,
    progress_preview,
    sources_embed,
    split_message,
)

CITATION = re.compile(r"\[\d+(?:\s*[,;]\s*\d+)*\]")


def _citations_intact(parts: list[str], text: str) -> bool:
    return sum(len(CITATION.findall(p)) for p in parts) == len(CITATION.findall(text))


def test_short_text_is_one_part_and_blank_text_none() -> None:
    assert split_message("  Open at 9am [1].  ") == ["Open at 9am [1]."]
    assert split_message("   \n ") == []


def test_3500_chars_split_on_paragraphs_into_two_parts_that_rejoin_exactly() -> None:
    paragraph = "Saturday support runs from 10am to 2pm for every product [1]. " * 7
    text = "\n\n".join(paragraph.strip() for _ in range(8))
    assert 3400 <= len(text) <= 3600

    parts = split_message(text)

    assert len(parts) == 2 and all(len(p) <= MAX_CONTENT_CHARS for p in parts)
    assert "\n\n".join(parts) == text


def test_one_long_paragraph_splits_after_a_sentence_never_inside_a_citation() -> None:
    text = " ".join(f"Fact number {i} is documented [{i}, {i + 1}]." for i in range(150))

    parts = split_message(text)

    assert all(len(p) <= MAX_CONTENT_CHARS for p in parts)
    assert all(p.endswith(".") for p in parts)
    assert _citations_intact(parts, text)
    assert " ".join(parts) == text


def test_a_citation_is_never_left_at_the_start_of_the_next_part() -> None:
    text = "word " * 398 + "end [12]"  # the last space before the limit would orphan the citation

    parts = split_message(text, limit=1996)

    assert not any(p.startswith("[") for p in parts)
    assert _citations_intact(parts, text)


def test_code_blocks_are_kept_whole_when_they_fit() -> None:
    code = "```python\n" + "\n".join(f"print({i})" for i in range(60)) + "\n```"
    text = "Intro sentence. " * 80 + "\n" + code + "\nAfter the code."

    parts = split_message(text)

    assert any(code in p for p in parts)
    assert all(p.count("```") % 2 == 0 for p in parts)


def test_a_code_block_longer_than_a_message_is_closed_and_reopened() -> None:
    code = "```sql\n" + "\n".join(f"SELECT {i} FROM table_{i};" for i in range(200)) + "\n```"

    parts = split_message(code)

    assert len(parts) >= 3 and all(len(p) <= MAX_CONTENT_CHARS for p in parts)
    assert all(p.startswith("```sql\n") and p.endswith("```") for p in parts)
    lines = [line for p in parts for line in p.splitlines() if not line.startswith("```")]
    assert lines == [f"SELECT {i} FROM table_{i};" for i in range(200)]


def test_a_word_longer_than_the_limit_is_cut_hard() -> None:
    text = "x" * 4500

    parts = split_message(text)

    assert [len(p) for p in parts] == [2000, 2000, 500]


def test_chinese_text_splits_after_full_stops() -> None:
    text = "支持服务在周六上午十点到下午两点开放[1]。" * 200

    parts = split_message(text)

    assert all(len(p) <= MAX_CONTENT_CHARS and p.endswith("。") for p in parts)
    assert "".join(parts) == text


def test_progress_preview_fits_one_message_and_shows_the_tail() -> None:
    assert progress_preview("Open at") == "Open at ▌"
    preview = progress_preview("a" * 5000 + " the end")
    assert len(preview) <= MAX_CONTENT_CHARS and preview.startswith("…") and preview.endswith("the end ▌")


def _citation(n: int, title: str = "Support hours", uri: str = "https://wiki.example/hours") -> Citation:
    return Citation(number=n, chunk_id=n, document_id=1, title=title, source_uri=uri, snippet="...")


def test_sources_embed_links_web_sources_and_escapes_hostile_titles() -> None:
    embed = sources_embed([_citation(1), _citation(2, "@everyone [click](https://evil)", "upload:discord:x.md")])

    assert embed is not None and embed.title == "Sources"
    lines = (embed.description or "").splitlines()
    assert lines[0] == "**[1]** [Support hours](https://wiki.example/hours)"
    assert "@\u200beveryone" in lines[1] and "\\[click]" in lines[1]  # no ping, no masked link
    assert sources_embed([]) is None


def test_many_sources_fit_the_embed_limit_with_a_count_of_the_rest() -> None:
    citations = [_citation(n, "T" * 90, f"https://wiki.example/{'p' * 60}/{n}") for n in range(1, 100)]

    description = sources_embed(citations).description or ""  # type: ignore[union-attr]

    assert len(description) <= MAX_EMBED_DESCRIPTION_CHARS
    shown = description.count("**[")
    assert description.endswith(f"… and {99 - shown} more")


def test_documents_embed_lists_ids_and_chunk_counts() -> None:
    document = Document(
        1, "default", "https://wiki.example/hours", "Hours", "text/plain", "h", 10, 3, "a", datetime.now(UTC)
    )

    embed = documents_embed([document], ("default",))

    assert embed.description == "`1` [Hours](https://wiki.example/hours) · 3 chunks · default"
    assert documents_embed([], ("default",)).description == "No documents yet."
