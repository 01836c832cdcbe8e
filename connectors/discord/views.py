"""👍/👎 feedback buttons that keep working after a restart.

The answer's id lives in the button's custom id (``lorebot:fb:<message_id>:up``), and the client registers
:class:`FeedbackButton` as a dynamic item, so any instance of the bot can handle a click on any old answer.
"""

from __future__ import annotations

import logging
import re
from typing import Any, Literal

import discord

from bot.failures import describe_failure
from connectors.discord.context import actor_for
from connectors.discord.handover import hand_over_if_configured

log = logging.getLogger(__name__)

CUSTOM_ID_PREFIX = "lorebot:fb"
Vote = Literal["up", "down"]
_SCORES: dict[str, Literal[1, -1]] = {"up": 1, "down": -1}
_EMOJI = {"up": "👍", "down": "👎"}


def feedback_custom_id(message_id: int, vote: Vote) -> str:
    return f"{CUSTOM_ID_PREFIX}:{message_id}:{vote}"


class FeedbackButton(
    discord.ui.DynamicItem[discord.ui.Button],
    template=re.escape(CUSTOM_ID_PREFIX) + r":(?P<message_id>\d+):(?P<vote>up|down)",
):
    """One vote button; the click records the vote through the core and thanks the voter privately."""

    def __init__(self, message_id: int, vote: Vote) -> None:
        super().__init__(
            discord.ui.Button(
                style=discord.ButtonStyle.secondary,
                emoji=_EMOJI[vote],
                custom_id=feedback_custom_id(message_id, vote),
            )
        )
        self.message_id = message_id
        self.vote: Vote = vote

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str]
    ) -> FeedbackButton:
        return cls(int(match["message_id"]), match["vote"])  # type: ignore[arg-type]

    async def callback(self, interaction: discord.Interaction) -> None:
        client: Any = interaction.client
        actor = actor_for(interaction.user, client.settings)
        try:
            await client.service.record_feedback(actor, self.message_id, _SCORES[self.vote])
        except Exception as exc:  # every failure is shown to the voter with an error id
            await interaction.response.send_message(describe_failure(exc).user_message, ephemeral=True)
            return
        log.info("feedback message=%d actor=%s vote=%s", self.message_id, actor.ref, self.vote)
        await interaction.response.send_message(f"Thanks for the feedback {_EMOJI[self.vote]}", ephemeral=True)
        if self.vote == "down":
            await hand_over_if_configured(interaction.client, client.service, actor, self.message_id, "thumbs_down")


def feedback_view(message_id: int) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    view.add_item(FeedbackButton(message_id, "up"))
    view.add_item(FeedbackButton(message_id, "down"))
    return view
