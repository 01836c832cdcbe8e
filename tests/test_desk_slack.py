"""The support desk on Slack over the wire: real bolt + slack-sdk against the fake Slack, fake LLM, real core and
Postgres. A ``questions`` channel set from chat, hand-over to the support channel, "Save as answer", App Home."""

from __future__ import annotations

from typing import Any

from bot.domain import Actor
from connectors.slack import render
from connectors.slack.desk import ASK_PERSON_ACTION, SAVE_ANSWER_SHORTCUT
from tests.fixtures.slack import ADMIN, CHANNEL, TEAM_ID, USER, SlackBot

SUPPORT = "CNURSES"
GROUP = "SNURSES"
NURSE = "UNURSE"
HOURS = "Clinic hours. The clinic is open Monday to Friday from 8am to 6pm and closed at weekends."


def _answers_in(bot: SlackBot, channel: str) -> list[dict[str, Any]]:
    return [
        c.args for c in bot.slack.calls_to("chat.update") if c.args.get("channel") == channel and c.args.get("blocks")
    ]


def _posts_in(bot: SlackBot, channel: str) -> list[dict[str, Any]]:
    return [c.args for c in bot.slack.calls_to("chat.postMessage") if c.args.get("channel") == channel]


def _text(blocks: list[dict[str, Any]]) -> str:
    return "\n".join(str(b.get("text", {}).get("text", "")) + str(b.get("elements", "")) for b in blocks)


async def _kb(bot: SlackBot, text: str, user: str = ADMIN) -> str:
    command = bot.slack.slash_command("/kb", text, user=user, channel=CHANNEL)
    await bot.slack.send("slash_commands", command)
    replies = await bot.slack.wait_for(lambda: bot.slack.responses_to(command["response_url"]))
    return replies[0].body["text"]


async def _desk(bot: SlackBot) -> None:
    """The channel answers questions; the default scope hands over to #nurses, mentioning @nurses."""
    bot.slack.usergroups[GROUP] = [NURSE]
    assert "mode `questions`" in await _kb(bot, "desk mode questions")
    assert "Not medical advice" in await _kb(bot, "desk footer Not medical advice.")
    reply = await _kb(bot, f"desk handover <#{SUPPORT}|nurses> <!subteam^{GROUP}|@nurses>")
    assert f"<#{SUPPORT}> (<!subteam^{GROUP}>)" in reply


async def test_only_admins_change_a_channels_desk_settings(slack_bot: SlackBot) -> None:
    assert "only knowledge-base admins" in await _kb(slack_bot, "desk mode questions", user=USER)
    assert "mode `mention`" in await _kb(slack_bot, "desk")
    assert "unknown channel mode" in await _kb(slack_bot, "desk mode everything")


async def test_a_question_in_a_questions_channel_is_answered_without_a_mention_and_chatter_is_not(
    slack_bot: SlackBot,
) -> None:
    await slack_bot.seed(HOURS, "Clinic hours")
    await slack_bot.slack.send_event(slack_bot.slack.message("When is the clinic open?", user=USER, channel=CHANNEL))
    await slack_bot.idle()
    assert _posts_in(slack_bot, CHANNEL) == []  # mention mode: no answer without a mention

    await _desk(slack_bot)
    slack_bot.llm.reply("Monday to Friday, 8am to 6pm [1].")
    for chatter in ("Good morning everyone!", "thanks, that worked", f"<@{NURSE}> can you check the rota?"):
        await slack_bot.slack.send_event(slack_bot.slack.message(chatter, user=USER, channel=CHANNEL))
    question = slack_bot.slack.message("When is the clinic open?", user=USER, channel=CHANNEL)
    await slack_bot.slack.send_event(question)
    final = (await slack_bot.slack.wait_for(lambda: _answers_in(slack_bot, CHANNEL)))[0]
    await slack_bot.idle()
    posts = _posts_in(slack_bot, CHANNEL)
    assert [p["thread_ts"] for p in posts] == [question["ts"]]  # one placeholder, for the question only
    text = _text(final["blocks"])
    assert "Monday to Friday" in text and "Not medical advice." in text
    buttons = final["blocks"][-1]["elements"]
    assert buttons[-1]["action_id"] == ASK_PERSON_ACTION and buttons[-1]["text"]["text"] == "🙋 Ask a person"
    assert len(slack_bot.llm.chat_requests) == 1


