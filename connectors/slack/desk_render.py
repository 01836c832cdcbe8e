"""Block Kit for the desk: the hand-over post in the support channel and the report in the App Home tab."""

from __future__ import annotations

from typing import Any

from bot.desk.report import Report
from bot.desk.service import Handover
from connectors.slack.render import SECTION_TEXT_LIMIT, Block, context, escape, section, split_text

HOME_MAX_BLOCKS = 100
"""Slack rejects a Home tab view with more blocks than this."""
QUESTION_CHARS = 1500
ANSWER_CHARS = 1200
HANDOVER_TITLE = {"not_found": "not found in the knowledge base", "thumbs_down": "answer rated 👎", "asked": "asked"}


def thread_link(channel: str, ts: str) -> str:
    """A link to a message that opens in the user's own workspace (Slack redirects ``slack.com/archives``)."""
    return f"https://slack.com/archives/{channel}/p{ts.replace('.', '')}"


def mention_group(group: str) -> str:
    return f"<!subteam^{group}>" if group else "the support team"


def handover_blocks(handover: Handover) -> list[Block]:
    """The post asking people to answer: who asked what, the bot's answer and sources, a link to the thread."""
    reason = HANDOVER_TITLE[handover.reason]
    lines = [f"{mention_group(handover.target.support_group)}: a question needs a person ({reason})."]
    if handover.channel and handover.thread:
        lines.append(
            f"<{thread_link(handover.channel, handover.thread)}|Open the conversation> in <#{handover.channel}>"
        )
    blocks = [
        section("\n".join(lines)),
        section(f"*<@{handover.asker}> asked:*\n>{_quote(handover.question, QUESTION_CHARS)}"),
        section(f"*Lorebot answered:*\n>{_quote(handover.answer, ANSWER_CHARS)}"),
    ]
    if handover.sources:
        listed = "\n".join(f"• {escape(title)}" for title in handover.sources)
        blocks.append(section(split_text(f"*Retrieved sources*\n{listed}")[0]))
    blocks.append(
        context("Reply in this thread; an admin or supporter can then use *Save as answer* on the reply to teach me.")
    )
    return blocks


def handover_text(handover: Handover) -> str:
    return f"{mention_group(handover.target.support_group)}: a question needs a person: {handover.question[:200]}"


def _quote(text: str, limit: int) -> str:
    text = escape(" ".join(text.split()))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def home_view(report: Report | None, status: list[dict[str, Any]]) -> dict[str, Any]:
    """The App Home tab: the knowledge base's status for everyone, the report for admins (``report`` None else)."""
    blocks: list[Block] = [{"type": "header", "text": {"type": "plain_text", "text": "Lorebot"}}]
    blocks.append(section(_status_text(status)))
    if report is not None:
        blocks.extend(report_blocks(report))
    return {"type": "home", "blocks": blocks[:HOME_MAX_BLOCKS]}


def _status_text(status: list[dict[str, Any]]) -> str:
    if not status:
        return "*Knowledge base:* empty. Admins add documents with `/kb add`."
    lines = ["*Knowledge base*"]
    for row in status:
        line = f"• `{row['scope']}`: {row['documents']} documents, {row['chunks']} chunks"
        if row["last_update"] is not None:
            line += f", last change {row['last_update']:%Y-%m-%d %H:%M} UTC"
        if row["sources"]:
            synced = "never" if row["last_sync"] is None else f"{row['last_sync']:%Y-%m-%d %H:%M} UTC"
            line += f"; {row['sources']} connected sources, last sync {synced}"
        lines.append(line)
    return split_text("\n".join(lines), SECTION_TEXT_LIMIT)[0]


def report_blocks(report: Report) -> list[Block]:
    """The report's figures, topics and documents as sections (each within Slack's section limit)."""
    rate = "–" if report.helpful_rate is None else f"{report.helpful_rate:.0%}"
    scope = f" in `{report.scope}`" if report.scope else ""
    figures = (
        f"*Since {report.since:%Y-%m-%d %H:%M} UTC{scope}:* {report.asked} questions, {report.answered} answered, "
        f"{report.not_found} not found, 👍 {report.thumbs_up} / 👎 {report.thumbs_down} ({rate} helpful), "
        f"{report.escalations} handed over, median latency {report.median_latency_ms:.0f} ms"
    )
    blocks = [{"type": "divider"}, section(figures)]
    if report.topics:
        lines = ["*Unanswered and 👎 questions, by topic*"]
        for topic in report.topics:
            examples = " · ".join(f"“{escape(example)}”" for example in topic.examples)
            lines.append(
                f"• {topic.questions} questions ({topic.not_found} not found, {topic.thumbs_down} 👎) {examples}"
            )
        blocks.extend(section(piece) for piece in split_text("\n".join(lines)))
    if report.cited_most:
        cited = "\n".join(f"• {escape(d.title)} (`{d.scope}`): {d.citations}" for d in report.cited_most)
        blocks.append(section(split_text(f"*Cited most*\n{cited}")[0]))
    if report.never_cited:
        never = "\n".join(f"• {escape(d.title)} (`{d.scope}`)" for d in report.never_cited)
        more = report.never_cited_total - len(report.never_cited)
        tail = f"\n_… and {more} more_" if more > 0 else ""
        blocks.append(section(split_text(f"*Never cited ({report.never_cited_total})*\n{never}{tail}")[0]))
    return blocks
