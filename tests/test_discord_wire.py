"""The Discord adapter over the wire: the real discord.py client against the fake Discord on 127.0.0.1, the real
service (Postgres, MiniLM embeddings) and the fake LLM over real HTTP."""

from __future__ import annotations

import asyncio
import itertools
import re
from datetime import timedelta
from typing import Any

from bot.answer.prompt import CONDENSE_PROMPT
from bot.domain import Actor
from bot.service import Lorebot
from connectors.discord.answering import EDIT_INTERVAL_S
from connectors.discord.client import LorebotClient
from connectors.discord.render import MAX_CONTENT_CHARS, THINKING_TEXT
from tests.fixtures.discord import (
    TOKEN,
    DiscordWorld,
    FakeDiscord,
    RestCall,
    running_bot,
)

SEEDER = Actor("discord", "seed", "Seeder", is_admin=True)
HOURS = (
    "The support desk is open Monday to Friday from 9am to 6pm and on Saturdays from 10am to 2pm. "
    "It is closed on Sundays."
)
ORIGINAL = r"/webhooks/\d+/{token}/messages/@original"
NO_PINGS = {"parse": []}


def answer_or_condense(reply: str, query: str = "support desk opening hours"):
    """A fake-LLM script: condensing requests get the standalone ``query``, answer requests get ``reply``."""

    def script(body: dict[str, Any]) -> str:
        return query if body["messages"][0]["content"] == CONDENSE_PROMPT else reply

    return script


async def seed_hours(service: Lorebot) -> int:
    result = await service.add_text(SEEDER, HOURS, title="Support hours", source_uri="https://wiki.example/hours")
    return result.document.id


async def final_edit(fake: FakeDiscord, token: str, timeout: float = 30.0) -> RestCall:
    """The edit of the interaction's original response that carries the feedback buttons (the final answer)."""
    return await fake.wait_for_call(
        "PATCH", ORIGINAL.format(token=token), lambda c: bool(c.body.get("components")), timeout=timeout
    )


def custom_ids(message: dict[str, Any]) -> list[str]:
    return [button["custom_id"] for row in message["components"] for button in row["components"]]


async def test_login_syncs_commands_to_the_dev_guild_and_identifies_without_privileged_intents(
    bot: LorebotClient, world: DiscordWorld
) -> None:
    sync = await world.fake.wait_for_call("PUT", rf"/applications/\d+/guilds/{world.fake.guild_id}/commands")

    assert {c["name"] for c in sync.body} == {"ask", "kb", "desk", "Save as answer"}
    kb = next(c for c in sync.body if c["name"] == "kb")
    assert {o["name"] for o in kb["options"]} == {"add", "list", "remove", "search", "scope", "source", "report"}
    assert int(kb["default_member_permissions"]) == 1 << 5  # Manage Server
    assert world.fake.identifies[-1]["token"] == TOKEN
    assert world.fake.identifies[-1]["intents"] & (1 << 15) == 0
    assert bot.get_guild(int(world.fake.guild_id)) is not None


async def test_ask_defers_streams_edits_and_finishes_with_sources_and_buttons(
    bot: LorebotClient, world: DiscordWorld
) -> None:
    await seed_hours(world.service)
    world.llm.reply("Support is open on Saturdays from 10am to 2pm [1].")

    interaction = await world.fake.slash("ask", [{"name": "question", "type": 3, "value": "Saturday hours?"}])
    token = interaction["token"]
    final = await final_edit(world.fake, token)

    defer = world.fake.find_calls("POST", rf"/interactions/{interaction['id']}/{token}/callback")[0]
    edits = world.fake.find_calls("PATCH", ORIGINAL.format(token=token))
    assert defer.body["type"] == 5
    assert final.body["content"] == "Support is open on Saturdays from 10am to 2pm [1]."
    assert final.body["allowed_mentions"] == NO_PINGS
    [embed] = final.body["embeds"]
    assert embed["title"] == "Sources" and "[Support hours](https://wiki.example/hours)" in embed["description"]
    message_id = custom_ids(final.body)[0].split(":")[2]
    assert custom_ids(final.body) == [f"lorebot:fb:{message_id}:up", f"lorebot:fb:{message_id}:down"]
    progress = edits[:-1]
    assert progress and progress[0].body["content"].endswith("▌")
    assert all(b.at - a.at >= EDIT_INTERVAL_S for a, b in itertools.pairwise(progress))
    dispatched = interaction["dispatched_at"]
    print(
        f"\ninteraction→defer {1000 * (defer.at - dispatched):.1f} ms, "
        f"interaction→first edit {1000 * (edits[0].at - dispatched):.1f} ms, "
        f"interaction→final {1000 * (final.at - dispatched):.1f} ms"
    )
    assert defer.at - dispatched < 3.0