async def test_threads_mode_ignores_new_mentions_and_questions_channels_ignore_shared_files(
    slack_bot: SlackBot,
) -> None:
    assert "mode `threads`" in await _kb(slack_bot, "desk mode threads")
    await slack_bot.slack.send_event(slack_bot.slack.mention("When is the clinic open?", user=USER, channel=CHANNEL))
    await slack_bot.idle()
    assert "mode `questions`" in await _kb(slack_bot, "desk mode questions")
    shared = slack_bot.slack.add_file("notes.txt", b"How do I reset my password?")
    event = slack_bot.slack.message(
        "How do I reset my password?", user=USER, channel=CHANNEL, subtype="file_share", files=[{"id": shared.id}]
    )
    await slack_bot.slack.send_event(event)
    await slack_bot.idle()
    assert _posts_in(slack_bot, CHANNEL) == [] and slack_bot.slack.downloads == []
    assert slack_bot.llm.chat_requests == []


async def test_thumbs_down_hands_over_with_a_link_and_a_group_mention_and_tells_the_asker(slack_bot: SlackBot) -> None:
    await slack_bot.seed(HOURS, "Clinic hours")
    await _desk(slack_bot)
    slack_bot.llm.reply("The clinic is open on weekdays [1].")
    question = slack_bot.slack.message("Is the clinic open on Saturday?", user=USER, channel=CHANNEL)
    await slack_bot.slack.send_event(question)
    final = (await slack_bot.slack.wait_for(lambda: _answers_in(slack_bot, CHANNEL)))[0]
    message_id = final["blocks"][-1]["elements"][0]["value"]

    down = slack_bot.slack.block_action(render.FEEDBACK_DOWN_ACTION, message_id, user=USER, channel=CHANNEL)
    await slack_bot.slack.send("interactive", down)
    post = (await slack_bot.slack.wait_for(lambda: _posts_in(slack_bot, SUPPORT)))[0]
    assert post["text"].startswith(f"<!subteam^{GROUP}>")
    body = _text(post["blocks"])
    link = f"https://slack.com/archives/{CHANNEL}/p{question['ts'].replace('.', '')}"
    assert link in body and "Is the clinic open on Saturday?" in body and "open on weekdays" in body
    assert "Clinic hours" in body  # the retrieved sources
    told = await slack_bot.slack.wait_for(
        lambda: [p for p in _posts_in(slack_bot, CHANNEL) if p["text"].startswith("I've asked")]
    )
    assert told[0]["thread_ts"] == question["ts"] and f"<#{SUPPORT}>" in told[0]["text"]

    again = slack_bot.slack.block_action(ASK_PERSON_ACTION, message_id, user=USER, channel=CHANNEL)
    await slack_bot.slack.send("interactive", again)
    await slack_bot.slack.wait_for(
        lambda: [p for p in _posts_in(slack_bot, CHANNEL) if p["text"].startswith("This question is already")]
    )
    assert len(_posts_in(slack_bot, SUPPORT)) == 1  # handed over once
    assert await slack_bot.sql("SELECT reason FROM escalations") == [("thumbs_down",)]


def _shortcut(bot: SlackBot, *, user: str, channel: str, thread_ts: str, text: str) -> dict[str, Any]:
    """A message shortcut on a reply, as Slack sends it."""
    return {
        "type": "message_action",
        "callback_id": SAVE_ANSWER_SHORTCUT,
        "team": {"id": TEAM_ID, "domain": "fake"},
        "user": {"id": user, "username": user.lower(), "team_id": TEAM_ID},
        "channel": {"id": channel, "name": "nurses"},
        "message": {"type": "message", "user": user, "text": text, "ts": bot.slack.new_ts(), "thread_ts": thread_ts},
        "message_ts": thread_ts,
        "response_url": bot.slack.response_url(),
        "trigger_id": "trigger-shortcut",
        "token": "legacy",
        "action_ts": "1700000000.1",
    }


async def test_a_not_found_question_is_handed_over_and_a_saved_reply_answers_the_next_asker(
    slack_bot: SlackBot,
) -> None:
    await _desk(slack_bot)
    question = "Can I bring my dog to the clinic?"
    await slack_bot.slack.send_event(slack_bot.slack.message(question, user=USER, channel=CHANNEL))
    post = (await slack_bot.slack.wait_for(lambda: _posts_in(slack_bot, SUPPORT)))[0]
    assert "not found in the knowledge base" in _text(post["blocks"])
    await slack_bot.idle()
    post_ts = (await slack_bot.sql("SELECT post_ref FROM escalations"))[0][0]
    assert post_ts

    refused = _shortcut(slack_bot, user=USER, channel=SUPPORT, thread_ts=post_ts, text="Dogs are fine.")
    await slack_bot.slack.send("interactive", refused)
    denied = await slack_bot.slack.wait_for(lambda: slack_bot.slack.responses_to(refused["response_url"]))
    assert "only knowledge-base admins" in denied[0].body["text"]

    reply = "Only guide dogs are allowed inside the clinic."
    saving = _shortcut(slack_bot, user=NURSE, channel=SUPPORT, thread_ts=post_ts, text=reply)
    await slack_bot.slack.send("interactive", saving)
    saved = await slack_bot.slack.wait_for(lambda: slack_bot.slack.responses_to(saving["response_url"]))
    assert saved[0].body["text"].startswith("Saved as an answer: document #")
    assert await slack_bot.sql("SELECT question, answer, saved_by FROM curated_answers") == [
        (question, reply, f"slack:{NURSE}")
    ]

    slack_bot.llm.reply("Only guide dogs are allowed [1].")
    await slack_bot.slack.send_event(slack_bot.slack.message(question, user=ADMIN, channel=CHANNEL))
    final = (await slack_bot.slack.wait_for(lambda: _answers_in(slack_bot, CHANNEL)[1:]))[0]
    assert f"*Sources*\n[1] {question}" in _text(final["blocks"])


