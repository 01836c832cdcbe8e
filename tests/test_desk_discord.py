"""The support desk on Discord over the wire (real discord.py against the fake Discord): ``/kb report`` embeds
within Discord's limits, question text for admins only; the embeds' limits on a hostile report; channel modes,
``/desk handover`` with channel and role options, hand-over and "Save as answer" cited by the next asker."""

from __future__ import annotations

from datetime import UTC, datetime

import discord

from bot.desk.policy import HandoverTarget
from bot.desk.report import CitedDocument, Report, Topic
from bot.domain import Actor, Question
from connectors.discord.client import LorebotClient
from connectors.discord.desk_render import MAX_EMBEDS, MAX_FIELD_VALUE_CHARS, MAX_TOTAL_CHARS, report_embeds
from connectors.discord.render import MAX_EMBED_DESCRIPTION_CHARS, MAX_EMBED_TITLE_CHARS
from tests.fixtures.discord import DiscordWorld, RestCall, running_bot

SEEDER = Actor("discord", "seed", "Seeder", is_admin=True)
EPHEMERAL = 1 << 6


def _embed_chars(embed: dict) -> int:
    fields = embed.get("fields", [])
    return (
        len(embed.get("title", ""))
        + len(embed.get("description", ""))
        + sum(len(f["name"]) + len(f["value"]) for f in fields)
        + len(embed.get("footer", {}).get("text", ""))
    )


def assert_within_discord_limits(embeds: list[dict]) -> None:
    assert 1 <= len(embeds) <= MAX_EMBEDS
    assert sum(_embed_chars(e) for e in embeds) <= MAX_TOTAL_CHARS
    for embed in embeds:
        assert len(embed.get("title", "")) <= MAX_EMBED_TITLE_CHARS
        assert len(embed.get("description", "")) <= MAX_EMBED_DESCRIPTION_CHARS
        assert len(embed.get("fields", [])) <= 25
        assert all(len(f["value"]) <= MAX_FIELD_VALUE_CHARS and len(f["name"]) <= 256 for f in embed.get("fields", []))


async def _report(world: DiscordWorld, user) -> RestCall:
    interaction = await world.fake.slash("kb", subcommand="report", user=user)
    return await world.fake.wait_for_call("POST", rf"/webhooks/\d+/{interaction['token']}", timeout=30)


async def test_kb_report_shows_admins_the_figures_and_questions_in_embeds(
    bot: LorebotClient, world: DiscordWorld
) -> None:
    await world.service.add_text(SEEDER, "Parking. Staff park in garage B on level 3.", title="Parking")
    asker = Actor("discord", world.fake.member.id)
    await world.service.ask(Question("Can I bring my dog? my mail is max@example.com", asker, ("default",)))
    world.llm.reply("Garage B [1].")
    await world.service.ask(Question("Where do staff park?", asker, ("default",)))

    reply = await _report(world, world.fake.admin)
    assert reply.body["flags"] & EPHEMERAL
    embeds = reply.body["embeds"]
    assert_within_discord_limits(embeds)
    figures = {f["name"]: f["value"] for f in embeds[0]["fields"]}
    assert (figures["Asked"], figures["Answered"], figures["Not found"]) == ("2", "1", "1")
    assert "Can I bring my dog? my mail is [email]" in embeds[1]["description"]
    assert "max@example.com" not in str(embeds)
    assert "Parking (default): 1" in embeds[2]["fields"][0]["value"]
    assert embeds[-1]["description"] == "default: 1 documents, 1 chunks"

    member_view = (await _report(world, world.fake.member)).body["embeds"]
    assert "dog" not in str(member_view)
    assert {f["name"]: f["value"] for f in member_view[0]["fields"]}["Asked"] == "2"


async def test_kb_report_refuses_an_unreadable_time_span(bot: LorebotClient, world: DiscordWorld) -> None:
    interaction = await world.fake.slash(
        "kb", [{"name": "since", "type": 3, "value": "forever"}], subcommand="report", user=world.fake.admin
    )
    reply = await world.fake.wait_for_call(
        "POST", rf"/interactions/\d+/{interaction['token']}/callback", lambda c: c.body["type"] == 4
    )
    assert "cannot read the time span" in reply.body["data"]["content"]


