"""Run the Discord bot until cancelled; discord.py reconnects (and resumes) the gateway by itself."""

from __future__ import annotations

import logging

from bot.errors import ConfigError
from bot.inflight import InFlight
from bot.service import Lorebot
from connectors.discord.client import LorebotClient
from connectors.discord.settings import DiscordSettings

log = logging.getLogger(__name__)


async def serve(service: Lorebot, inflight: InFlight, settings: DiscordSettings) -> None:
    """Log in with ``DISCORD_TOKEN`` and serve until the task is cancelled (the client is closed either way).

    Answers tracked by ``inflight`` are drained by the entry point before it cancels this task.
    """
    if settings.token is None:
        raise ConfigError("DISCORD_TOKEN is not set")
    async with LorebotClient(settings, service, inflight) as client:
        await client.start(settings.token.get_secret_value())
