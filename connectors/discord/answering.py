"""Stream an answer into Discord: one message edited at most once per second, then the split final parts.

Where the answer goes differs: a slash command edits its deferred "thinking" response (and must finish inside
the 15-minute interaction window, else the answer is posted in the channel with a note); a mention gets a reply
or a thread message. Both are an :class:`AnswerSurface`; :func:`stream_answer` drives either.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Protocol

import discord

from bot.domain import Answer, Question
from bot.service import Lorebot
from bot.streaming import final_answer
from connectors.discord.handover import AskPersonButton, hand_over_if_configured
from connectors.discord.render import THINKING_TEXT, progress_preview, sources_embed, split_message
from connectors.discord.views import feedback_view

log = logging.getLogger(__name__)

EDIT_INTERVAL_S = 1.0
"""Progress edits per message at most once a second (Discord's edit limit is about 5 per 5 s)."""
INTERACTION_WINDOW = timedelta(minutes=15)
INTERACTION_SAFETY_MARGIN = timedelta(seconds=30)
"""Stop using the interaction token this long before it expires (the last edit must still land)."""
NO_MENTIONS = discord.AllowedMentions.none()
EMPTY_ANSWER = "(The model returned an empty answer.)"


class AnswerSurface(Protocol):
    async def progress(self, text: str) -> None:
        """Show the answer so far (already fitted to one message)."""

    async def finish(self, parts: list[str], embed: discord.Embed | None, view: discord.ui.View | None) -> None:
        """Show the final answer; ``embed`` and ``view`` belong on the last part."""

    async def fail(self, message: str) -> None:
        """Show an error instead of (or in place of) the answer."""


async def stream_answer(
    service: Lorebot, question: Question, surface: AnswerSurface, client: discord.Client | None = None
) -> Answer:
    """Stream ``question``'s answer onto ``surface``; core errors propagate to the caller's error handler. With
    ``client``, an answer that found nothing is handed over to the scope's support channel, if it has one."""
    question = await service.accept(question)  # its scopes decide the desk's footer and hand-over

    async def progress(text: str) -> None:
        await surface.progress(progress_preview(text))

    answer = await final_answer(service.stream(question), progress, every_s=EDIT_INTERVAL_S)
    desk = await service.desk.decoration(question)
    shown = desk.shown(answer).text
    text = f"{shown}\n\n-# {desk.footer}" if desk.footer else shown
    parts = split_message(text) or [EMPTY_ANSWER]
    view = None
    if answer.message_id is not None:
        view = feedback_view(answer.message_id)
        if desk.ask_person:
            view.add_item(AskPersonButton(answer.message_id, desk.ask_person))
    await surface.finish(parts, sources_embed(answer.citations), view)
    if client is not None and not answer.found and desk.ask_person and answer.message_id is not None:
        await hand_over_if_configured(client, service, question.actor, answer.message_id, "not_found")
    return answer


class InteractionSurface:
    """The deferred response of a slash command, with followups for extra parts and a channel fallback."""

    def __init__(self, interaction: discord.Interaction) -> None:
        self.interaction = interaction
        self.deadline = interaction.created_at + INTERACTION_WINDOW - INTERACTION_SAFETY_MARGIN

    def expired(self) -> bool:
        return discord.utils.utcnow() >= self.deadline

    async def progress(self, text: str) -> None:
        if not self.expired():
            await self.interaction.edit_original_response(content=text, allowed_mentions=NO_MENTIONS)

    async def finish(self, parts: list[str], embed: discord.Embed | None, view: discord.ui.View | None) -> None:
        if self.expired():
            await self._post_in_channel(parts, embed, view)
            return
        extras = _extras(0, parts, embed, view)
        await self.interaction.edit_original_response(content=parts[0], allowed_mentions=NO_MENTIONS, **extras)
        for index, part in enumerate(parts[1:], start=1):
            extras = _extras(index, parts, embed, view)
            await self.interaction.followup.send(part, allowed_mentions=NO_MENTIONS, **extras)

    async def fail(self, message: str) -> None:
        if self.expired():
            await self._post_in_channel([message], None, None)
        else:
            await self.interaction.edit_original_response(content=message, embed=None, view=None)

    async def _post_in_channel(
        self, parts: list[str], embed: discord.Embed | None, view: discord.ui.View | None
    ) -> None:
        channel = self.interaction.channel
        if not isinstance(channel, discord.abc.Messageable):
            log.warning("interaction %d expired and its channel is unknown; answer dropped", self.interaction.id)
            return
        log.info("interaction %d expired; posting the answer in channel %d", self.interaction.id, channel.id)
        note = f"*Answer to {self.interaction.user.display_name}'s question (it took too long to reply in place):*"
        parts = split_message("\n\n".join([note, *parts]))
        for index, part in enumerate(parts):
            await channel.send(part, allowed_mentions=NO_MENTIONS, **_extras(index, parts, embed, view))


class MessageSurface:
    """Replies to a user's message (or posts in a thread): the first part is edited while streaming."""

    def __init__(self, message: discord.Message, thread: discord.Thread | None = None) -> None:
        self.message = message
        self.thread = thread
        self.first: discord.Message | None = None

    async def start(self) -> None:
        """Reply with a placeholder at once: retrieval and the model's first words can take seconds."""
        self.first = await self._send(THINKING_TEXT, {})

    async def progress(self, text: str) -> None:
        if self.first is None:
            self.first = await self._send(text, {})
        else:
            await self.first.edit(content=text, allowed_mentions=NO_MENTIONS)

    async def finish(self, parts: list[str], embed: discord.Embed | None, view: discord.ui.View | None) -> None:
        for index, part in enumerate(parts):
            extras = _extras(index, parts, embed, view)
            if index == 0 and self.first is not None:
                await self.first.edit(content=part, allowed_mentions=NO_MENTIONS, **extras)
            else:
                await self._send(part, extras)

    async def fail(self, message: str) -> None:
        await self.finish([message], None, None)

    async def _send(self, text: str, extras: dict[str, object]) -> discord.Message:
        if self.thread is not None:
            return await self.thread.send(text, allowed_mentions=NO_MENTIONS, **extras)  # type: ignore[arg-type]
        return await self.message.reply(text, mention_author=False, allowed_mentions=NO_MENTIONS, **extras)


def _extras(
    index: int, parts: list[str], embed: discord.Embed | None, view: discord.ui.View | None
) -> dict[str, object]:
    """Embed and buttons go on the last part only (Discord shows them under the message they belong to)."""
    if index != len(parts) - 1:
        return {}
    extras: dict[str, object] = {}
    if embed is not None:
        extras["embed"] = embed
    if view is not None:
        extras["view"] = view
    return extras
