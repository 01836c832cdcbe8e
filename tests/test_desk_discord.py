"""The support desk on Discord over the wire (real discord.py against the fake Discord): ``/kb report`` embeds
within Discord's limits, question text for admins only; the embeds' limits on a hostile report."""

from __future__ import annotations

from datetime import UTC, datetime

from bot.desk.report import CitedDocument, Report, Topic
from bot.domain import Actor, Question
from connectors.discord.client import LorebotClient
from connectors.discord.desk_render import MAX_EMBEDS, MAX_FIELD_VALUE_CHARS, MAX_TOTAL_CHARS, report_embeds
from connectors.discord.render import MAX_EMBED_DESCRIPTION_CHARS, MAX_EMBED_TITLE_CHARS
from tests.fixtures.discord import DiscordWorld, RestCall

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
    assert "Parking (default): 1" in embeds[-1]["fields"][0]["value"]

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
    embeds = [e.to_dict() for e in report_embeds(report)]
    assert_within_discord_limits(embeds)
    assert "@everyone" not in str(embeds).replace("@\u200beveryone", "")