async def test_long_answer_is_split_into_messages_within_discords_limit(
    bot: LorebotClient, world: DiscordWorld
) -> None:
    await seed_hours(world.service)
    sentence = "Saturday support runs from 10am to 2pm and covers every product we sell [1]. "
    long_answer = "\n\n".join((sentence * 6).strip() for _ in range(8))
    assert 3400 <= len(long_answer) <= 3800
    world.llm.reply(long_answer)

    interaction = await world.fake.slash("ask", [{"name": "question", "type": 3, "value": "Saturday support?"}])
    token = interaction["token"]
    followup = await world.fake.wait_for_call("POST", rf"/webhooks/\d+/{token}", lambda c: "wait" in c.query)
    first = world.fake.find_calls("PATCH", ORIGINAL.format(token=token))[-1]

    parts = [first.body["content"], followup.body["content"]]
    assert all(len(part) <= MAX_CONTENT_CHARS for part in parts)
    assert "\n\n".join(parts) == long_answer
    assert "embeds" in followup.body and custom_ids(followup.body)
    assert not first.body.get("components")


async def test_admin_adds_an_attachment_and_gets_document_id_and_chunk_count(
    bot: LorebotClient, world: DiscordWorld
) -> None:
    file = world.fake.add_attachment(
        "hours.md", f"# Support hours\n\n{HOURS}\n".encode(), "text/markdown; charset=utf-8"
    )

    interaction = await world.fake.slash(
        "kb",
        [{"name": "file", "type": 11, "value": file["id"]}],
        subcommand="add",
        user=world.fake.admin,
        attachments=[file],
    )
    reply = await world.fake.wait_for_call("POST", rf"/webhooks/\d+/{interaction['token']}")

    [document] = await world.service.list_documents(SEEDER, ("default",))
    assert reply.body["content"] == (
        f"Added document `{document.id}` “Support hours” — {document.chunk_count} chunks in `default`."
    )
    assert reply.body["flags"] & (1 << 6)  # ephemeral


async def test_non_admin_cannot_add_and_the_file_is_never_downloaded(bot: LorebotClient, world: DiscordWorld) -> None:
    file = world.fake.add_attachment("hours.txt", HOURS.encode(), "text/plain")

    interaction = await world.fake.slash(
        "kb", [{"name": "file", "type": 11, "value": file["id"]}], subcommand="add", attachments=[file]
    )
    refusal = await world.fake.wait_for_call("POST", rf"/interactions/\d+/{interaction['token']}/callback")

    assert refusal.body["type"] == 4
    assert re.fullmatch(
        r"Sorry, only knowledge-base admins can do that \([0-9a-f]{8}\)\.", refusal.body["data"]["content"]
    )
    assert refusal.body["data"]["flags"] & (1 << 6)
    assert await world.service.list_documents(SEEDER, ("default",)) == []


async def test_oversize_and_binary_attachments_are_refused_before_download(
    bot: LorebotClient, world: DiscordWorld
) -> None:
    huge = world.fake.add_attachment("big.txt", b"x", "text/plain", size=world.settings.max_attachment_bytes + 1)
    image = world.fake.add_attachment("photo.png", b"\x89PNG....", "image/png")

    replies = []
    for file in (huge, image):
        interaction = await world.fake.slash(
            "kb",
            [{"name": "file", "type": 11, "value": file["id"]}],
            subcommand="add",
            user=world.fake.admin,
            attachments=[file],
        )
        replies.append(await world.fake.wait_for_call("POST", rf"/interactions/\d+/{interaction['token']}/callback"))

    assert "big.txt is 10.0 MiB; the limit is 10.0 MiB" in replies[0].body["data"]["content"]
    assert "photo.png (image/png) is not supported" in replies[1].body["data"]["content"]
    assert "error " in replies[1].body["data"]["content"]
    assert await world.service.list_documents(SEEDER, ("default",)) == []


