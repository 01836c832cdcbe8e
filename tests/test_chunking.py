"""Chunking: token budgets, sentence boundaries in Chinese and English, titles and headings in every chunk."""

from __future__ import annotations

import itertools

import pytest

from bot.errors import IngestError
from bot.ingest.chunking import chunk_document, count_tokens
from bot.settings import Settings

CHINESE_ENDS = ("。", "！", "？", "；")


@pytest.fixture
def small_chunks() -> Settings:
    return Settings(_env_file=None, chunk_tokens=64, chunk_overlap_tokens=16)


def _body(chunk_text: str) -> str:
    return chunk_text.split("\n\n", 1)[1]


def test_chinese_text_splits_at_sentence_ends_and_keeps_the_title(small_chunks: Settings) -> None:
    sentences = []
    for i in range(30):
        ending = CHINESE_ENDS[i % len(CHINESE_ENDS)]
        sentences.append(f"第{i}条规定说明员工报销差旅费用的流程和所需材料{ending}")
    chunks = chunk_document("".join(sentences), title="报销制度", settings=small_chunks)
    assert len(chunks) > 3
    for chunk in chunks:
        assert chunk.text.startswith("报销制度\n\n")
        body = _body(chunk.text)
        assert body.endswith(CHINESE_ENDS), body
        assert body.startswith("第"), body
        assert chunk.token_count <= small_chunks.chunk_tokens


def test_english_text_splits_at_sentence_ends_not_inside_numbers(small_chunks: Settings) -> None:
    text = " ".join(f"Rule {i} says the rate is 3.{i} percent for everyone in the team." for i in range(40))
    chunks = chunk_document(text, title="Rates", settings=small_chunks)
    assert len(chunks) > 3
    for chunk in chunks:
        body = _body(chunk.text)
        assert body.startswith("Rule ") and body.endswith("team."), body
        assert chunk.token_count <= small_chunks.chunk_tokens


def test_consecutive_chunks_overlap(small_chunks: Settings) -> None:
    text = " ".join(f"Fact {i} is short." for i in range(80))
    chunks = chunk_document(text, title="Facts", settings=small_chunks)
    for first, second in itertools.pairwise(chunks):
        opening_sentence = _body(second.text).split(".")[0] + "."
        assert opening_sentence in _body(first.text)


def test_markdown_sections_carry_their_nearest_heading(small_chunks: Settings) -> None:
    text = (
        "# Handbook\n\nWelcome to the team.\n\n## Holidays\n\n"
        + " ".join(f"Holiday rule {i} applies to everyone." for i in range(20))
        + "\n\n```sh\n# this is a shell comment, not a heading\necho hi\n```\n\n## Expenses\n\nKeep every receipt."
    )
    chunks = chunk_document(text, title="Handbook", settings=small_chunks)
    assert [c.ordinal for c in chunks] == list(range(len(chunks)))
    assert chunks[0].heading == "Handbook" and chunks[0].text == "Handbook\n\nWelcome to the team."
    holidays = [c for c in chunks if c.heading == "Holidays"]
    assert len(holidays) > 1
    assert all(c.text.startswith("Handbook — Holidays\n\n") for c in holidays)
    assert any("# this is a shell comment" in c.text for c in holidays)
    assert chunks[-1].heading == "Expenses" and chunks[-1].text == "Handbook — Expenses\n\nKeep every receipt."


def test_chunks_fit_the_budget_including_the_prefix() -> None:
    settings = Settings(_env_file=None, chunk_tokens=48, chunk_overlap_tokens=8)
    text = "\n\n".join(" ".join(f"word{i}x{j}" for j in range(30)) for i in range(10))
    chunks = chunk_document(text, title="A fairly long document title with several words", settings=settings)
    assert all(count_tokens(c.text) == c.token_count <= 48 for c in chunks)


def test_more_chunks_than_the_limit_is_refused_with_the_numbers() -> None:
    settings = Settings(_env_file=None, chunk_tokens=32, chunk_overlap_tokens=0, max_chunks_per_document=3)
    text = " ".join(f"Sentence number {i} is here." for i in range(200))
    with pytest.raises(IngestError, match=r"more than 3 chunks of 32 tokens \(\d+ characters\)"):
        chunk_document(text, title="Long", settings=settings)


@pytest.mark.parametrize("where", ["title", "heading"])
def test_a_huge_title_or_heading_is_cut_to_a_quarter_of_the_chunk(where: str) -> None:
    settings = Settings(_env_file=None)
    huge = "Quarterly report " * 6000  # ~100 kB
    body = "Revenue grew in every region this quarter. " * 230  # ~10 kB
    text = f"# {huge}\n\n{body}" if where == "heading" else body
    chunks = chunk_document(text, title=huge if where == "title" else "Report", settings=settings)

    assert 10 <= len(chunks) <= 16  # ~2,100 body tokens in chunks of ~190 body tokens, with overlap
    assert sum(len(chunk.text) for chunk in chunks) < 3 * len(body)
    for chunk in chunks:
        prefix = chunk.text.split("\n\n", 1)[0]
        assert count_tokens(prefix) <= settings.chunk_tokens // 4
        assert prefix.endswith("…")
        assert chunk.token_count <= settings.chunk_tokens - 2
