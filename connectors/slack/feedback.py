"""Buttons under an answer: 👍/👎 recorded through the core (👎 opens an optional comment dialog) and
"Share to channel" for private ``/ask`` answers.
"""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.respond.async_respond import AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

from bot.domain import Actor, Score
from bot.errors import NotFound
from connectors.slack import render
from connectors.slack.deps import Deps
from connectors.slack.desk import hand_over_if_configured
from connectors.slack.tasks import post_in, respond_privately

log = logging.getLogger(__name__)

THANKS_TEXT = "Thanks for the feedback!"
SHARE_EXPIRED_TEXT = "This answer is no longer available to share; please ask again with a mention in the channel."


def register(app: AsyncApp, deps: Deps) -> None:
    @app.action(render.FEEDBACK_UP_ACTION)
    async def helpful(ack: AsyncAck, body: dict[str, Any], action: dict[str, Any], respond: AsyncRespond) -> None:
        await ack()
        deps.tasks.spawn(
            _record(deps, body, action, respond, score=1),
            name="feedback +1",
            tell=respond_privately(respond, replace_original=False),
        )

    @app.action(render.FEEDBACK_DOWN_ACTION)
    async def not_helpful(
        ack: AsyncAck, body: dict[str, Any], action: dict[str, Any], respond: AsyncRespond, client: AsyncWebClient
    ) -> None:
        await ack()
        # the trigger id expires 3 s after the click: open the dialog before anything slow
        await client.views_open(trigger_id=body["trigger_id"], view=render.feedback_modal(int(action["value"])))
        deps.tasks.spawn(
            _record(deps, body, action, respond, score=-1, client=client),
            name="feedback -1",
            tell=respond_privately(respond, replace_original=False),
        )

    @app.view_submission(render.FEEDBACK_MODAL_CALLBACK)
    async def comment(ack: AsyncAck, body: dict[str, Any], view: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        # the dialog is closed by now: a failure is told in the bot's DM with the user
        deps.tasks.spawn(
            _record_comment(deps, body, view), name="feedback comment", tell=post_in(client, body["user"]["id"])
        )

    @app.action(render.SHARE_ACTION)
    async def share(ack: AsyncAck, body: dict[str, Any], action: dict[str, Any], respond: AsyncRespond) -> None:
        await ack()
        deps.tasks.spawn(
            _share(deps, body, action, respond),
            name="share answer",
            tell=respond_privately(respond, replace_original=False),
        )


async def _share(deps: Deps, body: dict[str, Any], action: dict[str, Any], respond: AsyncRespond) -> None:
    """Post the private answer in the channel, read back from the core (any replica, also after a restart)."""
    user = body["user"]
    try:
        answer = await deps.service.answer(int(action["value"]), _actor(deps, user))
    except NotFound:
        await respond(text=SHARE_EXPIRED_TEXT, response_type="ephemeral", replace_original=False)
        return
    blocks = [*render.answer_blocks(answer), render.shared_by_block(user["id"])]
    await respond(
        text=render.fallback_text(answer.text), blocks=blocks, response_type="in_channel", delete_original=True
    )


def _actor(deps: Deps, user: dict[str, Any]) -> Actor:
    return deps.admins.actor(user["id"], user.get("username") or user.get("name", ""))


async def _record(
    deps: Deps,
    body: dict[str, Any],
    action: dict[str, Any],
    respond: AsyncRespond,
    score: Score,
    client: AsyncWebClient | None = None,
) -> None:
    """Record the vote; a 👎 (``client`` given) also hands the question to the scope's people, if it has any."""
    actor = _actor(deps, body["user"])
    await deps.service.record_feedback(actor, int(action["value"]), score)
    await respond(text=THANKS_TEXT, response_type="ephemeral", replace_original=False)
    if client is not None:
        tell = respond_privately(respond, replace_original=False)
        await hand_over_if_configured(deps.service, client, actor, int(action["value"]), "thumbs_down", tell=tell)


async def _record_comment(deps: Deps, body: dict[str, Any], view: dict[str, Any]) -> None:
    comment = (
        view["state"]["values"]
        .get(render.FEEDBACK_COMMENT_BLOCK, {})
        .get(render.FEEDBACK_COMMENT_INPUT, {})
        .get("value")
        or ""
    )
    actor = deps.admins.actor(body["user"]["id"])
    await deps.service.record_feedback(actor, int(view["private_metadata"]), -1, comment)
