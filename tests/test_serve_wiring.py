"""``lorebot serve slack|discord``: the application's connector registry run by the real process lifecycle.

Each test runs :func:`bot.ops.lifecycle.run_service` with the connector ``lorebot serve`` would pick (it reads its
``SLACK_*`` / ``DISCORD_*`` settings from the environment) against the fake platform, asks one question, then sends
the process SIGTERM while the answer is still being written: the answer must still arrive (the connector
registered it in the shared in-flight registry) and the process must end.
"""

from __future__ import annotations

import asyncio
import os
import signal
from typing import Any

import pytest

from bot.ops.lifecycle import run_service
from bot.settings import Settings
from lorebot.connectors import CONNECTORS
from tests.fixtures.discord import TOKEN, FakeDiscord
from tests.fixtures.llm import FakeLLM
from tests.fixtures.slack import CHANNEL, USER, FakeSlack, bot_settings, slack_env

WIFI = "The guest wifi network is LoreGuest and its password is PurpleElephant42."
LLM_DELAY_S = 2.0
"""Long enough that SIGTERM arrives while the answer is being written."""


async def _serve(settings: Settings, name: str) -> asyncio.Task[None]:
    return asyncio.create_task(run_service(settings, CONNECTORS[name]), name=f"serve {name}")


async def _seed(settings: Settings, embedder: Any) -> None:
    from bot.domain import Actor
    from bot.service import Lorebot

    service = await Lorebot.start(settings, embedder=embedder)
    try:
        await service.add_text(Actor("local", "seed", is_admin=True), WIFI, title="Wifi guide")
    finally:
        await service.close()


async def test_serve_slack_answers_a_mention_and_finishes_it_after_sigterm(
    settings: Settings, fake_slack: FakeSlack, fake_llm: FakeLLM, embedder: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in slack_env(fake_slack).items():
        monkeypatch.setenv(name, value)
    served = bot_settings(settings, fake_llm.base_url, health_port=0)
    await _seed(served, embedder)
    fake_llm.delay = LLM_DELAY_S
    fake_llm.reply("PurpleElephant42 [1].")
    serving = await _serve(served, "slack")
    await fake_slack.wait_connected(timeout=60)

    await fake_slack.send_event(fake_slack.mention("wifi password?", user=USER, channel=CHANNEL))
    await fake_slack.wait_for(lambda: fake_slack.calls_to("chat.postMessage"), what="placeholder")
    await asyncio.to_thread(fake_llm.wait_for_requests, 1, 30.0)
    os.kill(os.getpid(), signal.SIGTERM)

    await fake_slack.wait_for(lambda: not fake_slack.connected, what="socket dropped while draining")
    final = await fake_slack.wait_for(
        lambda: [c for c in fake_slack.calls_to("chat.update") if c.args.get("blocks")], timeout=30, what="answer"
    )
    await asyncio.wait_for(serving, 30)
    assert "PurpleElephant42 [1]." in str(final[0].args["blocks"])
    assert not fake_slack.connected


async def test_serve_discord_answers_a_slash_command_and_finishes_it_after_sigterm(
    settings: Settings, fake_discord: FakeDiscord, fake_llm: FakeLLM, embedder: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DISCORD_TOKEN", TOKEN)
    monkeypatch.setenv("DISCORD_DEV_GUILD_IDS", fake_discord.guild_id)
    served = settings.model_copy(update={"llm_base_url": fake_llm.base_url, "health_port": 0})
    await _seed(served, embedder)
    fake_llm.delay = LLM_DELAY_S
    fake_llm.reply("PurpleElephant42 [1].")
    serving = await _serve(served, "discord")
    await fake_discord.wait_for(lambda: fake_discord.identifies, timeout=60)  # after the commands synced

    interaction = await fake_discord.slash("ask", [{"name": "question", "type": 3, "value": "wifi password?"}])
    await asyncio.to_thread(fake_llm.wait_for_requests, 1, 30.0)
    os.kill(os.getpid(), signal.SIGTERM)

    original = rf"/webhooks/\d+/{interaction['token']}/messages/@original"
    final = await fake_discord.wait_for_call("PATCH", original, lambda c: bool(c.body.get("components")), timeout=30)
    await asyncio.wait_for(serving, 30)
    assert final.body["content"] == "PurpleElephant42 [1]."
    assert fake_discord.identifies[-1]["token"] == TOKEN
