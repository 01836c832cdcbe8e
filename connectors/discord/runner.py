"""Run the Discord bot until cancelled; discord.py reconnects (and resumes) the gateway by itself."""

from __future__ import annotations

import logging

from bot.errors import ConfigError
from bot.ops.lifecycle import InFlight
from bot.service import Lorebot
from bot.settings import Settings
from connectors.discord.client import LorebotClient

log = logging.getLogger(__name__)


async def run_discord(settings: Settings, service: Lorebot, inflight: InFlight | None = None) -> None:
    """Log in with ``DISCORD_TOKEN`` and serve until the task is cancelled (the client is closed either way).

    Answers tracked by ``inflight`` are drained by the entry point before it cancels this task.
    """
    if settings.discord_token is None:
        raise ConfigError("DISCORD_TOKEN is not set")
    async with LorebotClient(settings, service, inflight) as client:
        await client.start(settings.discord_token.get_secret_value())
