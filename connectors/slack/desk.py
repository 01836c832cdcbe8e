"""The support desk on Slack: questions in ``questions`` channels, hand-over to the scope's support channel ("Ask a
person", 👎, not found), "Save as answer" on a supporter's reply (a message shortcut), and ``/kb desk``.

Translation only: the core decides who may do what (:mod:`bot.desk.service`); this turns Slack ids and events
into its calls and its answers into posts.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.respond.async_respond import AsyncRespond
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.desk.policy import should_answer
from bot.desk.service import Handover, NoHandover
from bot.desk.texts import text
from bot.domain import Actor, ConversationKey, Platform
from connectors.slack import desk_render, render
from connectors.slack.deps import Deps
from connectors.slack.tasks import Tell, post_in, respond_privately

if TYPE_CHECKING:
    from bot.service import Lorebot

log = logging.getLogger(__name__)

ASK_PERSON_ACTION = "ask_person"
SAVE_ANSWER_SHORTCUT = "save_as_answer"
OTHER_MENTION = re.compile(r"<@[UW][A-Z0-9]+(?:\|[^>]*)?>")
CHANNEL_REF = re.compile(r"^<#(?P<id>[CG][A-Z0-9]+)(?:\|[^>]*)?>$|^(?P<bare>[CG][A-Z0-9]+)$")
GROUP_REF = re.compile(r"^<!subteam\^(?P<id>S[A-Z0-9]+)(?:\|[^>]*)?>$|^(?P<bare>S[A-Z0-9]+)$")
DESK_USAGE = (
    "*Usage:* `/kb desk` · `/kb desk mode mention|questions|threads` · `/kb desk language en|zh|default` · "
    "`/kb desk footer <text | ->` · `/kb desk handover #channel @support-group`"
)
SAVED_TEXT = "Saved as an answer: document #{id} in scope `{scope}`. The next time someone asks, I'll cite it."
NOT_A_REPLY_TEXT = "Use *Save as answer* on a reply in a hand-over thread, not on the hand-over post itself."


def register(app: AsyncApp, deps: Deps) -> None:
    @app.action(ASK_PERSON_ACTION)
    async def ask_person(
        ack: AsyncAck, body: dict[str, Any], action: dict[str, Any], respond: AsyncRespond, client: AsyncWebClient
    ) -> None:
        await ack()
        actor = deps.admins.actor(body["user"]["id"])
        tell = respond_privately(respond, replace_original=False)
        deps.tasks.spawn(
            hand_over(deps.service, client, actor, int(action["value"]), "asked", tell=tell),
            name="ask a person",
            tell=tell,
        )

    @app.shortcut(SAVE_ANSWER_SHORTCUT)
    async def save_answer(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond, client: AsyncWebClient) -> None:
        await ack()
        tell = respond_privately(respond, replace_original=False)
        deps.tasks.spawn(_save(deps, client, body, tell), name="save as answer", tell=tell)


def readable(text_: str, bot_user_id: str | None) -> tuple[str, bool]:
    """The text with people's mentions written ``@user`` (so the detector sees who it is for), and whether it
    mentions the bot."""
    mentioned = bool(bot_user_id) and f"<@{bot_user_id}" in text_
    return OTHER_MENTION.sub("@user", text_), mentioned


async def channel_wants_answer(deps: Deps, event: dict[str, Any], team: str, bot_user_id: str | None) -> bool:
    """Whether a channel message gets an answer under the channel's mode (``mention`` / ``questions`` /
    ``threads``); mentions come as ``app_mention`` events and are judged with ``mentioned=True``."""
    channel = event["channel"]
    body, mentioned = readable(event.get("text") or "", bot_user_id)
    if event.get("files") and not mentioned:
        return False  # a file shared in a channel is not a question, nor a document for the bot
    policy = await deps.service.desk.policy(Platform.SLACK.value, team, channel)
    thread = event.get("thread_ts")
    in_bot_thread = bool(thread) and await deps.service.knows_conversation(
        ConversationKey(Platform.SLACK.value, team, channel, thread)
    )
    return should_answer(policy, body, mentioned=mentioned, in_bot_thread=in_bot_thread)


async def hand_over(
    service: Lorebot, client: AsyncWebClient, actor: Actor, message_id: int, reason: str, *, tell: Tell
) -> None:
    """Post the question to the scope's support channel (once) and tell the conversation who will answer."""
    handover = await service.desk.hand_over(actor, message_id, reason)
    if handover.created:
        posted = await client.chat_postMessage(
            channel=handover.target.channel,
            text=desk_render.handover_text(handover),
            blocks=desk_render.handover_blocks(handover),
        )
        await service.desk.posted(handover, posted["ts"])
    key = "handed_over" if handover.created else "already_handed_over"
    if reason == "not_found":
        key = "not_found_handed_over"
    notice = _notice(handover, key)
    if handover.channel:
        await post_in(client, handover.channel, handover.thread or None)(notice)
    else:
        await tell(notice)


