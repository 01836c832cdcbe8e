"""``/kb source add|list|sync|remove``: connected sources from Discord, a subgroup of ``/kb``.

Who may do what is the core's decision (admins; local paths never from chat) and it audits every attempt; errors
go to the client's one handler. A sync can take minutes: the reply is deferred and the summary follows when it
finishes (an interaction token lasts 15 minutes; a longer sync still completes and shows in ``list``).
"""

from __future__ import annotations

from typing import Literal

import discord
from discord import app_commands
from discord.utils import escape_markdown

from bot.service import Lorebot
from bot.sources.model import Source, SyncReport, format_every
from connectors.discord.answering import NO_MENTIONS
from connectors.discord.context import actor_for, place_of
from connectors.discord.settings import DiscordSettings

MAX_CONTENT_CHARS = 2000
MAX_LISTED_FAILURES = 5
RemoteKind = Literal["web", "sitemap", "git"]


class SourceCommands(app_commands.Group):
    def __init__(self, service: Lorebot, settings: DiscordSettings) -> None:
        super().__init__(name="source", description="Connected sources kept in sync (admins)")
        self.service = service
        self.settings = settings

    @app_commands.command(name="add", description="Add a docs site, sitemap or Git repository to keep in sync.")
    @app_commands.describe(url="Start page, sitemap.xml or repository URL", every="Re-sync schedule, e.g. 6h or 1d")
    async def add(self, interaction: discord.Interaction, kind: RemoteKind, url: str, every: str | None = None) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        scope = self.service.scopes_at(place_of(interaction.guild_id, interaction.channel))[0]
        actor = actor_for(interaction.user, self.settings)
        source = await self.service.sources.add(actor, kind, url.strip(), scope=scope, every=every)
        message = (
            f"Added source `{source.id}`: {source.kind} <{source.target}> → `{source.scope}`, "
            f"{format_every(source.every_s)}. Sync it now with `/kb source sync`."
        )
        await self._reply(interaction, message)

    @app_commands.command(name="list", description="List sources with their last sync and next run.")
    async def list_sources(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        sources = await self.service.sources.list(actor_for(interaction.user, self.settings))
        await self._reply(interaction, sources_text(sources))

    @app_commands.command(name="sync", description="Sync a source now and show what changed.")
    @app_commands.rename(source_id="id")
    async def sync(self, interaction: discord.Interaction, source_id: app_commands.Range[int, 1]) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        report = await self.service.sources.sync(actor_for(interaction.user, self.settings), source_id)
        await self._reply(interaction, sync_text(report))

    @app_commands.command(name="remove", description="Remove a source and the documents only it brought in.")
    @app_commands.rename(source_id="id")
    async def remove(self, interaction: discord.Interaction, source_id: app_commands.Range[int, 1]) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        actor = actor_for(interaction.user, self.settings)
        source, removed = await self.service.sources.remove(actor, source_id)
        await self._reply(interaction, f"Removed source `{source.id}` (<{source.target}>) and {removed} document(s).")

    async def _reply(self, interaction: discord.Interaction, text: str) -> None:
        await interaction.followup.send(_fit(text), ephemeral=True, allowed_mentions=NO_MENTIONS)


def sources_text(sources: list[Source]) -> str:
    if not sources:
        return "No sources yet: add one with `/kb source add`."
    lines = []
    for s in sources:
        synced = f"{s.last_status} {s.last_sync_at:%Y-%m-%d %H:%M} UTC" if s.last_sync_at else "never synced"
        line = (
            f"`{s.id}` {s.kind} <{s.target}> → `{s.scope}` · {format_every(s.every_s)} · {synced} · {s.documents} docs"
        )
        if s.last_error:
            line += f"\n  *{escape_markdown(s.last_error)}*"
        lines.append(line)
    return "\n".join(lines)


def sync_text(report: SyncReport) -> str:
    """The summary message of a finished sync: status, counts, then the first failures."""
    lines = [f"Sync of source `{report.source_id}` {report.status}: {report.summary()}."]
    if report.error:
        lines.append(f"*{escape_markdown(report.error)}*")
    lines += [f"• <{uri}>: {escape_markdown(error)}" for uri, error in report.failures[:MAX_LISTED_FAILURES]]
    return "\n".join(lines)


def _fit(text: str) -> str:
    return text if len(text) <= MAX_CONTENT_CHARS else text[: MAX_CONTENT_CHARS - 1] + "…"
