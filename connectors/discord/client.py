"""The discord.py client: the core service is injected, cogs and feedback buttons are added, commands synced.

Like discord.py's ``advanced_startup`` example, everything that needs the event loop happens in
:meth:`LorebotClient.setup_hook`, which runs after login and before the gateway connects.
"""

from __future__ import annotations

import logging
from typing import Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.inflight import InFlight
from bot.service import Lorebot
from connectors.discord.answering import NO_MENTIONS
from connectors.discord.cogs.ask import AskCog
from connectors.discord.cogs.desk import DeskCog
from connectors.discord.cogs.knowledge import KnowledgeCog
from connectors.discord.errors import report_interaction_failure
from connectors.discord.handover import AskPersonButton
from connectors.discord.settings import DiscordSettings
from connectors.discord.views import FeedbackButton

log = logging.getLogger(__name__)


def intents_for(settings: DiscordSettings) -> discord.Intents:
    """Guilds, guild and DM messages; message content only when enabled (it is privileged)."""
    intents = discord.Intents.default()
    intents.message_content = settings.message_content_intent
    return intents


def _no_prefix(bot: commands.Bot, message: discord.Message) -> tuple[str, ...]:
    """Lorebot has no prefix commands: mentions are questions, handled by the ask cog."""
    return ()


class LorebotTree(app_commands.CommandTree):
    """The one error path of every slash command: the user sees the failure with an error id."""

    async def on_error(self, interaction: discord.Interaction, error: app_commands.AppCommandError) -> None:
        await report_interaction_failure(interaction, error)


class LorebotClient(commands.Bot):
    def __init__(
        self, settings: DiscordSettings, service: Lorebot, inflight: InFlight | None = None, **options: Any
    ) -> None:
        super().__init__(
            command_prefix=_no_prefix,
            tree_cls=LorebotTree,
            intents=intents_for(settings),
            allowed_mentions=NO_MENTIONS,
            help_command=None,
            **options,
        )
        self.settings = settings
        self.service = service
        self.inflight = inflight or InFlight()
        """Answers being written: a SIGTERM lets them finish before the client closes."""

    async def setup_hook(self) -> None:
        enabled = sorted(name for name, on in self.intents if on)
        log.info("discord intents: %s", ", ".join(enabled))
        if not self.intents.message_content:
            log.info(
                "message content intent is off: mentions, replies with a mention and DMs work; "
                "thread follow-ups need a mention (set DISCORD_MESSAGE_CONTENT_INTENT=true to lift that)"
            )
        self.add_dynamic_items(FeedbackButton, AskPersonButton)
        await self.add_cog(AskCog(self, self.service, self.settings, self.inflight))
        await self.add_cog(KnowledgeCog(self.service, self.settings))
        await self.add_cog(DeskCog(self, self.service, self.settings))
        await self._sync_commands()

    async def _sync_commands(self) -> None:
        """Per dev guild (instant) when configured, else globally (Discord propagates those within an hour)."""
        if not self.settings.dev_guild_ids:
            synced = await self.tree.sync()
            log.info("synced %d global application commands", len(synced))
            return
        for guild_id in self.settings.dev_guild_ids:
            guild = discord.Object(id=int(guild_id))
            self.tree.copy_global_to(guild=guild)
            synced = await self.tree.sync(guild=guild)
            log.info("synced %d application commands to guild %s", len(synced), guild_id)

    async def on_ready(self) -> None:
        log.info("discord ready as %s (%s) in %d guilds", self.user, self.user and self.user.id, len(self.guilds))