async def hand_over_if_configured(
    service: Lorebot, client: AsyncWebClient, actor: Actor, message_id: int, reason: str, *, tell: Tell
) -> None:
    """An automatic hand-over (not found, 👎): nothing happens where the scope has no support channel."""
    try:
        await hand_over(service, client, actor, message_id, reason, tell=tell)
    except NoHandover:
        log.debug("no hand-over for message %d (%s): none configured", message_id, reason)


def _notice(handover: Handover, key: str) -> str:
    group = desk_render.mention_group(handover.target.support_group)
    return text(handover.language, key, group=group, channel=f"<#{handover.target.channel}>")


async def _save(deps: Deps, client: AsyncWebClient, body: dict[str, Any], tell: Tell) -> None:
    message = body.get("message") or {}
    thread, ts = message.get("thread_ts"), message.get("ts")
    if not thread or thread == ts:
        await tell(NOT_A_REPLY_TEXT)
        return
    user = body["user"]["id"]
    actor = await deps.admins.admin_aware_actor(user, body["user"].get("username", ""))

    async def supporter(group: str) -> bool:
        return await _in_group(client, user, group)

    result = await deps.service.desk.save_answer(
        actor, body["channel"]["id"], thread, message.get("text") or "", supporter=supporter
    )
    await tell(SAVED_TEXT.format(id=result.document.id, scope=result.document.scope))


async def _in_group(client: AsyncWebClient, user: str, group: str) -> bool:
    try:
        response = await client.usergroups_users_list(usergroup=group)
    except SlackApiError as e:
        log.warning("cannot list support group %s: %s", group, e.response.get("error"))
        return False
    return user in (response.get("users") or [])


async def kb_desk(deps: Deps, actor: Actor, rest: str, team: str, channel: str, scope: str) -> str:
    """``/kb desk …``: show or change this channel's mode and language and the scope's footer and hand-over."""
    verb, _, value = rest.strip().partition(" ")
    value = value.strip()
    desk = deps.service.desk
    platform = Platform.SLACK.value
    if verb == "mode" and value:
        await desk.set_policy(actor, platform, team, channel, mode=value)
    elif verb == "language" and value:
        await desk.set_policy(actor, platform, team, channel, language="" if value == "default" else value)
    elif verb == "footer" and value:
        await desk.set_footer(actor, scope, "" if value == "-" else value)
    elif verb == "handover" and value:
        target_channel, _, group = value.partition(" ")
        await desk.set_handover(actor, scope, _ref(CHANNEL_REF, target_channel), _ref(GROUP_REF, group.strip()))
    elif verb:
        return DESK_USAGE
    policy = await desk.policy(platform, team, channel)
    scope_desk = await desk.scope_desk(scope, platform)
    target = scope_desk.target
    handover = f"<#{target.channel}> ({desk_render.mention_group(target.support_group)})" if target else "none"
    return (
        f"This channel: mode `{policy.mode.value}`, language `{policy.language or 'en'}`.\n"
        f"Scope `{scope}`: footer “{render.escape(scope_desk.footer) or '—'}”, hand-over {handover}."
    )


def _ref(pattern: re.Pattern[str], value: str) -> str:
    """A Slack channel or user-group id from its escaped form (``<#C1|name>``) or the bare id; else the text,
    which the core stores only after its own checks."""
    match = pattern.match(value)
    return (match["id"] or match["bare"]) if match else value
