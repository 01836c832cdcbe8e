"""Block Kit rendering within Slack's limits, and where the bot token may be sent (pure functions)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot.domain import Answer, Citation
from connectors.slack import render
from connectors.slack.files import token_may_go_to


def _answer(text: str, citations: int = 2, message_id: int | None = 7) -> Answer:
    cited = tuple(
        Citation(n, n, n, f"Doc {n}", f"https://wiki.example.com/{n}" if n % 2 else "upload:slack:x.txt", "snippet")
        for n in range(1, citations + 1)
    )
    return Answer(text=text, citations=cited, passages=(), found=True, model="m", message_id=message_id)


def _section_texts(blocks: list[dict]) -> list[str]:
    return [block["text"]["text"] for block in blocks if block["type"] == "section"]


def test_split_text_keeps_every_piece_within_the_limit_and_loses_no_words() -> None:
    text = "\n\n".join(f"Paragraph {i}. " + "word " * 300 for i in range(20))
    pieces = render.split_text(text)
    assert all(len(piece) <= render.SECTION_TEXT_LIMIT for piece in pieces)
    assert " ".join(" ".join(pieces).split()) == " ".join(text.split())


def test_split_text_prefers_paragraph_breaks() -> None:
    first, second = "a" * 2000, "b" * 2000
    assert render.split_text(f"{first}\n\n{second}") == [first, second]


def test_split_text_hard_cuts_text_without_spaces_but_never_inside_an_escape() -> None:
    text = render.escape("x" * 2998 + "<y" + "z" * 4000)
    pieces = render.split_text(text)
    assert all(len(piece) <= render.SECTION_TEXT_LIMIT for piece in pieces)
    assert "".join(pieces) == text
    assert pieces[1].startswith("&lt;")


def test_split_text_of_blank_text_is_empty_and_tiny_limits_are_refused() -> None:
    assert render.split_text("  \n ") == []
    with pytest.raises(ValueError):
        render.split_text("abc", limit=3)


def test_huge_answer_fits_in_fifty_blocks_with_sources_and_buttons_kept() -> None:
    blocks = render.answer_blocks(_answer("lorem ipsum " * 30_000, citations=3))
    assert len(blocks) == render.MAX_BLOCKS
    assert all(len(text) <= render.SECTION_TEXT_LIMIT for text in _section_texts(blocks))
    assert blocks[-1]["type"] == "actions"
    assert render.TRUNCATED_NOTE in str(blocks)
    assert "*Sources*" in str(blocks)


def test_answer_blocks_number_sources_link_web_pages_and_carry_the_message_id() -> None:
    blocks = render.answer_blocks(_answer("It is 42 [1][2].", citations=2, message_id=99))
    sources = _section_texts(blocks)[-1]
    assert sources.splitlines() == ["*Sources*", "[1] <https://wiki.example.com/1|Doc 1>", "[2] Doc 2"]
    buttons = blocks[-1]["elements"]
    assert [b["action_id"] for b in buttons] == [render.FEEDBACK_UP_ACTION, render.FEEDBACK_DOWN_ACTION]
    assert {b["value"] for b in buttons} == {"99"}


def test_hostile_answer_text_cannot_inject_mentions_or_links() -> None:
    blocks = render.answer_blocks(_answer("<!channel> click <https://evil.example|here> & win", citations=0))
    text = _section_texts(blocks)[0]
    assert "<" not in text and ">" not in text
    assert text.startswith("&lt;!channel&gt;")


def test_answer_without_message_id_has_no_buttons_and_private_answers_can_be_shared() -> None:
    assert all(b["type"] != "actions" for b in render.answer_blocks(_answer("x", message_id=None)))
    shareable = render.answer_blocks(_answer("x"), shareable=True)[-1]["elements"]
    assert shareable[-1]["action_id"] == render.SHARE_ACTION


def test_document_list_is_clipped_to_one_section() -> None:
    from bot.domain import Document

    docs = [
        Document(i, "default", f"https://x/{i}", "T" * 200, "text/plain", "h", 1, 1, "slack:U", datetime.now(UTC))
        for i in range(100)
    ]
    text = render.document_list_text(docs, ["default"])
    assert len(text) <= render.SECTION_TEXT_LIMIT
    assert text.startswith("*100 documents*")


@pytest.mark.parametrize(
    ("url", "api", "allowed"),
    [
        ("https://files.slack.com/files-pri/T-F/a.txt", "https://slack.com/api/", True),
        ("https://files.slack-gov.com/x", "https://slack-gov.com/api/", True),
        ("http://files.slack.com/x", "https://slack.com/api/", False),
        ("https://evil.example/x", "https://slack.com/api/", False),
        ("https://slack.com.evil.example/x", "https://slack.com/api/", False),
        ("http://127.0.0.1:5000/files-pri/x", "http://127.0.0.1:5000/api/", True),
        ("not a url", "https://slack.com/api/", False),
    ],
)
def test_bot_token_only_goes_to_slack_hosts(url: str, api: str, allowed: bool) -> None:
    assert token_may_go_to(url, api) is allowed