def test_a_huge_hostile_report_still_fits_discords_limits() -> None:
    long = "@everyone " + "x" * 5000
    report = Report(
        since=datetime(2026, 1, 1, tzinfo=UTC),
        scope="s" * 300,
        asked=10**9,
        answered=1,
        not_found=10**9 - 1,
        thumbs_up=0,
        thumbs_down=5,
        escalations=3,
        median_latency_ms=12.5,
        topics=tuple(Topic(100, 50, 50, (long, long, long)) for _ in range(10)),
        cited_most=tuple(CitedDocument(i, long, "default", 9) for i in range(10)),
        never_cited=tuple(CitedDocument(i, long, "default") for i in range(10)),
        never_cited_total=10_000,
        shows_questions=True,
    )
    status = [{"scope": "s" * 64, "documents": 10**6, "chunks": 10**7, "sources": 3, "last_sync": None}] * 500
    embeds = [e.to_dict() for e in report_embeds(report, status)]
    assert_within_discord_limits(embeds)
    assert "@everyone" not in str(embeds).replace("@\u200beveryone", "")


# --- questions channels, hand-over and "Save as answer" -----------------------------------------------------

HOURS = "Clinic hours. The clinic is open Monday to Friday from 8am to 6pm and closed at weekends."


def _answers(world: DiscordWorld) -> list[dict]:
    return [m for m in world.fake.messages.values() if m.get("components") and m["author"]["id"] == world.fake.bot.id]


def _answers_in(world: DiscordWorld, channel: str) -> list[dict]:
    return [m for m in _answers(world) if m["channel_id"] == channel]


def _posts_in(world: DiscordWorld, channel: str) -> list[dict]:
    return [
        m for m in world.fake.messages.values() if m["channel_id"] == channel and m["author"]["id"] == world.fake.bot.id
    ]


async def test_desk_mode_is_set_by_a_server_admin_over_the_wire(bot: LorebotClient, world: DiscordWorld) -> None:
    options = [{"name": "mode", "type": 3, "value": "questions"}]
    refused = await world.fake.slash("desk", options, subcommand="mode")
    reply = await world.fake.wait_for_call("POST", rf"/interactions/\d+/{refused['token']}/callback")
    assert "only knowledge-base admins" in reply.body["data"]["content"]
    allowed = await world.fake.slash("desk", options, subcommand="mode", user=world.fake.admin)
    reply = await world.fake.wait_for_call("POST", rf"/interactions/\d+/{allowed['token']}/callback")
    assert "mode `questions`" in reply.body["data"]["content"]


