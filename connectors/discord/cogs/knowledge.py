"""``/kb``: add, list, remove and search documents, and show which scopes a channel answers from.

The whole group is hidden behind Manage Server by default permissions (server admins can re-map that), and the
commands that change knowledge are checked again here against the configured admin users and roles; the core
checks :attr:`Actor.is_admin` a third time and audits the action.
"""

from __future__ import annotations

import logging
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.domain import IngestResult
from bot.errors import IngestError
from connectors.discord.answering import NO_MENTIONS
from connectors.discord.context import actor_for, is_admin, scopes_for
from connectors.discord.errors import report_interaction_failure
from connectors.discord.render import documents_embed, passages_embed

if TYPE_CHECKING:
    from connectors.discord.client import LorebotClient

log = logging.getLogger(__name__)

ACCEPTED_CONTENT_TYPES = frozenset(
    {"application/pdf", "application/json", "application/xml", "application/xhtml+xml", "application/x-yaml"}
)
"""Besides any ``text/*``: what the core's loaders can read (they check the bytes again after download)."""
ACCEPTED_SUFFIXES = frozenset({".txt", ".md", ".markdown", ".rst", ".html", ".htm", ".pdf", ".csv", ".json", ".log"})
"""Used only when Discord gives no content type."""


def _is_kb_admin(interaction: discord.Interaction) -> bool:
    client: Any = interaction.client
    return is_admin(interaction.user, client.settings)


@app_commands.guild_only()
@app_commands.default_permissions(manage_guild=True)
class KnowledgeCog(commands.GroupCog, group_name="kb", group_description="Manage Lorebot's knowledge base"):
    def __init__(self, bot: LorebotClient) -> None:
        self.bot = bot
        self.service = bot.service
        self.settings = bot.settings
        super().__init__()

    @app_commands.command(name="add", description="Add a document from a URL, pasted text or an attached file.")
    @app_commands.describe(
        url="A web page or file to fetch", text="Text to store", file="A file (text, Markdown, HTML, PDF)"
    )
    @app_commands.check(_is_kb_admin)
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
        if file is not None:
            self._check_attachment(file)
        await interaction.response.defer(ephemeral=True, thinking=True)
        actor = actor_for(interaction.user, self.settings)
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
    @app_commands.check(_is_kb_admin)
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

    async def cog_app_command_error(
        self, interaction: discord.Interaction, error: app_commands.AppCommandError
    ) -> None:
        await report_interaction_failure(interaction, error)

    def _scopes(self, interaction: discord.Interaction) -> tuple[str, ...]:
        return scopes_for(self.service, interaction.guild_id, interaction.channel)

    def _check_attachment(self, file: discord.Attachment) -> None:
        """Refuse before downloading: too big, or a type the loaders cannot read."""
        limit = self.settings.discord_max_attachment_bytes
        if file.size > limit:
            raise IngestError(f"{file.filename} is {_mib(file.size)}; the limit is {_mib(limit)}")
        content_type = (file.content_type or "").split(";")[0].strip().lower()
        suffix = PurePosixPath(file.filename).suffix.lower()
        readable = content_type.startswith("text/") or content_type in ACCEPTED_CONTENT_TYPES
        if not (readable or (not content_type and suffix in ACCEPTED_SUFFIXES)):
            raise IngestError(
                f"{file.filename} ({content_type or 'unknown type'}) is not supported; use text, Markdown, HTML or PDF"
            )


def _added_message(result: IngestResult) -> str:
    document = result.document
    verb = {"added": "Added", "replaced": "Updated", "unchanged": "Already up to date:"}[result.status]
    return f"{verb} document `{document.id}` “{document.title}” — {result.chunk_count} chunks in `{document.scope}`."


def _mib(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MiB"
