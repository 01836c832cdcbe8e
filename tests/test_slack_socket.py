"""The Slack bot end to end in Socket Mode: real bolt + slack-sdk, fake Slack and LLM, real core and Postgres."""

from __future__ import annotations

import time
from typing import Any

from bot.answer.prompt import CONDENSE_PROMPT
from bot.ratelimit import RateLimiter
from connectors.slack import render
from tests.fixtures.slack import (
    ADMIN,
    CHANNEL,
    DM,
    USER,
    SlackBot,
)

WIFI = "Office wifi. The office wifi password is PurpleElephant42. Guests use the network Lorebot-Guest."
PARKING = "Parking. Employees park in garage B on level 3. Visitor parking is at the front entrance."


def _final_updates(bot: SlackBot, channel: str) -> list[dict[str, Any]]:
    return [
        c.args for c in bot.slack.calls_to("chat.update") if c.args.get("channel") == channel and c.args.get("blocks")
    ]


def _texts(blocks: list[dict[str, Any]]) -> str:
    return "\n".join(b["text"]["text"] for b in blocks if b["type"] == "section")


def _is_answer_request(body: dict[str, Any]) -> bool:
    return body["messages"][0]["content"] != CONDENSE_PROMPT


async def _final_answer(bot: SlackBot, channel: str, count: int = 1) -> dict[str, Any]:
    updates = await bot.slack.wait_for(lambda: _final_updates(bot, channel)[count - 1 :], what="final answer")
    return updates[0]


async def test_mention_is_answered_in_its_thread_with_numbered_sources(slack_bot: SlackBot) -> None:
    await slack_bot.seed(WIFI, "Wifi guide")
    slack_bot.llm.reply("The password is PurpleElephant42 [1].")
    event = slack_bot.slack.mention("what is the wifi password?", user=USER, channel=CHANNEL)
    await slack_bot.slack.send_event(event)

    final = await _final_answer(slack_bot, CHANNEL)
    placeholder = slack_bot.slack.calls_to("chat.postMessage")[0].args
    assert placeholder["thread_ts"] == event["ts"] and placeholder["text"] == render.THINKING_TEXT
    assert final["ts"] != event["ts"]
    text = _texts(final["blocks"])
    assert "PurpleElephant42 [1]" in text
    assert "*Sources*\n[1] Wifi guide" in text
    buttons = final["blocks"][-1]["elements"]
    assert buttons[0]["action_id"] == render.FEEDBACK_UP_ACTION and buttons[0]["value"].isdigit()
    question = slack_bot.llm.chat_requests[-1]["messages"][-1]["content"]
    assert "what is the wifi password?" in question and "<@" not in question


async def test_direct_message_is_answered_in_the_dm(slack_bot: SlackBot) -> None:
    await slack_bot.seed(PARKING, "Parking")
    slack_bot.llm.reply("Garage B, level 3 [1].")
    await slack_bot.slack.send_event(
        slack_bot.slack.message("where do employees park?", user=USER, channel=DM, channel_type="im")
    )
    final = await _final_answer(slack_bot, DM)
    assert "Garage B, level 3 [1]" in _texts(final["blocks"])
    assert "thread_ts" not in slack_bot.slack.calls_to("chat.postMessage")[0].args


async def test_thread_follow_up_without_mention_is_answered_with_history(slack_bot: SlackBot) -> None:
    await slack_bot.seed(WIFI, "Wifi guide")
    slack_bot.llm.script(
        lambda body: "guest wifi network" if not _is_answer_request(body) else "It is Lorebot-Guest [1]."
    )
    first = slack_bot.slack.mention("what is the wifi password?", user=USER, channel=CHANNEL)
    await slack_bot.slack.send_event(first)
    await _final_answer(slack_bot, CHANNEL)

    unrelated = slack_bot.slack.message("lunch anyone?", user=USER, channel=CHANNEL, thread_ts="1600000000.000001")
    follow_up = slack_bot.slack.message("and for guests?", user=USER, channel=CHANNEL, thread_ts=first["ts"])
    await slack_bot.slack.send_event(unrelated)
    await slack_bot.slack.send_event(follow_up)
    final = await _final_answer(slack_bot, CHANNEL, count=2)
    await slack_bot.idle()

    assert "Lorebot-Guest [1]" in _texts(final["blocks"])
    answer_requests = [body for body in slack_bot.llm.chat_requests if _is_answer_request(body)]
    assert len(answer_requests) == 2  # the unrelated thread was not answered
    history = [m["content"] for m in answer_requests[-1]["messages"][1:-1]]
    assert history[0] == "what is the wifi password?"
    assert "Lorebot-Guest" in history[1]
    placeholders = slack_bot.slack.calls_to("chat.postMessage")
    assert [p.args["thread_ts"] for p in placeholders] == [first["ts"], first["ts"]]


