"""Asking: ``/ask``, mentions, DMs, and follow-ups in the bot's threads and reply chains.

Without the privileged message-content intent Discord still delivers the text of mentions and DMs, so those
always work; follow-ups in a thread *without* a mention need the intent (their content arrives empty otherwise).
"""

from __future__ import annotations

import logging
from dataclasses import replace

import discord
from discord import app_commands
from discord.ext import commands

from bot.domain import ConversationKey, Question
from bot.errors import Redelivered
from bot.failures import describe_failure
from bot.inflight import InFlight
from bot.service import Lorebot
from connectors.discord.answering import NO_MENTIONS, InteractionSurface, MessageSurface, stream_answer
from connectors.discord.context import (
    actor_for,
    conversation_key,
    place_of,
    question_text,
    replied_to,
    reply_chain_root,
)
from connectors.discord.desk import desk_wants
from connectors.discord.settings import DiscordSettings

log = logging.getLogger(__name__)

MAX_QUESTION_CHARS = 2000
THREAD_NAME_CHARS = 90
ANSWERABLE_MESSAGE_TYPES = (discord.MessageType.default, discord.MessageType.reply)
EMPTY_MENTION_HINT = "Ask me something after the mention, e.g. “@Lorebot how do I reset my password?”"


class AskCog(commands.Cog):
    def __init__(self, bot: commands.Bot, service: Lorebot, settings: DiscordSettings, inflight: InFlight) -> None:
        self.bot = bot
        self.service = service
        self.settings = settings
        self.inflight = inflight

    @app_commands.command(name="ask", description="Ask the knowledge base; the answer cites its sources.")
    @app_commands.describe(question="What you want to know")
    async def ask(
        self, interaction: discord.Interaction, question: app_commands.Range[str, 1, MAX_QUESTION_CHARS]
    ) -> None:
        callback = await interaction.response.defer(thinking=True)
        root = callback.message_id if callback is not None and callback.message_id else interaction.id
        log.info("ask interaction=%d guild=%s user=%d", interaction.id, interaction.guild_id, interaction.user.id)
        question_ = Question(
            text=question,
            actor=actor_for(interaction.user, self.settings),
            conversation=conversation_key(interaction.guild_id, interaction.channel, root),
            place=place_of(interaction.guild_id, interaction.channel),
        )
        async with self.inflight.track():
            await stream_answer(self.service, question_, InteractionSurface(interaction), self.bot)

    @commands.Cog.listener()
    async def on_message(self, message: discord.Message) -> None:
        me = self.bot.user
        if me is None or message.author.bot or message.type not in ANSWERABLE_MESSAGE_TYPES:
            return
        text = question_text(message, me)
        mentioned = me.id in message.raw_mentions  # in the text: a reply also pings its author, which is no mention
        if not text:
            if mentioned:
                await message.reply(EMPTY_MENTION_HINT, mention_author=False, allowed_mentions=NO_MENTIONS)
            return
        key = await self._conversation_for(message, mentioned)
        if key is None:
            return
        guild_id = message.guild.id if message.guild else None
        question = Question(
            text=text,
            actor=actor_for(message.author, self.settings),
            conversation=key,
            place=place_of(guild_id, message.channel, event_id=f"message:{message.id}"),
        )
        try:
            question = await self.service.accept(question)  # before a thread or a reply shows anything
        except Redelivered:
            return
        thread = message.channel if isinstance(message.channel, discord.Thread) else None
        if self.settings.reply_in_thread and message.guild is not None and key.thread == str(message.id):
            thread = await message.create_thread(name=text[:THREAD_NAME_CHARS])
            key = conversation_key(message.guild.id, thread, thread.id)
            question = replace(question, conversation=key)
        log.info("ask message=%d guild=%s channel=%s thread=%s", message.id, key.workspace, key.channel, key.thread)
        surface = MessageSurface(message, thread)
        try:
            async with self.inflight.track():
                await surface.start()
                await stream_answer(self.service, question, surface, self.bot)
        except Exception as exc:  # listeners have no error hook that reaches the user
            await surface.fail(describe_failure(exc).user_message)

    async def _conversation_for(self, message: discord.Message, mentioned: bool) -> ConversationKey | None:
        """Which conversation a message continues or starts, or None when it is not meant for the bot."""
        guild_id = message.guild.id if message.guild else None
        if guild_id is None:
            return conversation_key(None, message.channel, None)
        text = question_text(message, self.bot.user)
        if isinstance(message.channel, discord.Thread):  # in `threads` mode only threads the bot is in
            key = conversation_key(guild_id, message.channel, message.channel.id)
            known = self._replies_to_me(message) or await self.service.knows_conversation(key)
            wanted = await desk_wants(self.service, message, text, mentioned=mentioned, in_bot_thread=known)
            return key if wanted else None
        if self._replies_to_me(message):  # a reply to a hand-over post is for people, not a follow-up
            key = conversation_key(guild_id, message.channel, await reply_chain_root(message))
            if await self.service.knows_conversation(key):
                return key
        if await desk_wants(self.service, message, text, mentioned=mentioned, in_bot_thread=False):
            return conversation_key(guild_id, message.channel, message.id)
        return None

    def _replies_to_me(self, message: discord.Message) -> bool:
        parent = replied_to(message)
        return parent is not None and self.bot.user is not None and parent.author.id == self.bot.user.id
