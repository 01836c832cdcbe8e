"""Slack answering under Web API rate limits (429 + ``Retry-After``): no answer is lost, every failure is shown.

The fake Slack answers the next N calls of one method with 429, as Slack does when a channel posts faster than
about once a second; the real slack-sdk client and its retry handlers run against it.
"""

from __future__ import annotations

import re
from typing import Any

from bot.inflight import InFlight
from connectors.slack.client import RATE_LIMIT_RETRIES
from connectors.slack.tasks import Tasks
from tests.fixtures.slack import CHANNEL, USER, ApiCall, SlackBot

WIFI = "Office wifi. The office wifi password is PurpleElephant42. Guests use the network Lorebot-Guest."
ANSWER = "The password is PurpleElephant42 [1]."


def _delivered(bot: SlackBot, method: str) -> list[ApiCall]:
    return [call for call in bot.slack.calls_to(method) if call.status == 200]


def _with_blocks(calls: list[ApiCall]) -> list[dict[str, Any]]:
    return [call.args for call in calls if call.args.get("blocks")]


def _section_text(message: dict[str, Any]) -> str:
    return "\n".join(b["text"]["text"] for b in message["blocks"] if b["type"] == "section")


async def test_three_mentions_at_once_under_a_posting_limit_are_all_answered(slack_bot: SlackBot) -> None:
    await slack_bot.seed(WIFI, "Wifi guide")
    slack_bot.llm.default_reply = ANSWER
    slack_bot.slack.rate_limit("chat.postMessage", times=2)
    mentions = [slack_bot.slack.mention(f"wifi password? ({n})", user=USER, channel=CHANNEL) for n in range(3)]
    for mention in mentions:
        await slack_bot.slack.send_event(mention)

    await slack_bot.slack.wait_for(
        lambda: len(_with_blocks(_delivered(slack_bot, "chat.update"))) == 3, what="three answers"
    )

    finals = _with_blocks(_delivered(slack_bot, "chat.update"))
    placeholders = _delivered(slack_bot, "chat.postMessage")
    assert sorted(p.args["thread_ts"] for p in placeholders) == sorted(m["ts"] for m in mentions)
    assert len(slack_bot.slack.calls_to("chat.postMessage")) == 5  # two were answered 429 and retried
    assert all(ANSWER in _section_text(final) for final in finals)


async def test_a_progress_edit_that_stays_rate_limited_is_skipped(slack_bot: SlackBot) -> None:
    await slack_bot.seed(WIFI, "Wifi guide")
    slack_bot.llm.delay = 1.5  # the first token comes after the first progress interval: one progress edit
    slack_bot.llm.reply(ANSWER)
    slack_bot.slack.rate_limit("chat.update", times=RATE_LIMIT_RETRIES + 1)
    await slack_bot.slack.send_event(slack_bot.slack.mention("wifi password?", user=USER, channel=CHANNEL))

    [final] = await slack_bot.slack.wait_for(lambda: _with_blocks(_delivered(slack_bot, "chat.update")))
    await slack_bot.idle()

    assert len(slack_bot.slack.calls_to("chat.postMessage")) == 1  # the placeholder became the answer
    assert ANSWER in _section_text(final)
    refused = [c for c in slack_bot.slack.calls_to("chat.update") if c.status == 429]
    assert len(refused) == RATE_LIMIT_RETRIES + 1 and all("blocks" not in c.args for c in refused)
    assert not any("Sorry" in c.args.get("text", "") for c in slack_bot.slack.calls)


async def test_the_answer_is_posted_anew_when_editing_the_placeholder_keeps_failing(slack_bot: SlackBot) -> None:
    await slack_bot.seed(WIFI, "Wifi guide")
    slack_bot.llm.reply(ANSWER)
    slack_bot.slack.rate_limit("chat.update", times=RATE_LIMIT_RETRIES + 1)
    mention = slack_bot.slack.mention("wifi password?", user=USER, channel=CHANNEL)
    await slack_bot.slack.send_event(mention)

    [reposted] = await slack_bot.slack.wait_for(lambda: _with_blocks(_delivered(slack_bot, "chat.postMessage")))

    assert reposted["thread_ts"] == mention["ts"] and reposted["channel"] == CHANNEL
    assert ANSWER in _section_text(reposted)
    edits = slack_bot.slack.calls_to("chat.update")
    assert len(edits) == RATE_LIMIT_RETRIES + 1
    deleted = await slack_bot.slack.wait_for(lambda: slack_bot.slack.calls_to("chat.delete"), what="placeholder gone")
    assert (deleted[0].args["channel"], deleted[0].args["ts"]) == (CHANNEL, edits[0].args["ts"])


async def test_a_failing_task_is_logged_with_an_error_id_and_shown_to_the_user(caplog: Any) -> None:
    told: list[str] = []

    async def tell(text: str) -> None:
        told.append(text)

    async def work() -> None:
        raise RuntimeError("boom")

    await Tasks(InFlight()).spawn(work(), name="mention 1", tell=tell)

    [message] = told
    error_id = re.fullmatch(r"Sorry, I can't answer right now: internal error \(error ([0-9a-f]{8})\)\.", message)
    assert error_id is not None
    [record] = [r for r in caplog.records if error_id[1] in r.getMessage()]
    assert record.levelname == "ERROR" and record.exc_info and str(record.exc_info[1]) == "boom"


async def test_a_task_whose_apology_fails_too_is_logged(caplog: Any) -> None:
    async def tell(text: str) -> None:
        raise ConnectionError("Slack is down")

    async def work() -> None:
        raise RuntimeError("boom")

    await Tasks(InFlight()).spawn(work(), name="mention 2", tell=tell)

    assert any("could not tell the user" in r.getMessage() and "mention 2" in r.getMessage() for r in caplog.records)