async def test_mention_opens_a_thread_and_a_follow_up_there_sends_history_to_the_llm(
    world: DiscordWorld,
) -> None:
    await seed_hours(world.service)
    world.llm.script(answer_or_condense("Saturdays from 10am to 2pm [1]."))
    async with running_bot(world, reply_in_thread=True):
        question = await world.fake.post_as_user("When is support open on Saturday?", mention_bot=True)
        thread = await world.fake.wait_for(lambda: world.fake.threads.get(question["id"]))
        await world.fake.wait_for_call(
            "PATCH", rf"/channels/{thread['id']}/messages/\d+", lambda c: bool(c.body.get("components")), timeout=30
        )

        world.llm.script(answer_or_condense("Sundays are closed [1]."))
        await world.fake.post_as_user("And on Sunday?", channel_id=thread["id"], mention_bot=True)
        await world.fake.wait_for(
            lambda: any(m["content"] == "Sundays are closed [1]." for m in world.fake.messages.values()), timeout=30
        )

    contents = [m["content"] for m in world.llm.chat_requests[-1]["messages"]]
    assert "When is support open on Saturday?" in contents
    assert "Saturdays from 10am to 2pm [1]." in contents


async def test_reply_to_the_bots_answer_continues_the_reply_chain_conversation(
    bot: LorebotClient, world: DiscordWorld
) -> None:
    await seed_hours(world.service)
    world.llm.script(answer_or_condense("Saturdays from 10am to 2pm [1]."))
    question = await world.fake.post_as_user("When is support open on Saturday?", mention_bot=True)
    answer = await world.fake.wait_for(
        lambda: next((m for m in world.fake.messages.values() if m.get("components")), None), timeout=30
    )
    assert answer["message_reference"]["message_id"] == question["id"]
    assert answer["allowed_mentions"] == NO_PINGS

    world.llm.script(answer_or_condense("Sundays are closed [1]."))
    await world.fake.post_as_user("And on Sunday?", reply_to=answer)
    await world.fake.wait_for(
        lambda: any(m["content"] == "Sundays are closed [1]." for m in world.fake.messages.values()), timeout=30
    )

    contents = [m["content"] for m in world.llm.chat_requests[-1]["messages"]]
    assert "When is support open on Saturday?" in contents


async def test_thumbs_up_after_a_restart_is_recorded(world: DiscordWorld) -> None:
    await seed_hours(world.service)
    world.llm.reply("Saturdays from 10am to 2pm [1].")
    async with running_bot(world):
        interaction = await world.fake.slash("ask", [{"name": "question", "type": 3, "value": "Saturday hours?"}])
        await final_edit(world.fake, interaction["token"])
    answer = interaction["original"]
    up = custom_ids(answer)[0]

    async with running_bot(world):
        click = await world.fake.click(answer, up)
        thanks = await world.fake.wait_for_call("POST", rf"/interactions/\d+/{click['token']}/callback")

    assert thanks.body["data"]["content"] == "Thanks for the feedback 👍"
    async with world.service.pool.connection() as conn:
        cursor = await conn.execute("SELECT message_id, score, platform, user_id FROM feedback")
        rows = await cursor.fetchall()
    assert rows == [(int(up.split(":")[2]), 1, "discord", world.fake.member.id)]


async def test_llm_outage_shows_an_error_with_an_error_id(bot: LorebotClient, world: DiscordWorld) -> None:
    await seed_hours(world.service)
    world.llm.fail_with(503)

    interaction = await world.fake.slash("ask", [{"name": "question", "type": 3, "value": "Saturday hours?"}])
    error = await world.fake.wait_for_call(
        "PATCH",
        ORIGINAL.format(token=interaction["token"]),
        lambda c: "Sorry" in (c.body.get("content") or ""),
        timeout=30,
    )

    assert re.fullmatch(
        r"Sorry, I can't answer right now: language model unavailable \(error [0-9a-f]{8}\)\.", error.body["content"]
    )


async def test_answer_after_the_interaction_window_is_posted_in_the_channel_with_a_note(
    bot: LorebotClient, world: DiscordWorld
) -> None:
    await seed_hours(world.service)
    world.llm.reply("Saturdays from 10am to 2pm [1].")

    interaction = await world.fake.slash(
        "ask", [{"name": "question", "type": 3, "value": "Saturday hours?"}], age=timedelta(minutes=14, seconds=45)
    )
    posted = await world.fake.wait_for_call(
        "POST", rf"/channels/{world.fake.channel_id}/messages", lambda c: bool(c.body.get("components")), timeout=30
    )

    assert posted.body["content"] == (
        "*Answer to Max's question (it took too long to reply in place):*\n\nSaturdays from 10am to 2pm [1]."
    )
    assert posted.body["allowed_mentions"] == NO_PINGS
    assert world.fake.find_calls("PATCH", ORIGINAL.format(token=interaction["token"])) == []


