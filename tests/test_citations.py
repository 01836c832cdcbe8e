"""Citation markers: every style models write is mapped to passages; invalid ones never reach the reader."""

from __future__ import annotations

import pytest

from bot.answer.citations import SNIPPET_CHARS, is_not_found, resolve_citations, strip_markers
from bot.answer.prompt import NOT_FOUND_ANSWER
from bot.domain import Passage


def passage(n: int, text: str = "") -> Passage:
    return Passage(
        chunk_id=100 + n,
        document_id=10 + n,
        title=f"Doc {n}",
        source_uri=f"https://kb.example/doc{n}",
        text=text or f"Passage number {n} text.",
        score=1.0 / n,
    )


PASSAGES = [passage(1), passage(2), passage(3)]


def numbers(text: str) -> list[int]:
    return [c.number for c in resolve_citations(text, PASSAGES)[1]]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Open at 10am [1].", [1]),
        ("Open at 10am [1, 2].", [1, 2]),
        ("Open at 10am [2][1].", [2, 1]),
        ("Open at 10am 【3】。", [3]),
        ("Open at 10am [1，3].", [1, 3]),
        ("No sources at all.", []),
    ],
)
def test_every_marker_style_maps_to_its_passage(text: str, expected: list[int]) -> None:
    assert numbers(text) == expected


def test_citation_carries_the_passage_document_title_uri_and_snippet() -> None:
    _, citations = resolve_citations("Fact [2].", PASSAGES)
    assert citations[0].chunk_id == 102
    assert citations[0].document_id == 12
    assert citations[0].title == "Doc 2"
    assert citations[0].source_uri == "https://kb.example/doc2"
    assert citations[0].snippet == "Passage number 2 text."


def test_snippet_is_flattened_and_clipped() -> None:
    long = passage(1, "word \n\n " * 200)
    _, citations = resolve_citations("x [1]", [long])
    assert len(citations[0].snippet) <= SNIPPET_CHARS
    assert "\n" not in citations[0].snippet


def test_markers_pointing_to_no_passage_are_removed_from_the_text() -> None:
    text, citations = resolve_citations("Open at 10am [1][7] and on Sundays [9]. Closed [0].", PASSAGES)
    assert text == "Open at 10am [1] and on Sundays. Closed."
    assert [c.number for c in citations] == [1]


def test_group_with_some_invalid_numbers_keeps_the_valid_ones() -> None:
    text, citations = resolve_citations("Fact [2, 8].", PASSAGES)
    assert text == "Fact [2]."
    assert [c.number for c in citations] == [2]


def test_duplicate_markers_collapse_to_one_citation() -> None:
    text, citations = resolve_citations("A [1][1]. B [1, 1]. C [2] and again [1].", PASSAGES)
    assert text == "A [1]. B [1]. C [2] and again [1]."
    assert [c.number for c in citations] == [1, 2]


def test_no_passages_means_every_marker_is_dropped() -> None:
    text, citations = resolve_citations("Made up [1].", [])
    assert (text, citations) == ("Made up.", ())


def test_brackets_that_are_not_markers_stay() -> None:
    text, citations = resolve_citations("Use list[str] or [a, b] here.", PASSAGES)
    assert text == "Use list[str] or [a, b] here."
    assert citations == ()


def test_strip_markers_removes_all_markers() -> None:
    assert strip_markers("Yes [1], really 【2】 [3, 4].") == "Yes, really."


@pytest.mark.parametrize(
    "text",
    [
        NOT_FOUND_ANSWER,
        NOT_FOUND_ANSWER + " [1]",
        "  i could not find this in the knowledge base",
        NOT_FOUND_ANSWER[:-1],
    ],
)
def test_not_found_sentence_is_recognised(text: str) -> None:
    assert is_not_found(text)


@pytest.mark.parametrize("text", ["The office opens at 10am [1].", "", "I could not find the door."])
def test_ordinary_answers_are_not_taken_for_not_found(text: str) -> None:
    assert not is_not_found(text)
