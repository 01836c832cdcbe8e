"""``/kb`` over the Discord wire (list, search, scope, remove, add by URL or text) and direct messages."""

from __future__ import annotations

import re

from bot.domain import Actor
from bot.service import Lorebot
from connectors.discord.client import LorebotClient
from connectors.discord.render import THINKING_TEXT
from tests.fixtures.discord import DiscordWorld, FakeDiscord, RestCall, running_bot
from tests.fixtures.http import LocalHTTPServer

SEEDER = Actor("discord", "seed", "Seeder", is_admin=True)
HOURS = "The support desk is open Monday to Friday from 9am to 6pm and on Saturdays from 10am to 2pm."
PARKING = "Employees park in garage B; visitors park on level 1 of garage A."
EPHEMERAL = 1 << 6


async def seed(service: Lorebot, text: str, title: str) -> int:
    result = await service.add_text(SEEDER, text, title=title, source_uri=f"https://wiki.example/{title.lower()}")
    return result.document.id


async def followup(fake: FakeDiscord, interaction: dict) -> RestCall:
    """The reply sent after the command deferred (its ephemeral followup)."""
    return await fake.wait_for_call("POST", rf"/webhooks/\d+/{interaction['token']}", timeout=30)


async def immediate(fake: FakeDiscord, interaction: dict) -> RestCall:
    """The interaction's first response, when it is a message rather than a deferral."""
    return await fake.wait_for_call(
        "POST", rf"/interactions/\d+/{interaction['token']}/callback", lambda c: c.body["type"] == 4
    )


async def test_kb_list_shows_the_documents_of_the_channels_scope(bot: LorebotClient, world: DiscordWorld) -> None:
    hours = await seed(world.service, HOURS, "Hours")
    parking = await seed(world.service, PARKING, "Parking")

    interaction = await world.fake.slash("kb", subcommand="list")
    reply = await followup(world.fake, interaction)

    assert reply.body["flags"] & EPHEMERAL
    [embed] = reply.body["embeds"]
    assert embed["title"] == "Documents in default"
    assert embed["description"].splitlines() == [
        f"`{parking}` [Parking](https://wiki.example/parking) · 1 chunks · default",
        f"`{hours}` [Hours](https://wiki.example/hours) · 1 chunks · default",
    ]


async def test_kb_search_shows_the_passages_without_asking_the_llm(bot: LorebotClient, world: DiscordWorld) -> None:
    parking = await seed(world.service, PARKING, "Parking")
    await seed(world.service, HOURS, "Hours")

    interaction = await world.fake.slash(
        "kb", [{"name": "query", "type": 3, "value": "where do employees park"}], subcommand="search"
    )
    reply = await followup(world.fake, interaction)

    [embed] = reply.body["embeds"]
    assert embed["title"] == "Search: where do employees park"
    first = embed["description"].splitlines()[0]
    assert first.startswith(f"**1.** [Parking](https://wiki.example/parking) (doc `{parking}`, score ")
    assert world.llm.chat_requests == []


async def test_kb_scope_answers_at_once_with_the_scope_that_add_stores_into(
    bot: LorebotClient, world: DiscordWorld
) -> None:
    interaction = await world.fake.slash("kb", subcommand="scope")
    reply = await immediate(world.fake, interaction)

    assert reply.body["data"]["content"] == "This channel answers from: `default`. `/kb add` stores into `default`."
    assert reply.body["data"]["flags"] & EPHEMERAL


async def test_admin_removes_a_document_and_a_member_is_refused(bot: LorebotClient, world: DiscordWorld) -> None:
    hours = await seed(world.service, HOURS, "Hours")
    remove = [{"name": "id", "type": 4, "value": hours}]

    refused = await world.fake.slash("kb", remove, subcommand="remove")
    refusal = await world.fake.wait_for_call("PATCH", rf"/webhooks/\d+/{refused['token']}/messages/@original")
    assert re.fullmatch(r"Sorry, only knowledge-base admins can do that \([0-9a-f]{8}\)\.", refusal.body["content"])
    assert [d.id for d in await world.service.list_documents(SEEDER, ("default",))] == [hours]

    removed = await world.fake.slash("kb", remove, subcommand="remove", user=world.fake.admin)
    reply = await followup(world.fake, removed)
    assert reply.body["content"] == f"Removed document `{hours}` “Hours” (1 chunks)."
    assert await world.service.list_documents(SEEDER, ("default",)) == []
    async with world.service.pool.connection() as conn:
        cursor = await conn.execute("SELECT user_id, action, allowed FROM audit_log ORDER BY id")
        audited = await cursor.fetchall()
    assert audited[-2:] == [
        (world.fake.member.id, "remove_document", False),
        (world.fake.admin.id, "remove_document", True),
    ]


async def test_admin_adds_pasted_text_with_a_title(bot: LorebotClient, world: DiscordWorld) -> None:
    options = [{"name": "text", "type": 3, "value": PARKING}, {"name": "title", "type": 3, "value": "Parking"}]

    interaction = await world.fake.slash("kb", options, subcommand="add", user=world.fake.admin)
    reply = await followup(world.fake, interaction)

    [document] = await world.service.list_documents(SEEDER, ("default",))
    assert reply.body["content"] == f"Added document `{document.id}` “Parking” — 1 chunks in `default`."
    assert (document.title, document.added_by) == ("Parking", f"discord:{world.fake.admin.id}")


async def test_admin_adds_a_web_page_by_url(world: DiscordWorld, http_server: LocalHTTPServer) -> None:
    page = b"<html><head><title>Parking rules</title></head><body><p>" + PARKING.encode() + b"</p></body></html>"
    url = http_server.serve("/parking.html", page, content_type="text/html; charset=utf-8")
    settings = world.service.settings.model_copy(update={"fetch_allowed_hosts": [http_server.host]})
    service = await Lorebot.start(settings, embedder=world.embedder)
    try:
        async with running_bot(world, service):
            interaction = await world.fake.slash(
                "kb", [{"name": "url", "type": 3, "value": url}], subcommand="add", user=world.fake.admin
            )
            reply = await followup(world.fake, interaction)
        [document] = await service.list_documents(SEEDER, ("default",))
    finally:
        await service.close()

    assert reply.body["content"] == f"Added document `{document.id}` “Parking rules” — 1 chunks in `default`."
    assert document.source_uri == url
    assert http_server.requests == ["/parking.html"]


async def test_a_direct_message_is_answered_in_the_dm_with_sources(bot: LorebotClient, world: DiscordWorld) -> None:
    await seed(world.service, PARKING, "Parking")
    world.llm.reply("Employees park in garage B [1].")

    question = await world.fake.post_dm("Where do employees park?")

    dm = world.fake.dm_channel_id
    final = await world.fake.wait_for_call(
        "PATCH", rf"/channels/{dm}/messages/\d+", lambda c: bool(c.body.get("components")), timeout=30
    )
    [placeholder] = world.fake.find_calls("POST", rf"/channels/{dm}/messages")
    assert placeholder.body["content"] == THINKING_TEXT
    assert str(placeholder.body["message_reference"]["message_id"]) == question["id"]
    assert final.body["content"] == "Employees park in garage B [1]."
    assert "[Parking](https://wiki.example/parking)" in final.body["embeds"][0]["description"]
    async with world.service.pool.connection() as conn:
        cursor = await conn.execute("SELECT platform, workspace, channel, thread FROM conversations")
        assert await cursor.fetchall() == [("discord", "@me", dm, "")]
