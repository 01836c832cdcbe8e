"""The desk's report as Discord embeds, within Discord's limits (10 embeds, 6,000 characters in all, 256 per title,
4,096 per description, 25 fields of 1,024), and the hand-over post."""

from __future__ import annotations

from typing import Any

import discord

from bot.desk.report import Report
from bot.desk.service import Handover
from connectors.discord.render import MAX_CONTENT_CHARS, MAX_EMBED_TITLE_CHARS, _escape, _fit_lines, _truncate

MAX_EMBEDS = 10
MAX_TOTAL_CHARS = 6000
MAX_FIELD_VALUE_CHARS = 1024
TOPICS_DESCRIPTION_CHARS = 2800
STATUS_DESCRIPTION_CHARS = 600
"""The topics' and the status's shares of the 6,000 characters; the figures and documents take the rest."""
REPORT_COLOUR = 0xFEE75C
HANDOVER_REASONS = {"not_found": "not found in the knowledge base", "thumbs_down": "answer rated 👎", "asked": "asked"}
QUESTION_CHARS = 700
ANSWER_CHARS = 500


def report_embeds(report: Report, status: list[dict[str, Any]]) -> list[discord.Embed]:
    """Figures, topics (question text only when ``report.shows_questions``), documents cited most / never, and
    the knowledge base's status per scope."""
    rate = "–" if report.helpful_rate is None else f"{report.helpful_rate:.0%}"
    scope = f" · {report.scope}" if report.scope else ""
    figures = discord.Embed(
        title=_truncate(f"Report since {report.since:%Y-%m-%d %H:%M} UTC{scope}", MAX_EMBED_TITLE_CHARS),
        colour=REPORT_COLOUR,
    )
    for name, value in (
        ("Asked", report.asked),
        ("Answered", report.answered),
        ("Not found", report.not_found),
        ("👍 / 👎", f"{report.thumbs_up} / {report.thumbs_down} ({rate} helpful)"),
        ("Handed over", report.escalations),
        ("Median latency", f"{report.median_latency_ms:.0f} ms"),
    ):
        figures.add_field(name=name, value=str(value), inline=True)
    embeds = [figures]
    if report.topics:
        lines = []
        for topic in report.topics:
            examples = " · ".join(f"“{_escape(_truncate(e, 200))}”" for e in topic.examples)
            lines.append(f"**{topic.questions}** ({topic.not_found} not found, {topic.thumbs_down} 👎) {examples}")
        embeds.append(
            discord.Embed(
                title="Unanswered and 👎 questions by topic",
                description=_fit_lines(lines, TOPICS_DESCRIPTION_CHARS),
                colour=REPORT_COLOUR,
            )
        )
    documents = discord.Embed(title="Documents", colour=REPORT_COLOUR)
    cited = [f"{_escape(_truncate(d.title, 120))} ({d.scope}): {d.citations}" for d in report.cited_most]
    never = [f"{_escape(_truncate(d.title, 120))} ({d.scope})" for d in report.never_cited]
    documents.add_field(name="Cited most", value=_fit_lines(cited, MAX_FIELD_VALUE_CHARS) or "—", inline=False)
    documents.add_field(
        name=f"Never cited ({report.never_cited_total})",
        value=_fit_lines(never, MAX_FIELD_VALUE_CHARS) or "—",
        inline=False,
    )
    embeds.append(documents)
    lines = []
    for row in status:
        line = f"{_escape(_truncate(row['scope'], 64))}: {row['documents']} documents, {row['chunks']} chunks"
        if row["sources"]:
            synced = "never" if row["last_sync"] is None else f"{row['last_sync']:%Y-%m-%d %H:%M} UTC"
            line += f", {row['sources']} sources (last sync {synced})"
        lines.append(line)
    status_text = _fit_lines(lines, STATUS_DESCRIPTION_CHARS) or "No documents yet."
    embeds.append(discord.Embed(title="Knowledge base", description=status_text, colour=REPORT_COLOUR))
    return embeds


def handover_content(handover: Handover, guild_id: int | None) -> str:
    """The hand-over post: the role mention, who asked what, the bot's answer and sources, a link to the question."""
    role = f"<@&{handover.target.support_group}>" if handover.target.support_group else "Support team"
    lines = [f"{role}: a question needs a person ({HANDOVER_REASONS[handover.reason]})."]
    if guild_id is not None and handover.channel:
        where = handover.thread or handover.channel
        lines.append(f"Conversation: https://discord.com/channels/{guild_id}/{handover.channel}/{where}")
    lines.append(f"**<@{handover.asker}> asked:** {_escape(_truncate(handover.question, QUESTION_CHARS))}")
    lines.append(f"**Lorebot answered:** {_escape(_truncate(handover.answer, ANSWER_CHARS))}")
    if handover.sources:
        lines.append("**Retrieved sources:** " + ", ".join(_escape(_truncate(s, 80)) for s in handover.sources[:5]))
    lines.append("Reply in a thread on this message; an admin or supporter can then use *Save as answer* on the reply.")
    return _truncate("\n".join(lines), MAX_CONTENT_CHARS)
