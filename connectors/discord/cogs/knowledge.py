"""``/kb``: add, list, remove and search documents, and show which scopes a channel answers from.

The whole group is hidden behind Manage Server by default permissions (server admins can re-map that). Who may
change knowledge is the core's decision, from the roles and ids the actor carries (:mod:`connectors.discord.context`);
it audits every attempt. Errors go to the client's one handler, :meth:`LorebotTree.on_error`.
"""

from __future__ import annotations

import logging

import discord
from discord import app_commands
from discord.ext import commands

from bot.desk.report import parse_since
from bot.domain import IngestResult
from bot.errors import IngestError
from bot.service import Lorebot
from connectors.discord.answering import NO_MENTIONS
from connectors.discord.cogs.sources import SourceCommands
from connectors.discord.context import actor_for, place_of
from connectors.discord.desk_render import report_embeds
from connectors.discord.render import documents_embed, passages_embed
from connectors.discord.settings import DiscordSettings

log = logging.getLogger(__name__)


@app_commands.guild_only()
@app_commands.default_permissions(manage_guild=True)
class KnowledgeCog(commands.GroupCog, group_name="kb", group_description="Manage Lorebot's knowledge base"):
    def __init__(self, service: Lorebot, settings: DiscordSettings) -> None:
        self.service = service
        self.settings = settings
        super().__init__()
        self.__cog_app_commands_group__.add_command(SourceCommands(service, settings))

    @app_commands.command(name="add", description="Add a document from a URL, pasted text or an attached file.")
    @app_commands.describe(
        url="A web page or file to fetch", text="Text to store", file="A file (text, Markdown, HTML, PDF)"
    )
    async def add(
        self,
        interaction: discord.Interaction,
        url: str | None = None,
        text: str | None = None,
        file: discord.Attachment | None = None,
        title: str | None = None,
    ) -> None:
        given = [option for option in (url, text, file) if option]
        if len(given) != 1:
            raise IngestError("give exactly one of url, text or file")
        actor = actor_for(interaction.user, self.settings)
        if file is not None:  # refused before anything is downloaded
            await self.service.require_admin(actor, "add_file", target=f"discord-attachment:{file.id}")
            self._check_attachment(file)
        await interaction.response.defer(ephemeral=True, thinking=True)
        scope = self._scopes(interaction)[0]
        if file is not None:
            data = await file.read()
            result = await self.service.add_file(
                actor, data, file.filename, scope=scope, declared_mime=file.content_type
            )
        elif url:
            result = await self.service.add_url(actor, url.strip(), scope=scope)
        else:
            result = await self.service.add_text(actor, text or "", title=title or "", scope=scope)
        await interaction.followup.send(_added_message(result), ephemeral=True, allowed_mentions=NO_MENTIONS)

    @app_commands.command(name="list", description="List the documents this channel answers from.")
    async def list_documents(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        scopes = self._scopes(interaction)
        documents = await self.service.list_documents(actor_for(interaction.user, self.settings), scopes)
        await interaction.followup.send(embed=documents_embed(documents, scopes), ephemeral=True)

    @app_commands.command(name="remove", description="Remove a document (and its chunks) by id.")
    @app_commands.rename(document_id="id")
    @app_commands.describe(document_id="The document id shown by /kb list")
    async def remove(self, interaction: discord.Interaction, document_id: app_commands.Range[int, 1]) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        actor = actor_for(interaction.user, self.settings)
        removed = await self.service.remove_document(actor, document_id, self._scopes(interaction))
        message = f"Removed document `{removed.id}` “{removed.title}” ({removed.chunk_count} chunks)."
        await interaction.followup.send(message, ephemeral=True, allowed_mentions=NO_MENTIONS)

    @app_commands.command(name="search", description="Show the passages a question would be answered from.")
    @app_commands.describe(query="Words or a question")
    async def search(self, interaction: discord.Interaction, query: app_commands.Range[str, 1, 500]) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        actor = actor_for(interaction.user, self.settings)
        passages = await self.service.search(actor, query, self._scopes(interaction))
        await interaction.followup.send(embed=passages_embed(query, passages), ephemeral=True)

    @app_commands.command(name="scope", description="Show which knowledge scopes this channel answers from.")
    async def scope(self, interaction: discord.Interaction) -> None:
        scopes = self._scopes(interaction)
        listed = ", ".join(f"`{scope}`" for scope in scopes)
        message = f"This channel answers from: {listed}. `/kb add` stores into `{scopes[0]}`."
        await interaction.response.send_message(message, ephemeral=True, allowed_mentions=NO_MENTIONS)

    @app_commands.command(name="report", description="What the knowledge base could not answer, and what it cites.")
    @app_commands.describe(since="Time span up to now: 24h, 7d, 4w", scope="A scope (default: this channel's)")
    async def report(self, interaction: discord.Interaction, since: str = "7d", scope: str | None = None) -> None:
        span = parse_since(since)
        await interaction.response.defer(ephemeral=True, thinking=True)
        actor = actor_for(interaction.user, self.settings)
        result = await self.service.desk.report(actor, since=span, scope=scope or self._scopes(interaction)[0])
        status = await self.service.desk.kb_status()
        await interaction.followup.send(embeds=report_embeds(result, status), ephemeral=True)

    def _scopes(self, interaction: discord.Interaction) -> tuple[str, ...]:
        return self.service.scopes_at(place_of(interaction.guild_id, interaction.channel))

    def _check_attachment(self, file: discord.Attachment) -> None:
        """Refuse before downloading: over Discord's attachment limit, or what the core would refuse."""
        limit = self.settings.max_attachment_bytes
        if file.size > limit:
            raise IngestError(f"{file.filename} is {_mib(file.size)}; the limit is {_mib(limit)}")
        self.service.check_upload(file.filename, file.content_type, file.size)


def _added_message(result: IngestResult) -> str:
    document = result.document
    verb = {"added": "Added", "replaced": "Updated", "unchanged": "Already up to date:"}[result.status]
    return f"{verb} document `{document.id}` “{document.title}” — {result.chunk_count} chunks in `{document.scope}`."


def _mib(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MiB"