async def test_a_guild_never_gets_answers_from_another_scope(world: DiscordWorld) -> None:
    await world.service.add_text(SEEDER, HOURS, title="Support hours", scope="other-guild")
    scope_map = {f"discord:{world.fake.guild_id}": ["this-guild"]}
    scoped = await Lorebot.start(
        world.service.settings.model_copy(update={"scope_map": scope_map}), embedder=world.embedder
    )
    try:
        async with running_bot(world, scoped):
            interaction = await world.fake.slash("ask", [{"name": "question", "type": 3, "value": "Saturday hours?"}])
            final = await final_edit(world.fake, interaction["token"])
    finally:
        await scoped.close()

    assert "embeds" not in final.body or final.body["embeds"] == []
    assert world.llm.chat_requests == []


async def test_rate_limited_user_gets_a_friendly_message(world: DiscordWorld) -> None:
    strict = await Lorebot.start(
        world.service.settings.model_copy(update={"rate_limit_per_minute": 1}), embedder=world.embedder
    )
    await seed_hours(strict)
    async with running_bot(world, strict):
        first = await world.fake.slash("ask", [{"name": "question", "type": 3, "value": "Saturday hours?"}])
        await final_edit(world.fake, first["token"])
        second = await world.fake.slash("ask", [{"name": "question", "type": 3, "value": "Sunday hours?"}])
        refusal = await world.fake.wait_for_call("PATCH", ORIGINAL.format(token=second["token"]))

    await strict.close()
    assert re.fullmatch(r"You're asking quickly: please try again in \d+ s\.", refusal.body["content"])


async def test_shutdown_lets_an_answer_in_flight_finish_and_refuses_new_questions(
    bot: LorebotClient, world: DiscordWorld
) -> None:
    await seed_hours(world.service)
    world.llm.reply("Saturdays from 10am to 2pm [1].")
    world.llm.delay = 2.0
    first = await world.fake.slash("ask", [{"name": "question", "type": 3, "value": "Saturday hours?"}])
    await world.fake.wait_for(lambda: bot.inflight.count == 1)

    drained = asyncio.ensure_future(bot.inflight.drain(timeout=30))
    second = await world.fake.slash("ask", [{"name": "question", "type": 3, "value": "Sunday hours?"}])

    refusal = await world.fake.wait_for_call(
        "PATCH", ORIGINAL.format(token=second["token"]), lambda c: "restarting" in (c.body.get("content") or "")
    )
    final = await final_edit(world.fake, first["token"])
    assert await drained is True
    assert final.body["content"] == "Saturdays from 10am to 2pm [1]."
    assert refusal.body["content"] == "I'm restarting: please ask again in a moment."


async def test_a_mention_delivered_twice_opens_one_thread_and_is_answered_once(world: DiscordWorld) -> None:
    """A second gateway delivery (a resumed session, a second replica) is dropped by the core before any post."""
    await seed_hours(world.service)
    world.llm.reply("Saturdays from 10am to 2pm [1].")
    async with running_bot(world, reply_in_thread=True):
        question = await world.fake.post_as_user("When is support open on Saturday?", mention_bot=True)
        await world.fake.dispatch("MESSAGE_CREATE", world.fake.gateway_events[-1][1])
        thread = await world.fake.wait_for(lambda: world.fake.threads.get(question["id"]))
        await world.fake.wait_for_call(
            "PATCH", rf"/channels/{thread['id']}/messages/\d+", lambda c: bool(c.body.get("components")), timeout=30
        )

    assert len(world.fake.find_calls("POST", rf"/channels/\d+/messages/{question['id']}/threads")) == 1
    assert len(world.fake.find_calls("POST", rf"/channels/{thread['id']}/messages")) == 1  # one placeholder
    assert len(world.llm.chat_requests) == 1


async def test_mention_with_a_slow_first_token_shows_a_placeholder_within_a_second(
    bot: LorebotClient, world: DiscordWorld
) -> None:
    await seed_hours(world.service)
    world.llm.delay = 2.0
    world.llm.reply("Saturdays from 10am to 2pm [1].")
    channel = rf"/channels/{world.fake.channel_id}/messages"

    question = await world.fake.post_as_user("When is support open on Saturday?", mention_bot=True)
    asked = world.fake.gateway_events[-1][2]
    placeholder = await world.fake.wait_for_call("POST", channel, timeout=5)
    answer = await world.fake.wait_for_call(
        "PATCH", rf"{channel}/\d+", lambda c: bool(c.body.get("components")), timeout=30
    )

    assert placeholder.at - asked < 1.0
    assert placeholder.body["content"] == THINKING_TEXT
    assert str(placeholder.body["message_reference"]["message_id"]) == question["id"]
    assert answer.body["content"] == "Saturdays from 10am to 2pm [1]."
    assert world.fake.find_calls("POST", channel) == [placeholder]  # the placeholder became the answer
