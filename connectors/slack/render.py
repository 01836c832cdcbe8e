"""Block Kit rendering: answers, sources, feedback buttons and admin replies, within Slack's message limits.

Everything here is a pure function of domain objects, so the limits are tested without Slack.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bot.domain import Answer, Citation, Document, IngestResult, Passage

SECTION_TEXT_LIMIT = 3000
"""Slack rejects a section whose text is longer than this."""
MAX_BLOCKS = 50
"""Slack rejects a message with more blocks than this."""
FALLBACK_TEXT_LIMIT = 3000
"""The notification/fallback ``text`` of a message; Slack truncates far later, but nobody reads more."""
PREVIEW_TEXT_LIMIT = 3000
"""How much of a streaming answer the placeholder shows before the final message replaces it."""
ENTITY_MAX_LEN = 5
"""Longest escape we produce (``&amp;``): a cut must not land inside one."""

THINKING_TEXT = ":hourglass_flowing_sand: Looking that up…"
TRUNCATED_NOTE = "_… (answer shortened to fit in one Slack message)_"
FEEDBACK_UP_ACTION = "feedback_up"
FEEDBACK_DOWN_ACTION = "feedback_down"
SHARE_ACTION = "share_answer"
ASK_PERSON_ACTION = "ask_person"
FEEDBACK_MODAL_CALLBACK = "feedback_comment"
FEEDBACK_COMMENT_BLOCK = "comment"
FEEDBACK_COMMENT_INPUT = "comment_input"

Block = dict[str, Any]


def escape(text: str) -> str:
    """Escape the three characters Slack's mrkdwn treats as control characters."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def split_text(text: str, limit: int = SECTION_TEXT_LIMIT) -> list[str]:
    """Split ``text`` into pieces of at most ``limit`` characters, preferring paragraph, line, then word breaks.

    Whitespace at a break is dropped; no other character is lost, and escapes such as ``&amp;`` stay whole.
    """
    if limit <= ENTITY_MAX_LEN:
        raise ValueError(f"limit must be larger than {ENTITY_MAX_LEN}")
    pieces: list[str] = []
    rest = text.strip()
    while len(rest) > limit:
        cut = _break_point(rest, limit)
        pieces.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip()
    if rest:
        pieces.append(rest)
    return pieces


def _break_point(text: str, limit: int) -> int:
    window = text[: limit + 1]
    for separator in ("\n\n", "\n", ". ", " "):
        at = window.rfind(separator, 0, limit)
        if at > limit // 2:
            return at + len(separator) if separator == ". " else at
    cut = limit
    amp = text.rfind("&", max(0, cut - ENTITY_MAX_LEN + 1), cut)
    if amp != -1 and ";" not in text[amp:cut]:
        cut = amp
    return cut


def section(text: str) -> Block:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def context(text: str) -> Block:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text}]}


def answer_blocks(
    answer: Answer, *, shareable: bool = False, footer: str = "", ask_person: str | None = None
) -> list[Block]:
    """The final answer: text sections, numbered sources, the scope's footer, 👍/👎 (and "Share to channel" for
    private replies, the hand-over button labelled ``ask_person`` where the scope has one)."""
    tail: list[Block] = []
    if answer.citations:
        tail.extend(section(piece) for piece in split_text(sources_text(answer.citations)))
    if footer:
        tail.append(context(escape(footer)))
    if answer.message_id is not None:
        tail.append(feedback_actions(answer.message_id, shareable=shareable, ask_person=ask_person))
    body = [section(piece) for piece in split_text(escape(answer.text))] or [section("_(empty answer)_")]
    room = MAX_BLOCKS - len(tail)
    if len(body) > room:
        body = [*body[: room - 1], context(TRUNCATED_NOTE)]
    return body + tail


def sources_text(citations: Sequence[Citation]) -> str:
    lines = ["*Sources*"]
    lines.extend(f"[{citation.number}] {source_link(citation.title, citation.source_uri)}" for citation in citations)
    return "\n".join(lines)


def source_link(title: str, uri: str) -> str:
    """A link when the source is a web page, else just its title (uploads have no public address)."""
    label = escape(title or uri).replace("|", "¦")
    if uri.startswith(("https://", "http://")):
        return f"<{escape(uri)}|{label}>"
    return label