async def test_ack_is_fast_and_a_placeholder_appears_while_the_llm_takes_ten_seconds(slack_bot: SlackBot) -> None:
    await slack_bot.seed(WIFI, "Wifi guide")
    slack_bot.llm.delay = 10.0
    slack_bot.llm.reply("PurpleElephant42 [1].")
    sent = time.monotonic()
    envelope = await slack_bot.slack.send_event(slack_bot.slack.mention("wifi password?", user=USER, channel=CHANNEL))
    ack_s = await slack_bot.slack.wait_ack(envelope, timeout=3.0)
    first = await slack_bot.slack.wait_for(lambda: slack_bot.slack.calls_to("chat.postMessage"), timeout=3.0)
    first_update_s = first[0].at - sent
    final = await _final_answer(slack_bot, CHANNEL)
    answered_s = time.monotonic() - sent
    print(
        f"\nslack socket mode: event→ack {ack_s * 1000:.0f} ms, event→placeholder {first_update_s * 1000:.0f} ms, "
        f"event→final answer {answered_s:.1f} s (LLM delay 10 s)"
    )
    assert ack_s < 3.0
    assert first_update_s < 1.0
    assert "PurpleElephant42" in _texts(final["blocks"])


async def test_event_delivered_three_times_is_answered_once(slack_bot: SlackBot) -> None:
    await slack_bot.seed(WIFI, "Wifi guide")
    payload = slack_bot.slack.event_callback(slack_bot.slack.mention("wifi?", user=USER, channel=CHANNEL))
    envelopes = [await slack_bot.slack.send("events_api", payload, retry_attempt=n) for n in range(3)]
    for envelope in envelopes:
        await slack_bot.slack.wait_ack(envelope)
    await _final_answer(slack_bot, CHANNEL)
    await slack_bot.idle()
    assert len(slack_bot.slack.calls_to("chat.postMessage")) == 1
    assert len(slack_bot.llm.chat_requests) == 1
    rows = await slack_bot.sql("SELECT count(*) FROM processed_events WHERE event_id = %(id)s", id=payload["event_id"])
    assert rows == [(1,)]


async def test_edits_deletions_and_other_bots_are_acknowledged_but_ignored(slack_bot: SlackBot) -> None:
    slack = slack_bot.slack
    noise = [
        slack.message("edited", user=USER, channel=DM, channel_type="im", subtype="message_changed"),
        slack.message("", user=USER, channel=DM, channel_type="im", subtype="message_deleted"),
        slack.message("beep", user="UOTHERBOT", channel=DM, channel_type="im", bot_id="BOTHER"),
        slack.message("me", user="UBOT", channel=DM, channel_type="im", bot_id="BBOT"),
    ]
    for event in noise:
        await slack.wait_ack(await slack.send_event(event))
    await slack_bot.idle()
    assert slack.calls_to("chat.postMessage") == []
    assert slack_bot.llm.chat_requests == []


async def test_llm_outage_shows_an_apology_with_an_error_id(slack_bot: SlackBot) -> None:
    await slack_bot.seed(WIFI, "Wifi guide")
    slack_bot.llm.fail_with(500)
    await slack_bot.slack.send_event(slack_bot.slack.mention("wifi password?", user=USER, channel=CHANNEL))
    updates = await slack_bot.slack.wait_for(
        lambda: [c for c in slack_bot.slack.calls_to("chat.update") if "error" in c.args.get("text", "")]
    )
    text = updates[0].args["text"]
    assert text.startswith("Sorry, I can't answer right now: language model unavailable (error ")
    assert "500" not in text and "127.0.0.1" not in text


