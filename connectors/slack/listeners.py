"""Events: @mentions, DMs and thread follow-ups become questions; files shared with the bot become documents."""

from __future__ import annotations

import logging
import re
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.async_context import AsyncBoltContext
from slack_sdk.web.async_client import AsyncWebClient

from bot.domain import ConversationKey, Place, Platform, Question
from bot.failures import describe_failure
from connectors.slack import desk, render
from connectors.slack.answering import answer_in_thread
from connectors.slack.deps import Deps
from connectors.slack.files import fetch_file
from connectors.slack.tasks import post_in

log = logging.getLogger(__name__)

MENTION = re.compile(r"<@[UW][A-Z0-9]+(?:\|[^>]*)?>")


def register(app: AsyncApp, deps: Deps) -> None:
    @app.event("app_mention")
    async def on_mention(
        event: dict[str, Any], body: dict[str, Any], context: AsyncBoltContext, client: AsyncWebClient
    ) -> None:
        thread = event.get("thread_ts") or event["ts"]
        place = _place(body, context.team_id or "", event["channel"])
        deps.tasks.spawn(
            _if_wanted(deps, client, event, place, thread, context.bot_user_id),
            name=f"mention {event['ts']}",
            tell=post_in(client, event["channel"], thread),
        )

    @app.event("message")
    async def on_message(
        event: dict[str, Any], body: dict[str, Any], context: AsyncBoltContext, client: AsyncWebClient
    ) -> None:
        place = _place(body, context.team_id or "", event.get("channel", ""))
        if event.get("channel_type") == "im":
            thread = event.get("thread_ts") or ""
            deps.tasks.spawn(
                _handle(deps, client, event, place, thread),
                name=f"dm {event.get('ts')}",
                tell=post_in(client, event["channel"], thread or None),
            )
        elif _is_follow_up(event, context.bot_user_id):
            deps.tasks.spawn(
                _follow_up(deps, client, event, place),
                name=f"follow-up {event.get('ts')}",
                tell=post_in(client, event["channel"], event["thread_ts"]),
            )
        elif not event.get("thread_ts") and f"<@{context.bot_user_id}>" not in (event.get("text") or ""):
            deps.tasks.spawn(
                _if_wanted(deps, client, event, place, event["ts"], context.bot_user_id),
                name=f"channel message {event.get('ts')}",
                tell=post_in(client, event["channel"], event["ts"]),
            )


def _place(body: dict[str, Any], team: str, channel: str) -> Place:
    """Where an event happened; its Events API id lets the core answer a re-delivered event once."""
    return Place(Platform.SLACK.value, team, channel, event_id=body.get("event_id") or "")


def _is_follow_up(event: dict[str, Any], bot_user_id: str | None) -> bool:
    """A reply inside a thread that does not mention the bot (mentions arrive as ``app_mention`` too)."""
    in_thread = bool(event.get("thread_ts")) and event.get("thread_ts") != event.get("ts")
    return in_thread and f"<@{bot_user_id}>" not in (event.get("text") or "")


async def _follow_up(deps: Deps, client: AsyncWebClient, event: dict[str, Any], place: Place) -> None:
    key = ConversationKey(Platform.SLACK.value, place.workspace, place.channel, event["thread_ts"])
    if await deps.service.knows_conversation(key):
        await _handle(deps, client, event, place, event["thread_ts"])


async def _if_wanted(
    deps: Deps, client: AsyncWebClient, event: dict[str, Any], place: Place, thread: str, bot_user_id: str | None
) -> None:
    """Answer a mention or a top-level channel message if the channel's desk mode wants it answered."""
    if await desk.channel_wants_answer(deps, event, place.workspace, bot_user_id):
        await _handle(deps, client, event, place, thread)


async def _handle(deps: Deps, client: AsyncWebClient, event: dict[str, Any], place: Place, thread: str) -> None:
    """Ingest the files in ``event`` or answer its text, replying in ``thread`` ("" = the DM itself)."""
    channel, user = place.channel, event.get("user", "")
    reply_in = thread or None
    if event.get("files"):
        await _ingest_files(deps, client, event["files"], user=user, place=place, thread=reply_in)
        return
    question = Question(
        text=MENTION.sub("", event.get("text") or "").strip(),
        actor=deps.admins.actor(user),
        conversation=ConversationKey(Platform.SLACK.value, place.workspace, channel, thread),
        place=place,
    )
    log.info("question from %s in %s (thread %s)", user, channel, thread or "-")
    await answer_in_thread(deps.service, client, question, channel=channel, thread_ts=reply_in)


async def _ingest_files(
    deps: Deps,
    client: AsyncWebClient,
    files: list[dict[str, Any]],
    *,
    user: str,
    place: Place,
    thread: str | None,
) -> None:
    if not await deps.service.first_delivery(place):
        return
    team, channel = place.workspace, place.channel
    actor = await deps.admins.admin_aware_actor(user)
    targets = " ".join(f"slack-file:{team}:{shared['id']}" for shared in files)
    await deps.service.require_admin(actor, "add_file", target=targets)  # before Slack hands us any byte
    scope = deps.service.scopes_at(place)[0]
    for shared in files:
        try:
            fetched = await fetch_file(client, deps.settings, deps.slack.api_url, shared["id"])
            result = await deps.service.add_file(
                actor,
                fetched.data,
                fetched.name,
                scope=scope,
                source_uri=fetched.permalink or f"slack-file:{team}:{fetched.file_id}",
                declared_mime=fetched.mimetype or None,
            )
            reply = render.ingest_text(result)
        except Exception as e:  # shown to the uploader; describe_failure logs the details
            reply = describe_failure(e).user_message
        await client.chat_postMessage(channel=channel, thread_ts=thread, text=reply)
