"""Hand-over on Discord: the "Ask a person" button, and posting a question to the scope's support channel with
its role mentioned (also after not found and 👎). The core records the hand-over and decides where it goes."""

from __future__ import annotations

import logging
import re
from typing import Any

import discord

from bot.desk.service import Handover, NoHandover
from bot.desk.texts import text
from bot.domain import Actor
from bot.failures import describe_failure
from bot.service import Lorebot
from connectors.discord.context import actor_for
from connectors.discord.desk_render import handover_content

log = logging.getLogger(__name__)

CUSTOM_ID_PREFIX = "lorebot:ask"
DEFAULT_LABEL = text("en", "ask_person")


class AskPersonButton(
    discord.ui.DynamicItem[discord.ui.Button], template=re.escape(CUSTOM_ID_PREFIX) + r":(?P<message_id>\d+)"
):
    """Under every answer in a scope with a hand-over channel; works after restarts (the id is in the button)."""

    def __init__(self, message_id: int, label: str = DEFAULT_LABEL) -> None:
        super().__init__(
            discord.ui.Button(
                style=discord.ButtonStyle.secondary, label=label, custom_id=f"{CUSTOM_ID_PREFIX}:{message_id}"
            )
        )
        self.message_id = message_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str]
    ) -> AskPersonButton:
        return cls(int(match["message_id"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        client: Any = interaction.client
        await interaction.response.defer(ephemeral=True, thinking=True)
        actor = actor_for(interaction.user, client.settings)
        try:
            notice = await hand_over(client, client.service, actor, self.message_id, "asked")
        except Exception as exc:  # every failure is shown to the asker with an error id
            notice = describe_failure(exc).user_message
        await interaction.followup.send(notice, ephemeral=True)


async def hand_over(client: discord.Client, service: Lorebot, actor: Actor, message_id: int, reason: str) -> str:
    """Post the question to the support channel (once), tell its conversation, and return what it was told."""
    handover = await service.desk.hand_over(actor, message_id, reason)
    guild_id = int(handover.workspace) if handover.workspace.isdigit() else None
    if handover.created:
        support = client.get_partial_messageable(int(handover.target.channel), guild_id=guild_id)
        posted = await support.send(handover_content(handover, guild_id), allowed_mentions=_role_ping(handover))
        await service.desk.posted(handover, str(posted.id))
    key = "already_handed_over" if not handover.created else "handed_over"
    notice = text(handover.language, "not_found_handed_over" if reason == "not_found" else key, **_labels(handover))
    if handover.channel.isdigit():
        conversation = client.get_partial_messageable(int(handover.channel), guild_id=guild_id)
        await conversation.send(notice, allowed_mentions=discord.AllowedMentions.none())
    return notice


async def hand_over_if_configured(
    client: discord.Client, service: Lorebot, actor: Actor, message_id: int, reason: str
) -> None:
    """An automatic hand-over (not found, 👎): nothing happens where the scope has no support channel."""
    try:
        await hand_over(client, service, actor, message_id, reason)
    except NoHandover:
        log.debug("no hand-over for message %d (%s): none configured", message_id, reason)


def _labels(handover: Handover) -> dict[str, str]:
    group = handover.target.support_group
    return {
        "group": f"<@&{group}>" if group.isdigit() else "the support team",
        "channel": f"<#{handover.target.channel}>",
    }


def _role_ping(handover: Handover) -> discord.AllowedMentions:
    """Ping the support role only (never @everyone or a user named in the question)."""
    group = handover.target.support_group
    roles = [discord.Object(id=int(group))] if group.isdigit() else False
    return discord.AllowedMentions(everyone=False, users=False, roles=roles)
