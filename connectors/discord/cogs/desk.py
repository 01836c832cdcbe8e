"""``/desk``: a channel's desk mode and language, the scope's answer footer and hand-over channel and role; and the
"Save as answer" message command on a supporter's reply to a hand-over post.

The ``/desk`` group is hidden behind Manage Server by default; the core checks admins and audits every change.
"Save as answer" is open to everyone in the menu: the core lets admins and the scope's support role through.
"""

from __future__ import annotations

import logging
from typing import Literal

import discord
from discord import app_commands
from discord.ext import commands

from bot.domain import Platform
from bot.errors import InvalidInput
from bot.service import Lorebot
from connectors.discord.answering import NO_MENTIONS
from connectors.discord.context import actor_for, place_of, scope_channel_id, workspace_of
from connectors.discord.settings import DiscordSettings

log = logging.getLogger(__name__)

SAVED_TEXT = "Saved as an answer: document `{id}` in `{scope}`. The next time someone asks, I'll cite it."
NOT_A_REPLY_TEXT = "Use *Save as answer* on a reply to a hand-over post (or a message in its thread)."


class PostableChannel(app_commands.Transformer):
    """A text or announcement channel as Discord resolved it, even one the bot cannot see (``discord.TextChannel``
    would fail such a choice with an internal error; :meth:`DeskCog.handover` says what is wrong instead)."""

    @property
    def type(self) -> discord.AppCommandOptionType:
        return discord.AppCommandOptionType.channel

    @property
    def channel_types(self) -> list[discord.ChannelType]:
        return [discord.ChannelType.text, discord.ChannelType.news]

    async def transform(
        self, interaction: discord.Interaction, value: app_commands.AppCommandChannel, /
    ) -> app_commands.AppCommandChannel:
        return value


@app_commands.guild_only()
@app_commands.default_permissions(manage_guild=True)
class DeskCog(commands.GroupCog, group_name="desk", group_description="Lorebot's support-desk settings"):
    def __init__(self, bot: commands.Bot, service: Lorebot, settings: DiscordSettings) -> None:
        self.bot = bot
        self.service = service
        self.settings = settings
        self.save_menu = app_commands.ContextMenu(name="Save as answer", callback=self.save_as_answer)
        super().__init__()

    async def cog_load(self) -> None:
        self.bot.tree.add_command(self.save_menu)

    async def cog_unload(self) -> None:
        self.bot.tree.remove_command(self.save_menu.name, type=self.save_menu.type)

    @app_commands.command(name="mode", description="Which messages in this channel I answer.")
    async def mode(self, interaction: discord.Interaction, mode: Literal["mention", "questions", "threads"]) -> None:
        await self._set(interaction, mode=mode)

    @app_commands.command(name="language", description="The language of my desk messages in this channel.")
    async def language(self, interaction: discord.Interaction, language: Literal["en", "zh"]) -> None:
        await self._set(interaction, language=language)

    @app_commands.command(name="footer", description="A line under every answer from this channel's scope.")
    @app_commands.describe(text="The footer; '-' removes it")
    async def footer(self, interaction: discord.Interaction, text: app_commands.Range[str, 1, 300]) -> None:
        actor = actor_for(interaction.user, self.settings)
        await self.service.desk.set_footer(actor, self._scope(interaction), "" if text == "-" else text)
        await self._show(interaction)

    @app_commands.command(name="handover", description="Where questions I cannot answer go, and whom to mention.")
    async def handover(
        self,
        interaction: discord.Interaction,
        channel: app_commands.Transform[app_commands.AppCommandChannel, PostableChannel],
        role: discord.Role | None = None,
    ) -> None:
        seen = channel.resolve()
        if not isinstance(seen, discord.TextChannel) or not seen.permissions_for(seen.guild.me).send_messages:
            raise InvalidInput(f"I cannot post in <#{channel.id}>: let me see it and send messages there first")
        actor = actor_for(interaction.user, self.settings)
        group = "" if role is None else str(role.id)
        await self.service.desk.set_handover(actor, self._scope(interaction), str(channel.id), group)
        await self._show(interaction)

    async def save_as_answer(self, interaction: discord.Interaction, message: discord.Message) -> None:
        """The person's reply (``message``) and the handed-over question become a document and curated data."""
        post_ref = _post_of(message)
        if post_ref is None:
            await interaction.response.send_message(NOT_A_REPLY_TEXT, ephemeral=True)
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        actor = actor_for(interaction.user, self.settings)
        roles = {str(role.id) for role in getattr(interaction.user, "roles", ())}

        async def supporter(group: str) -> bool:
            return group in roles

        channel = str(scope_channel_id(message.channel))
        result = await self.service.desk.save_answer(actor, channel, post_ref, message.content, supporter=supporter)
        document = result.document
        reply = SAVED_TEXT.format(id=document.id, scope=document.scope)
        await interaction.followup.send(reply, ephemeral=True, allowed_mentions=NO_MENTIONS)

    async def _set(self, interaction: discord.Interaction, **change: str) -> None:
        actor = actor_for(interaction.user, self.settings)
        channel = str(scope_channel_id(interaction.channel))
        workspace = workspace_of(interaction.guild_id)
        await self.service.desk.set_policy(actor, Platform.DISCORD.value, workspace, channel, **change)
        await self._show(interaction)

    async def _show(self, interaction: discord.Interaction) -> None:
        channel = str(scope_channel_id(interaction.channel))
        policy = await self.service.desk.policy(Platform.DISCORD.value, workspace_of(interaction.guild_id), channel)
        scope = self._scope(interaction)
        desk = await self.service.desk.scope_desk(scope, Platform.DISCORD.value)
        target = desk.target
        handover = (
            "none"
            if target is None
            else f"<#{target.channel}>" + (f" (<@&{target.support_group}>)" if target.support_group else "")
        )
        message = (
            f"This channel: mode `{policy.mode.value}`, language `{policy.language or 'en'}`.\n"
            f"Scope `{scope}`: footer “{desk.footer or '—'}”, hand-over {handover}."
        )
        await interaction.response.send_message(message, ephemeral=True, allowed_mentions=NO_MENTIONS)

    def _scope(self, interaction: discord.Interaction) -> str:
        return self.service.scopes_at(place_of(interaction.guild_id, interaction.channel))[0]


def _post_of(message: discord.Message) -> str | None:
    """The hand-over post a reply answers: the message it replies to, or the post a thread was started from (a
    thread's id is its starter message's id)."""
    if message.reference is not None and message.reference.message_id is not None:
        return str(message.reference.message_id)
    if isinstance(message.channel, discord.Thread):
        return str(message.channel.id)
    return None
