"""Answering in a conversation: a placeholder at once, edits while the answer streams, then the final blocks."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from slack_sdk.web.async_client import AsyncWebClient

from bot.domain import Answer, Question
from bot.errors import Redelivered
from bot.failures import describe_failure
from bot.streaming import final_answer
from connectors.slack import render
from connectors.slack.desk import hand_over
from connectors.slack.reply import ThreadReply
from connectors.slack.tasks import post_in

if TYPE_CHECKING:
    from bot.service import Lorebot

log = logging.getLogger(__name__)

STREAM_UPDATE_INTERVAL_S = 1.0
"""At most one placeholder edit per second (Slack's chat.update rate limit and readable streaming)."""
EMPTY_QUESTION_HINT = "Ask me a question after the mention, e.g. “@Lorebot how do I reset my password?”"


async def answer_in_thread(
    service: Lorebot, client: AsyncWebClient, question: Question, *, channel: str, thread_ts: str | None
) -> None:
    """Post a placeholder in the thread, stream the answer into it and finish with Block Kit (or an apology). A
    re-delivered event shows nothing: the core refuses it before the placeholder."""
    try:
        question = await service.accept(question)
    except Redelivered:
        return
    started = time.perf_counter()
    reply = ThreadReply(client, channel=channel, thread_ts=thread_ts)
    await reply.start(render.THINKING_TEXT)
    log.info("placeholder in %s after %.0f ms", channel, (time.perf_counter() - started) * 1000)
    problem = question_problem(question.text)
    if problem:
        await reply.finish(problem)
        return
    try:
        answer = await _stream_into(service, reply, question)
    except Exception as e:  # the apology replaces the placeholder; describe_failure logs the details
        await reply.finish(describe_failure(e).user_message)
        return
    desk = await service.desk.decoration(question)
    shown = desk.shown(answer)
    blocks = render.answer_blocks(shown, footer=desk.footer, ask_person=desk.ask_person)
    await reply.finish(render.fallback_text(shown.text), blocks=blocks)
    if not answer.found and desk.ask_person and answer.message_id is not None:
        tell = post_in(client, channel, thread_ts)
        await hand_over(service, client, question.actor, answer.message_id, "not_found", tell=tell)


async def _stream_into(service: Lorebot, reply: ThreadReply, question: Question) -> Answer:
    async def progress(text: str) -> None:
        await reply.progress(render.preview_text(text))

    return await final_answer(
        service.stream(question), progress, every_s=STREAM_UPDATE_INTERVAL_S, last_shown=time.monotonic()
    )


def question_problem(text: str) -> str | None:
    """A hint when the mention or command holds no question; everything else about the text is the core's to
    judge (:mod:`bot.validation`), and its refusal reaches the user like any failure."""
    if not text.strip():
        return EMPTY_QUESTION_HINT
    return None