async def test_app_home_shows_admins_the_report_and_others_only_the_status(slack_bot: SlackBot) -> None:
    await slack_bot.seed(HOURS, "Clinic hours")
    await slack_bot.service.ask(_question("Can I bring my dog? mail jo@example.com"))
    await slack_bot.sql(
        "WITH s AS (INSERT INTO scopes (name) VALUES ('web') RETURNING name) INSERT INTO sources"
        " (kind, target, scope, created_by) SELECT 'web', 'https://docs.example.com/', name, 'slack:UADMIN' FROM s"
        " RETURNING id"
    )
    for user in (ADMIN, USER):
        event = {"type": "app_home_opened", "user": user, "channel": "DHOME", "tab": "home", "event_ts": "1.0"}
        await slack_bot.slack.send_event(event)
        await slack_bot.slack.wait_for(
            lambda u=user: [c for c in slack_bot.slack.calls_to("views.publish") if c.args["user_id"] == u]
        )
    views = {c.args["user_id"]: c.args["view"] for c in slack_bot.slack.calls_to("views.publish")}
    admin_view, user_view = _text(views[ADMIN]["blocks"]), _text(views[USER]["blocks"])
    assert "`default`: 1 documents, 1 chunks, last change" in admin_view and "`default`: 1 documents" in user_view
    assert "`web`: 0 documents, 0 chunks; 1 connected sources, last sync never" in user_view
    assert "1 questions, 0 answered, 1 not found" in admin_view
    assert "Can I bring my dog? mail [email]" in admin_view and "jo@example.com" not in admin_view
    assert "questions" not in user_view
    assert all(len(views[u]["blocks"]) <= 100 for u in views)


def _question(text: str) -> Any:
    from bot.domain import Question

    return Question(text, Actor("slack", USER), ("default",))


async def test_a_chinese_channel_shows_not_found_the_button_and_the_hand_over_notice_in_chinese(
    slack_bot: SlackBot,
) -> None:
    await _desk(slack_bot)
    assert "language `zh`" in await _kb(slack_bot, "desk language zh")
    question = slack_bot.slack.message("我可以带狗去诊所吗？", user=USER, channel=CHANNEL)
    await slack_bot.slack.send_event(question)
    final = (await slack_bot.slack.wait_for(lambda: _answers_in(slack_bot, CHANNEL)))[0]
    assert "知识库里没有找到这个问题的答案。" in _text(final["blocks"])
    assert final["blocks"][-1]["elements"][-1]["text"]["text"] == "🙋 转人工"
    told = await slack_bot.slack.wait_for(
        lambda: [p for p in _posts_in(slack_bot, CHANNEL) if p["text"].startswith("知识库里没有找到答案")]
    )
    assert told[0]["text"] == f"知识库里没有找到答案，我已请 <#{SUPPORT}> 的 <!subteam^{GROUP}> 帮忙。"
    stored = await slack_bot.sql("SELECT answer FROM messages")
    assert stored == [("I could not find this in the knowledge base.",)]


def test_a_hostile_footer_cannot_ping_the_channel_or_break_the_blocks() -> None:
    from bot.domain import Answer

    answer = Answer("Fine.", (), (), True, "m", message_id=7)
    blocks = render.answer_blocks(answer, footer="<!channel> <https://evil.example|click>", ask_person="Ask")
    footer = blocks[-2]["elements"][0]["text"]
    assert footer == "&lt;!channel&gt; &lt;https://evil.example|click&gt;"
    assert blocks[-1]["elements"][-1] == {
        "type": "button",
        "action_id": ASK_PERSON_ACTION,
        "text": {"type": "plain_text", "text": "Ask", "emoji": True},
        "value": "7",
    }
