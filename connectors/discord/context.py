"""Translate Discord's who/where into the core's :class:`Actor`, :class:`Place` and :class:`ConversationKey`.

A conversation is a thread (its own id is the root) or, in a plain channel, a reply chain rooted at the first
message; DMs are one conversation per DM channel. Scopes come from the guild and the channel a thread lives in,
so one guild never reaches another guild's knowledge.
"""

from __future__ import annotations

import logging
import re

import discord

from bot.domain import Actor, ConversationKey, Place, Platform
from connectors.discord.settings import DiscordSettings

log = logging.getLogger(__name__)

DM_WORKSPACE = "@me"
"""The workspace of direct messages (Discord's own name for 'no guild')."""
MAX_REPLY_CHAIN = 40
"""How many reply links are followed back to a conversation's first message (20 question/answer turns)."""

_USER_MENTION = re.compile(r"<@!?(\d+)>")


def is_admin(user: discord.abc.User, settings: DiscordSettings) -> bool:
    """What Discord knows: a listed Discord user id or a listed role (the core adds ``ADMIN_USER_IDS``)."""
    if str(user.id) in settings.admin_user_ids:
        return True
    roles = getattr(user, "roles", ())
    return any(str(role.id) in settings.admin_role_ids for role in roles)


def actor_for(user: discord.abc.User, settings: DiscordSettings) -> Actor:
    return Actor(
        platform=Platform.DISCORD.value,
        user_id=str(user.id),
        display_name=user.display_name,
        is_admin=is_admin(user, settings),
    )


def workspace_of(guild_id: int | None) -> str:
    return str(guild_id) if guild_id is not None else DM_WORKSPACE


def scope_channel_id(channel: object) -> int | None:
    """The channel that decides scopes: a thread answers from its parent channel's knowledge."""
    if isinstance(channel, discord.Thread):
        return channel.parent_id
    return getattr(channel, "id", None)


def place_of(guild_id: int | None, channel: object, event_id: str = "") -> Place:
    """Where a message or command happened; the core resolves its scopes (from the thread's parent channel)."""
    channel_id = scope_channel_id(channel)
    channel_ref = "" if channel_id is None else str(channel_id)
    return Place(Platform.DISCORD.value, workspace_of(guild_id), channel_ref, event_id=event_id)


def conversation_key(guild_id: int | None, channel: object, root_id: int | None) -> ConversationKey:
    """Threads are one conversation each; elsewhere the root message (or DM channel) names it."""
    channel_id = str(getattr(channel, "id", ""))
    if isinstance(channel, discord.Thread):
        return ConversationKey(Platform.DISCORD.value, workspace_of(guild_id), channel_id, channel_id)
    thread = "" if guild_id is None or root_id is None else str(root_id)
    return ConversationKey(Platform.DISCORD.value, workspace_of(guild_id), channel_id, thread)


def question_text(message: discord.Message, bot_user: discord.abc.User) -> str:
    """The message without the bot's own mention (other mentions stay, shown as plain ids)."""
    text = _USER_MENTION.sub(lambda m: "" if int(m.group(1)) == bot_user.id else m.group(0), message.content)
    return " ".join(text.split())


def replied_to(message: discord.Message) -> discord.Message | None:
    """The message ``message`` replies to, if Discord delivered it (or it is in the client's cache)."""
    reference = message.reference
    if reference is None or reference.message_id is None:
        return None
    if isinstance(reference.resolved, discord.Message):
        return reference.resolved
    return reference.cached_message


async def reply_chain_root(message: discord.Message) -> int:
    """The id of the first message of the reply chain ``message`` belongs to (fetching uncached links)."""
    current = message
    for _ in range(MAX_REPLY_CHAIN):
        reference = current.reference
        if reference is None or reference.message_id is None or reference.channel_id != current.channel.id:
            return current.id
        parent = replied_to(current)
        if parent is None:
            try:
                parent = await current.channel.fetch_message(reference.message_id)
            except discord.NotFound:
                return reference.message_id
        current = parent
    log.info("reply chain of message %d is longer than %d links; starting there", message.id, MAX_REPLY_CHAIN)
    return current.id