async def test_rate_limited_user_gets_a_friendly_message(slack_bot: SlackBot) -> None:
    slack_bot.service.rate_limiter = RateLimiter(per_minute=1)
    await slack_bot.seed(WIFI, "Wifi guide")
    for _ in range(2):
        await slack_bot.slack.send_event(slack_bot.slack.mention("wifi?", user=USER, channel=CHANNEL))
    limited = await slack_bot.slack.wait_for(
        lambda: [c for c in slack_bot.slack.calls_to("chat.update") if "asking quickly" in c.args.get("text", "")]
    )
    assert "try again in" in limited[0].args["text"]


async def test_long_answer_is_split_into_sections_within_slack_limits(slack_bot: SlackBot) -> None:
    await slack_bot.seed(WIFI, "Wifi guide")
    long_reply = " ".join(f"Sentence number {i} about the wifi password [1]." for i in range(600))
    slack_bot.llm.reply(long_reply)
    await slack_bot.slack.send_event(
        slack_bot.slack.mention("tell me everything about the wifi password", user=USER, channel=CHANNEL)
    )
    final = await _final_answer(slack_bot, CHANNEL)
    sections = [b["text"]["text"] for b in final["blocks"] if b["type"] == "section"]
    assert len(final["blocks"]) <= render.MAX_BLOCKS
    assert len(sections) >= 10
    assert all(len(text) <= render.SECTION_TEXT_LIMIT for text in sections)
    answer_text = " ".join(sections[:-1])
    assert " ".join(answer_text.split()) == " ".join(long_reply.split())


async def test_thumbs_up_is_stored_and_thumbs_down_opens_a_comment_dialog(slack_bot: SlackBot) -> None:
    await slack_bot.seed(WIFI, "Wifi guide")
    await slack_bot.slack.send_event(slack_bot.slack.mention("wifi password?", user=USER, channel=CHANNEL))
    final = await _final_answer(slack_bot, CHANNEL)
    message_id = final["blocks"][-1]["elements"][0]["value"]

    up = slack_bot.slack.block_action(render.FEEDBACK_UP_ACTION, message_id, user=USER, channel=CHANNEL)
    await slack_bot.slack.wait_ack(await slack_bot.slack.send("interactive", up))
    thanks = await slack_bot.slack.wait_for(lambda: slack_bot.slack.responses_to(up["response_url"]))
    assert thanks[0].body["text"] == "Thanks for the feedback!"
    rows = await slack_bot.sql("SELECT message_id, user_id, score FROM feedback")
    assert rows == [(int(message_id), USER, 1)]

    down = slack_bot.slack.block_action(render.FEEDBACK_DOWN_ACTION, message_id, user=ADMIN, channel=CHANNEL)
    await slack_bot.slack.send("interactive", down)
    opened = await slack_bot.slack.wait_for(lambda: slack_bot.slack.calls_to("views.open"))
    assert opened[0].args["trigger_id"] == down["trigger_id"]
    assert opened[0].args["view"]["private_metadata"] == message_id
    await slack_bot.slack.wait_for(lambda: slack_bot.slack.responses_to(down["response_url"]))
    values = {
        render.FEEDBACK_COMMENT_BLOCK: {
            render.FEEDBACK_COMMENT_INPUT: {"type": "plain_text_input", "value": "password is outdated"}
        }
    }
    submission = slack_bot.slack.view_submission(render.FEEDBACK_MODAL_CALLBACK, message_id, values, user=ADMIN)
    await slack_bot.slack.wait_ack(await slack_bot.slack.send("interactive", submission))
    await slack_bot.idle()
    rows = await slack_bot.sql("SELECT user_id, score, comment FROM feedback ORDER BY user_id")
    assert rows == [(ADMIN, -1, "password is outdated"), (USER, 1, "")]