def feedback_actions(message_id: int, *, shareable: bool = False, ask_person: str | None = None) -> Block:
    value = str(message_id)
    elements = [
        _button("👍 Helpful", FEEDBACK_UP_ACTION, value),
        _button("👎 Not helpful", FEEDBACK_DOWN_ACTION, value),
    ]
    if shareable:
        elements.append(_button("Share to channel", SHARE_ACTION, value, style="primary"))
    if ask_person:
        elements.append(_button(ask_person, ASK_PERSON_ACTION, value))
    return {"type": "actions", "block_id": "answer_actions", "elements": elements}


def _button(label: str, action_id: str, value: str, *, style: str | None = None) -> Block:
    button: Block = {
        "type": "button",
        "action_id": action_id,
        "text": {"type": "plain_text", "text": label, "emoji": True},
        "value": value,
    }
    if style:
        button["style"] = style
    return button


def fallback_text(text: str) -> str:
    """The plain ``text`` that accompanies blocks (notifications, screen readers)."""
    return _clip(text, FALLBACK_TEXT_LIMIT) or "(empty answer)"


def preview_text(text: str) -> str:
    """What the placeholder shows while the answer streams in."""
    return _clip(escape(text), PREVIEW_TEXT_LIMIT) + " …"


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def shared_by_block(user_id: str) -> Block:
    return context(f"Shared by <@{user_id}>")


def feedback_modal(message_id: int) -> dict[str, Any]:
    """The optional "what was wrong" dialog a 👎 opens; the answer's id travels in ``private_metadata``."""
    return {
        "type": "modal",
        "callback_id": FEEDBACK_MODAL_CALLBACK,
        "private_metadata": str(message_id),
        "title": {"type": "plain_text", "text": "Feedback"},
        "submit": {"type": "plain_text", "text": "Send"},
        "close": {"type": "plain_text", "text": "Skip"},
        "blocks": [
            {
                "type": "input",
                "block_id": FEEDBACK_COMMENT_BLOCK,
                "optional": True,
                "label": {"type": "plain_text", "text": "What was wrong? (optional)"},
                "element": {
                    "type": "plain_text_input",
                    "action_id": FEEDBACK_COMMENT_INPUT,
                    "multiline": True,
                    "max_length": 2000,
                },
            }
        ],
    }


# --- admin replies --------------------------------------------------------------------------------


def ingest_text(result: IngestResult) -> str:
    document = result.document
    verb = {"added": "Added", "replaced": "Updated", "unchanged": "Already up to date:"}[result.status]
    return (
        f"{verb} *{escape(document.title)}* as document #{document.id} "
        f"in scope `{document.scope}` ({document.chunk_count} chunks)."
    )


def document_list_text(documents: Sequence[Document], scopes: Sequence[str], limit: int = 30) -> str:
    if not documents:
        return f"No documents in scope {_scopes(scopes)} yet."
    lines = [f"*{len(documents)} documents* in {_scopes(scopes)}:"]
    lines.extend(
        f"#{d.id} {source_link(d.title, d.source_uri)} — {d.chunk_count} chunks, `{d.scope}`" for d in documents[:limit]
    )
    if len(documents) > limit:
        lines.append(f"_… and {len(documents) - limit} more_")
    return _clip("\n".join(lines), SECTION_TEXT_LIMIT)


def search_text(query: str, passages: Sequence[Passage]) -> str:
    if not passages:
        return f"Nothing relevant found for “{escape(query)}”."
    lines = [f"*Top {len(passages)} hits* for “{escape(query)}”:"]
    for rank, passage in enumerate(passages, start=1):
        snippet = escape(" ".join(passage.text.split())[:160])
        similarity = "" if passage.similarity is None else f", similarity {passage.similarity:.2f}"
        lines.append(
            f"{rank}. *{passage.score:.3f}*{similarity} — #{passage.document_id} "
            f"{source_link(passage.title, passage.source_uri)}\n> {snippet}"
        )
    return _clip("\n".join(lines), SECTION_TEXT_LIMIT)


def scope_text(scopes: Sequence[str]) -> str:
    return f"This channel answers from {_scopes(scopes)}."


def _scopes(scopes: Sequence[str]) -> str:
    return ", ".join(f"`{scope}`" for scope in scopes)


KB_USAGE = (
    "*Usage:* `/kb add <url | text>` · `/kb list` · `/kb remove <id>` · `/kb search <query>` · `/kb scope`\n"
    "Admins can also send me a file in a DM (or mention me with a file attached) to add it."
)
