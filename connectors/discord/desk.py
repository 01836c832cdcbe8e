"""Which Discord channel messages the bot answers under the channel's desk mode (``mention`` / ``questions`` /
``threads``). ``questions`` needs the message content intent: without it Discord delivers no text to judge."""

from __future__ import annotations

import re

import discord

from bot.desk.policy import should_answer
from bot.domain import Platform
from bot.service import Lorebot
from connectors.discord.context import scope_channel_id, workspace_of

_MENTION = re.compile(r"<@[!&]?\d+>")


async def desk_wants(
    service: Lorebot, message: discord.Message, text: str, *, mentioned: bool, in_bot_thread: bool
) -> bool:
    """Whether a guild message gets an answer under its channel's mode (a thread follows its parent channel's).
    ``in_bot_thread``: the message continues a conversation the bot is in. ``text`` is without the bot's own
    mention; anyone else's mention becomes ``@user``, so a message addressed to them is left alone."""
    channel = str(scope_channel_id(message.channel))
    guild_id = message.guild.id if message.guild else None
    policy = await service.desk.policy(Platform.DISCORD.value, workspace_of(guild_id), channel)
    return should_answer(policy, _MENTION.sub("@user", text), mentioned=mentioned, in_bot_thread=in_bot_thread)