async def test_ask_command_replies_privately_and_can_be_shared_to_the_channel(slack_bot: SlackBot) -> None:
    await slack_bot.seed(PARKING, "Parking")
    slack_bot.llm.reply("Garage B [1].")
    command = slack_bot.slack.slash_command("/ask", "where do employees park?", user=USER, channel=CHANNEL)
    envelope = await slack_bot.slack.send("slash_commands", command)
    await slack_bot.slack.wait_ack(envelope)
    assert slack_bot.slack.acks[envelope][1] == {"response_type": "ephemeral", "text": render.THINKING_TEXT}
    replies = await slack_bot.slack.wait_for(lambda: slack_bot.slack.responses_to(command["response_url"]))
    reply = replies[0].body
    assert reply["response_type"] == "ephemeral" and reply["replace_original"] is True
    assert "Garage B [1]" in _texts(reply["blocks"])
    share = reply["blocks"][-1]["elements"][-1]
    assert share["action_id"] == render.SHARE_ACTION

    click = slack_bot.slack.block_action(render.SHARE_ACTION, share["value"], user=USER, channel=CHANNEL)
    await slack_bot.slack.send("interactive", click)
    shared = (await slack_bot.slack.wait_for(lambda: slack_bot.slack.responses_to(click["response_url"])))[0].body
    assert shared["response_type"] == "in_channel"
    assert "Garage B [1]" in _texts(shared["blocks"])
    assert f"Shared by <@{USER}>" in str(shared["blocks"])


async def _kb(bot: SlackBot, text: str, user: str) -> str:
    command = bot.slack.slash_command("/kb", text, user=user, channel=CHANNEL)
    await bot.slack.wait_ack(await bot.slack.send("slash_commands", command))
    replies = await bot.slack.wait_for(lambda: bot.slack.responses_to(command["response_url"]), what=f"/kb {text}")
    return replies[0].body["text"]


async def test_kb_commands_add_list_search_remove_and_show_the_scope(slack_bot: SlackBot) -> None:
    added = await _kb(slack_bot, "add The cafeteria opens at 8am and closes at 3pm on weekdays.", ADMIN)
    assert added.startswith("Added *The cafeteria opens at 8am") and "chunks)" in added
    document_id = int(added.split("document #")[1].split()[0])

    hits = await _kb(slack_bot, "search when does the cafeteria open", USER)
    assert hits.startswith("*Top 1 hits*") and f"#{document_id}" in hits
    listing = await _kb(slack_bot, "list", USER)
    assert listing.startswith("*1 documents* in `default`")
    assert await _kb(slack_bot, "scope", USER) == "This channel answers from `default`."
    assert (await _kb(slack_bot, f"remove {document_id}", ADMIN)).startswith(f"Removed document #{document_id}")
    assert await _kb(slack_bot, "frobnicate", USER) == render.KB_USAGE
    assert await _kb(slack_bot, "remove not-a-number", ADMIN) == render.KB_USAGE


async def test_kb_add_by_a_non_admin_is_refused_and_audited(slack_bot: SlackBot) -> None:
    reply = await _kb(slack_bot, "add Secret plans for world domination.", USER)
    assert reply.startswith("Sorry, only knowledge-base admins can do that")
    assert await slack_bot.sql("SELECT count(*) FROM documents") == [(0,)]
    audit = await slack_bot.sql("SELECT platform, user_id, action, allowed FROM audit_log")
    assert audit == [("slack", USER, "add_text", False)]


async def test_kb_add_url_by_an_admin_fetches_the_page(slack_bot: SlackBot) -> None:
    body = b"Vacation requests go to the HR portal two weeks ahead. " * 20
    url = slack_bot.slack.add_page(
        "handbook.html", b"<html><head><title>Handbook</title></head><body><p>" + body + b"</p></body></html>"
    )
    reply = await _kb(slack_bot, f"add <{url}>", ADMIN)
    assert reply.startswith("Added *Handbook* as document #"), reply
    assert await slack_bot.sql("SELECT source_uri FROM documents") == [(url,)]


async def test_admin_file_in_a_dm_is_downloaded_with_the_token_and_ingested(slack_bot: SlackBot) -> None:
    file = slack_bot.slack.add_file(
        "onboarding.md",
        b"# Onboarding\n\nNew hires get a laptop on day one.\n" * 5,
        mimetype="text/markdown",
        filetype="markdown",
    )
    event = slack_bot.slack.message(
        "", user=ADMIN, channel=DM, channel_type="im", subtype="file_share", files=[{"id": file.id, "name": file.name}]
    )
    await slack_bot.slack.send_event(event)
    reply = await slack_bot.slack.wait_for(lambda: slack_bot.slack.calls_to("chat.postMessage"))
    assert reply[0].args["text"].startswith("Added *Onboarding* as document #")
    assert "chunks" in reply[0].args["text"]
    assert slack_bot.slack.calls_to("files.info")[0].args["file"] == file.id
    assert await slack_bot.sql("SELECT title, added_by FROM documents") == [("Onboarding", f"slack:{ADMIN}")]


