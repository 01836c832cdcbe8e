"""``/kb source …`` over the wire: Slack (Socket Mode against the fake Slack) and Discord (the real client against
the fake Discord): admin only, audited, local paths refused from chat, a summary message when a sync finishes."""

from __future__ import annotations

from bot.domain import Actor
from connectors.discord.client import LorebotClient
from connectors.slack.sources import SOURCE_USAGE
from tests.fixtures.discord import DiscordWorld
from tests.fixtures.slack import ADMIN, CHANNEL, USER, SlackBot

PAGE = (
    b"<html><head><title>Handbook</title></head><body><p>"
    + b"Vacation requests go to HR. " * 20
    + b"</p></body></html>"
)
EPHEMERAL = 1 << 6


async def kb(bot: SlackBot, text: str, user: str) -> str:
    command = bot.slack.slash_command("/kb", text, user=user, channel=CHANNEL)
    await bot.slack.wait_ack(await bot.slack.send("slash_commands", command))
    replies = await bot.slack.wait_for(lambda: bot.slack.responses_to(command["response_url"]), what=f"/kb {text}")
    return replies[0].body["text"]


async def test_slack_admin_adds_syncs_lists_and_removes_a_source_with_a_summary(slack_bot: SlackBot) -> None:
    url = slack_bot.slack.add_page("handbook.html", PAGE)
    added = await kb(slack_bot, f"source add web <{url}> 6h", ADMIN)
    assert added == (f"Added source #1: web {url} → `default`, 6h. Sync it now with `/kb source sync 1`."), added

    assert await kb(slack_bot, "source sync 1", ADMIN) == (
        "Sync of source #1 ok: 1 added, 0 updated, 0 unchanged, 0 removed, 0 failed."
    )
    assert await slack_bot.sql("SELECT title, added_by FROM documents") == [("Handbook", "source:1")]
    listing = await kb(slack_bot, "source list", ADMIN)
    assert listing.startswith(f"*1 sources*\n#1 web {url} → `default` · 6h · ok ") and "· 1 docs · next " in listing

    assert await kb(slack_bot, "source remove 1", ADMIN) == f"Removed source #1 (web {url}) and 1 document(s)."
    assert await slack_bot.sql("SELECT count(*) FROM documents") == [(0,)]


async def test_slack_source_commands_are_refused_to_members_and_local_paths_to_chat_admins(
    slack_bot: SlackBot,
) -> None:
    refused = await kb(slack_bot, "source add web https://docs.example.com/", USER)
    assert refused.startswith("Sorry, only knowledge-base admins can do that")
    assert (await kb(slack_bot, "source list", USER)).startswith("Sorry, only knowledge-base admins can do that")
    local = await kb(slack_bot, "source add folder /etc", ADMIN)
    assert "can only be added from the command line" in local
    assert await kb(slack_bot, "source frobnicate", ADMIN) == SOURCE_USAGE
    assert await kb(slack_bot, "source sync x", ADMIN) == SOURCE_USAGE
    audit = await slack_bot.sql("SELECT user_id, action, allowed FROM audit_log ORDER BY id")
    assert audit == [(USER, "add_source", False), (USER, "list_sources", False), (ADMIN, "add_source", True)]
    assert await slack_bot.sql("SELECT count(*) FROM sources") == [(0,)]


def source_options(subcommand: str, options: list[dict] | None = None) -> list[dict]:
    return [{"name": "source", "type": 2, "options": [{"name": subcommand, "type": 1, "options": options or []}]}]


async def test_discord_source_subcommands_for_admins_with_the_sync_summary(
    bot: LorebotClient, world: DiscordWorld
) -> None:
    fake = world.fake
    [kb_command] = [c for c in fake.commands[fake.guild_id] if c["name"] == "kb"]
    [group] = [o for o in kb_command["options"] if o["name"] == "source"]
    assert sorted(o["name"] for o in group["options"]) == ["add", "list", "remove", "sync"]

    add = source_options(
        "add",
        [{"name": "kind", "type": 3, "value": "web"}, {"name": "url", "type": 3, "value": "http://127.0.0.1:9/docs/"}],
    )
    interaction = await fake.slash("kb", add, user=fake.admin)
    reply = await fake.wait_for_call("POST", rf"/webhooks/\d+/{interaction['token']}", timeout=30)
    assert reply.body["flags"] & EPHEMERAL
    assert reply.body["content"].startswith("Added source `1`: web <http://127.0.0.1:9/docs/> → `default`, manual.")

    interaction = await fake.slash(
        "kb", source_options("sync", [{"name": "id", "type": 4, "value": 1}]), user=fake.admin
    )
    reply = await fake.wait_for_call("POST", rf"/webhooks/\d+/{interaction['token']}", timeout=30)
    summary = reply.body["content"]
    assert summary.startswith("Sync of source `1` failed: 0 added, 0 updated, 0 unchanged, 0 removed, 0 failed.")
    assert "loopback/private" in summary  # the SSRF guard refused the private start page

    interaction = await fake.slash("kb", source_options("list"), user=fake.admin)
    reply = await fake.wait_for_call("POST", rf"/webhooks/\d+/{interaction['token']}", timeout=30)
    assert reply.body["content"].startswith("`1` web <http://127.0.0.1:9/docs/> → `default` · manual · failed ")

    interaction = await fake.slash("kb", source_options("list"))  # a member
    refusal = await fake.wait_for_call("PATCH", rf"/webhooks/\d+/{interaction['token']}/messages/@original")
    assert refusal.body["content"].startswith("Sorry, only knowledge-base admins can do that")
    audit = await _sql(world, "SELECT action, allowed FROM audit_log ORDER BY id")
    assert audit[-1] == ("list_sources", False)

    interaction = await fake.slash(
        "kb", source_options("remove", [{"name": "id", "type": 4, "value": 1}]), user=fake.admin
    )
    reply = await fake.wait_for_call("POST", rf"/webhooks/\d+/{interaction['token']}", timeout=30)
    assert reply.body["content"] == "Removed source `1` (<http://127.0.0.1:9/docs/>) and 0 document(s)."
    assert await world.service.sources.list(Actor("local", "op", is_admin=True)) == []


async def _sql(world: DiscordWorld, query: str) -> list[tuple]:
    async with world.service.pool.connection() as conn:
        return await (await conn.execute(query)).fetchall()