async def test_questions_channel_thumbs_down_hand_over_and_save_as_answer(world: DiscordWorld) -> None:
    fake, service = world.fake, world.service
    support_channel, nurses = fake.snowflake(), fake.admin_role_id  # the kb-admins role doubles as the support role
    await service.add_text(SEEDER, HOURS, title="Clinic hours")
    await service.desk.set_policy(SEEDER, "discord", fake.guild_id, fake.channel_id, mode="questions")
    await service.desk.set_footer(SEEDER, "default", "Not medical advice.")
    await service.desk.set_handover(SEEDER, "default", support_channel, nurses)
    world.llm.reply("Monday to Friday, 8am to 6pm [1].")
    # admins by role are off: the role's holder is a supporter, not an admin
    async with running_bot(world, message_content_intent=True, admin_role_ids=[]):
        for chatter in ("Good morning everyone!", f"<@{fake.admin.id}> can you check the rota?"):
            await fake.post_as_user(chatter)
        question = await fake.post_as_user("When is the clinic open?")
        answer = await fake.wait_for(lambda: _answers(world), timeout=30)
        assert [a["message_reference"]["message_id"] for a in answer] == [question["id"]]
        assert "-# Not medical advice." in answer[0]["content"]
        buttons = [b for row in answer[0]["components"] for b in row["components"]]
        assert buttons[-1]["label"] == "🙋 Ask a person"
        assert len(world.llm.chat_requests) == 1

        down = next(b["custom_id"] for b in buttons if b["custom_id"].endswith(":down"))
        await fake.click(answer[0], down)
        post = (await fake.wait_for(lambda: _posts_in(world, support_channel), timeout=30))[0]
        assert post["content"].startswith(f"<@&{nurses}>: a question needs a person (answer rated 👎)")
        link = f"https://discord.com/channels/{fake.guild_id}/{fake.channel_id}/{question['id']}"
        assert link in post["content"] and "When is the clinic open?" in post["content"]
        assert post["allowed_mentions"]["roles"] == [int(nurses)] and post["allowed_mentions"]["parse"] == []
        await fake.wait_for(lambda: any("I've asked" in m["content"] for m in _posts_in(world, fake.channel_id)))

        reply = await fake.post_as_user(
            "We are also open on Saturdays from 9am to noon.",
            user=fake.admin,
            channel_id=support_channel,
            reply_to=post,
        )
        refused = await _save_as_answer(fake, reply, fake.member)
        apology = await fake.wait_for_call("PATCH", rf"/webhooks/\d+/{refused['token']}/messages/@original")
        assert "only knowledge-base admins" in apology.body["content"]
        saving = await _save_as_answer(fake, reply, fake.admin)
        done = await fake.wait_for_call("POST", rf"/webhooks/\d+/{saving['token']}", timeout=30)
        assert done.body["content"].startswith("Saved as an answer")
    assert _posts_in(world, support_channel) == [post]  # the bot leaves the support person's reply alone
    assert len(world.llm.chat_requests) == 1

    saved = await service.list_documents(SEEDER, ("default",))
    assert saved[0].title == "When is the clinic open?" and saved[0].added_by == f"discord:{fake.admin.id}"


async def _save_as_answer(fake, message: dict, user) -> dict:
    command = next(c for c in fake.commands[fake.guild_id] if c["name"] == "Save as answer")
    data = {
        "id": command["id"],
        "name": command["name"],
        "type": 3,
        "target_id": message["id"],
        "resolved": {"messages": {message["id"]: message}},
        "guild_id": fake.guild_id,
    }
    return await fake._interact(2, data, user)


async def test_desk_handover_takes_a_channel_and_a_role_from_the_command_options(world: DiscordWorld) -> None:
    fake = world.fake
    support, nurses = fake.add_channel("nurses"), fake.add_role("nurses")
    options = [{"name": "channel", "type": 7, "value": support}, {"name": "role", "type": 8, "value": nurses}]
    async with running_bot(world):
        refused = await fake.slash("desk", options, subcommand="handover")
        reply = await fake.wait_for_call("POST", rf"/interactions/\d+/{refused['token']}/callback")
        assert "only knowledge-base admins" in reply.body["data"]["content"]
        assert (await world.service.desk.scope_desk("default", "discord")).target is None

        allowed = await fake.slash("desk", options, subcommand="handover", user=fake.admin)
        reply = await fake.wait_for_call("POST", rf"/interactions/\d+/{allowed['token']}/callback")
        assert f"hand-over <#{support}> (<@&{nurses}>)." in reply.body["data"]["content"]
        assert reply.body["data"]["allowed_mentions"]["parse"] == []
        assert (await world.service.desk.scope_desk("default", "discord")).target == HandoverTarget(support, nurses)

        no_role = await fake.slash("desk", options[:1], subcommand="handover", user=fake.admin)
        reply = await fake.wait_for_call("POST", rf"/interactions/\d+/{no_role['token']}/callback")
        assert f"hand-over <#{support}>." in reply.body["data"]["content"]
    assert (await world.service.desk.scope_desk("default", "discord")).target == HandoverTarget(support, "")


async def test_desk_handover_to_a_channel_the_bot_cannot_post_in_is_refused_with_the_reason(
    world: DiscordWorld,
) -> None:
    fake = world.fake
    muted = fake.add_channel("muted")
    fake.extra_channels[muted]["permission_overwrites"] = [  # @everyone (the bot's only role) may not post
        {"id": fake.guild_id, "type": 0, "allow": "0", "deny": str(discord.Permissions(send_messages=True).value)}
    ]
    async with running_bot(world):
        hidden = fake.add_channel("hidden")  # made after the bot loaded the guild: it never saw it
        for channel in (muted, hidden):
            options = [{"name": "channel", "type": 7, "value": channel}]
            interaction = await fake.slash("desk", options, subcommand="handover", user=fake.admin)
            reply = await fake.wait_for_call("POST", rf"/interactions/\d+/{interaction['token']}/callback")
            assert f"I cannot post in <#{channel}>: let me see it" in reply.body["data"]["content"]
    assert (await world.service.desk.scope_desk("default", "discord")).target is None