async def test_a_file_share_delivered_twice_is_downloaded_and_ingested_once(slack_bot: SlackBot) -> None:
    file = slack_bot.slack.add_file("faq.md", b"# FAQ\n\nThe office opens at nine.\n" * 5, mimetype="text/markdown")
    event = slack_bot.slack.message(
        "", user=ADMIN, channel=DM, channel_type="im", subtype="file_share", files=[{"id": file.id, "name": file.name}]
    )
    payload = slack_bot.slack.event_callback(event)
    for attempt in range(2):
        await slack_bot.slack.wait_ack(await slack_bot.slack.send("events_api", payload, retry_attempt=attempt))
    await slack_bot.slack.wait_for(lambda: slack_bot.slack.calls_to("chat.postMessage"))
    await slack_bot.idle()
    assert len(slack_bot.slack.calls_to("chat.postMessage")) == 1
    assert len(slack_bot.slack.calls_to("files.info")) == 1
    assert await slack_bot.sql("SELECT count(*) FROM audit_log WHERE action = 'add_file'") == [(1,)]


async def test_file_download_answered_with_the_login_page_is_rejected(slack_bot: SlackBot) -> None:
    slack_bot.slack.download_token = "xoxb-some-other-token"  # our token lacks files:read: Slack serves HTML
    file = slack_bot.slack.add_file("notes.txt", b"plain notes " * 20)
    event = slack_bot.slack.mention("", user=ADMIN, channel=CHANNEL, files=[{"id": file.id}])
    await slack_bot.slack.send_event(event)
    reply = await slack_bot.slack.wait_for(lambda: slack_bot.slack.calls_to("chat.postMessage"))
    assert "document rejected" in reply[0].args["text"]
    assert "HTML page instead of the file" in reply[0].args["text"]
    assert reply[0].args["thread_ts"] == event["ts"]
    assert await slack_bot.sql("SELECT count(*) FROM documents") == [(0,)]


async def test_files_from_a_non_admin_are_refused_once_without_being_looked_up_or_downloaded(
    slack_bot: SlackBot,
) -> None:
    files = [slack_bot.slack.add_file(name, b"plain notes " * 20) for name in ("notes.txt", "more.txt")]
    event = slack_bot.slack.message(
        "", user=USER, channel=DM, channel_type="im", subtype="file_share", files=[{"id": f.id} for f in files]
    )
    await slack_bot.slack.send_event(event)
    reply = await slack_bot.slack.wait_for(lambda: slack_bot.slack.calls_to("chat.postMessage"))
    await slack_bot.idle()
    assert reply[0].args["text"].startswith("Sorry, only knowledge-base admins can do that")
    assert len(slack_bot.slack.calls_to("chat.postMessage")) == 1
    assert slack_bot.slack.calls_to("files.info") == [] and slack_bot.slack.downloads == []
    assert await slack_bot.sql("SELECT user_id, action, allowed FROM audit_log") == [(USER, "add_file", False)]


async def test_empty_mention_gets_a_hint_instead_of_an_llm_call(slack_bot: SlackBot) -> None:
    await slack_bot.slack.send_event(slack_bot.slack.mention("  ", user=USER, channel=CHANNEL))
    hint = await slack_bot.slack.wait_for(lambda: slack_bot.slack.calls_to("chat.update"))
    assert hint[0].args["text"].startswith("Ask me a question after the mention")
    assert slack_bot.llm.chat_requests == []


async def test_a_mention_while_draining_is_refused_with_a_restart_notice(slack_bot: SlackBot) -> None:
    slack_bot.runner.deps.inflight.stop_accepting()  # what SIGTERM does before the intake is dropped
    mention = slack_bot.slack.mention("wifi password?", user=USER, channel=CHANNEL)
    await slack_bot.slack.send_event(mention)

    [notice] = await slack_bot.slack.wait_for(lambda: slack_bot.slack.calls_to("chat.postMessage"), what="notice")
    assert notice.args["text"] == "I'm restarting: please ask again in a moment."
    assert notice.args["thread_ts"] == mention["ts"]
    assert slack_bot.llm.chat_requests == []
