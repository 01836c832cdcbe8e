""" "Share to channel" of a private ``/ask`` answer reads the answer back from the core, so it works after a restart
(and on another replica); only the asker can share it."""

from __future__ import annotations

from typing import Any

from connectors.slack import render
from connectors.slack.feedback import SHARE_EXPIRED_TEXT
from tests.fixtures.slack import ADMIN, CHANNEL, USER, SlackBot, start_bot, stop_bot

PARKING = "Parking. Employees park in garage B on level 3. Visitor parking is at the front entrance."


def _texts(blocks: list[dict[str, Any]]) -> str:
    return "\n".join(str(block) for block in blocks)


async def _private_answer(bot: SlackBot) -> str:
    """Ask with ``/ask`` as USER; return the value of the answer's "Share to channel" button."""
    command = bot.slack.slash_command("/ask", "where do employees park?", user=USER, channel=CHANNEL)
    await bot.slack.send("slash_commands", command)
    reply = (await bot.slack.wait_for(lambda: bot.slack.responses_to(command["response_url"]), timeout=30))[0]
    share = reply.body["blocks"][-1]["elements"][-1]
    assert share["action_id"] == render.SHARE_ACTION
    return share["value"]


async def _click_share(bot: SlackBot, value: str, user: str) -> dict[str, Any]:
    click = bot.slack.block_action(render.SHARE_ACTION, value, user=user, channel=CHANNEL)
    await bot.slack.send("interactive", click)
    return (await bot.slack.wait_for(lambda: bot.slack.responses_to(click["response_url"]), timeout=30))[0].body


async def test_a_private_answer_is_shared_to_the_channel_after_the_bot_restarts(
    slack_bot: SlackBot, embedder: Any
) -> None:
    await slack_bot.seed(PARKING, "Parking")
    slack_bot.llm.reply("Garage B [1].")
    value = await _private_answer(slack_bot)

    await stop_bot(slack_bot)
    restarted = await start_bot(slack_bot.slack, slack_bot.llm, slack_bot.settings, embedder, slack_bot.slack_settings)
    try:
        shared = await _click_share(restarted, value, USER)
    finally:
        await stop_bot(restarted)

    assert shared["response_type"] == "in_channel" and shared["delete_original"] is True
    assert "Garage B [1]" in _texts(shared["blocks"])
    assert "[1] Parking" in _texts(shared["blocks"])
    assert f"Shared by <@{USER}>" in _texts(shared["blocks"])
    assert len(slack_bot.llm.chat_requests) == 1  # shared as answered, not asked again


async def test_someone_else_cannot_share_a_private_answer(slack_bot: SlackBot) -> None:
    await slack_bot.seed(PARKING, "Parking")
    slack_bot.llm.reply("Garage B [1].")
    value = await _private_answer(slack_bot)

    refused = await _click_share(slack_bot, value, ADMIN)

    assert refused == {"text": SHARE_EXPIRED_TEXT, "response_type": "ephemeral", "replace_original": False}