async def test_threads_mode_answers_follow_ups_in_the_bots_threads_only(world: DiscordWorld) -> None:
    fake, service = world.fake, world.service
    await service.add_text(SEEDER, HOURS, title="Clinic hours")
    world.llm.reply("Monday to Friday, 8am to 6pm [1].")
    async with running_bot(world, message_content_intent=True, reply_in_thread=True):
        question = await fake.post_as_user("When is the clinic open?", mention_bot=True)
        thread = await fake.wait_for(lambda: fake.threads.get(question["id"]))
        await fake.wait_for(lambda: _answers_in(world, thread["id"]), timeout=30)

        await service.desk.set_policy(SEEDER, "discord", fake.guild_id, fake.channel_id, mode="threads")
        elsewhere = await fake.start_user_thread("Parking")
        await fake.post_as_user("Where do visitors park?", channel_id=elsewhere["id"], mention_bot=True)
        await fake.post_as_user("Is the clinic open at Easter?", mention_bot=True)
        await fake.post_as_user("And on Saturdays?", channel_id=thread["id"])  # a follow-up needs no mention
        await fake.wait_for(lambda: _answers_in(world, thread["id"])[1:], timeout=30)

    assert _posts_in(world, elsewhere["id"]) == [] and _posts_in(world, fake.channel_id) == []
    assert set(fake.threads) == {thread["id"], elsewhere["id"]}
    asked = str(world.llm.chat_requests)
    assert "And on Saturdays?" in asked and "visitors park" not in asked and "Easter" not in asked


async def test_a_saved_answer_is_cited_when_the_same_question_is_asked_again(world: DiscordWorld) -> None:
    fake, service = world.fake, world.service
    support = fake.add_channel("nurses")
    await service.desk.set_policy(SEEDER, "discord", fake.guild_id, fake.channel_id, mode="questions")
    await service.desk.set_handover(SEEDER, "default", support, fake.admin_role_id)
    question = "Can I bring my dog to the clinic?"
    async with running_bot(world, message_content_intent=True):
        await fake.post_as_user(question)
        post = (await fake.wait_for(lambda: _posts_in(world, support), timeout=30))[0]
        assert "not found in the knowledge base" in post["content"]
        assert world.llm.chat_requests == []  # nothing retrieved, nothing asked of the model
        told = "so I've asked"  # sent once the post is recorded: a reply to it can be saved from then on
        await fake.wait_for(lambda: any(told in m["content"] for m in _posts_in(world, fake.channel_id)))

        reply = "Only guide dogs are allowed inside the clinic."
        thread = await fake.start_user_thread("Dogs", user=fake.admin, on=post)  # the support person answers there
        answer = await fake.post_as_user(reply, user=fake.admin, channel_id=thread["id"])
        saving = await _save_as_answer(fake, answer, fake.admin)
        done = await fake.wait_for_call("POST", rf"/webhooks/\d+/{saving['token']}", timeout=30)
        assert done.body["content"].startswith("Saved as an answer")

        world.llm.reply("Only guide dogs are allowed [1].")
        again = await fake.post_as_user(question, user=fake.admin)
        cited = await fake.wait_for(
            lambda: [m for m in _answers_in(world, fake.channel_id) if m["content"].startswith("Only guide dogs")],
            timeout=30,
        )
    assert cited[0]["message_reference"]["message_id"] == again["id"]
    sources = next(e for e in cited[0]["embeds"] if e["title"] == "Sources")
    assert sources["description"].startswith(f"**[1]** {question}")
    assert _posts_in(world, thread["id"]) == [] and len(world.llm.chat_requests) == 1  # the reply is not asked
    assert reply in str(world.llm.chat_requests[-1])
