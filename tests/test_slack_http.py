"""The Slack bot in HTTP (Events API) mode: bolt verifies signatures, acks fast and answers each event once."""

from __future__ import annotations

import json
import time

from tests.fixtures.slack import (
    CHANNEL,
    USER,
    SlackBot,
    form_body,
)

WIFI = "Office wifi. The office wifi password is PurpleElephant42. Guests use the network Lorebot-Guest."


def _url(bot: SlackBot) -> str:
    return f"http://127.0.0.1:{bot.runner.port}{bot.slack_settings.http_path}"


def _answers(bot: SlackBot) -> list:
    return [c for c in bot.slack.calls_to("chat.update") if c.args.get("blocks")]


async def test_signed_event_is_acked_fast_and_answered_in_the_thread(slack_http_bot: SlackBot) -> None:
    bot = slack_http_bot
    await bot.seed(WIFI, "Wifi guide")
    bot.llm.delay = 2.0
    bot.llm.reply("PurpleElephant42 [1].")
    event = bot.slack.mention("wifi password?", user=USER, channel=CHANNEL)
    sent = time.monotonic()
    status, _, ack_s = await bot.slack.deliver_http(_url(bot), json.dumps(bot.slack.event_callback(event)))
    first = await bot.slack.wait_for(lambda: bot.slack.calls_to("chat.postMessage"), timeout=3.0)
    print(f"\nslack http mode: event→ack {ack_s * 1000:.0f} ms, event→placeholder {(first[0].at - sent) * 1000:.0f} ms")
    assert status == 200 and ack_s < 3.0
    answer = await bot.slack.wait_for(lambda: _answers(bot))
    assert answer[0].args["channel"] == CHANNEL
    assert "PurpleElephant42 [1]" in answer[0].args["blocks"][0]["text"]["text"]
    assert first[0].args["thread_ts"] == event["ts"]


async def test_forged_signature_is_rejected_with_401_and_nothing_happens(slack_http_bot: SlackBot) -> None:
    bot = slack_http_bot
    body = json.dumps(bot.slack.event_callback(bot.slack.mention("wifi?", user=USER, channel=CHANNEL)))
    status, _, _ = await bot.slack.deliver_http(_url(bot), body, secret="not-the-signing-secret")
    assert status == 401
    command = form_body(bot.slack.slash_command("/kb", "scope", user=USER, channel=CHANNEL))
    status, _, _ = await bot.slack.deliver_http(
        _url(bot), command, content_type="application/x-www-form-urlencoded", secret="forged"
    )
    assert status == 401
    await bot.idle()
    assert [c.method for c in bot.slack.calls] == []
    assert await bot.sql("SELECT count(*) FROM processed_events") == [(0,)]


async def test_retried_deliveries_of_one_event_are_acked_but_answered_once(slack_http_bot: SlackBot) -> None:
    bot = slack_http_bot
    await bot.seed(WIFI, "Wifi guide")
    body = json.dumps(bot.slack.event_callback(bot.slack.mention("wifi password?", user=USER, channel=CHANNEL)))
    statuses = [(await bot.slack.deliver_http(_url(bot), body, retry_num=n or None))[0] for n in range(3)]
    assert statuses == [200, 200, 200]
    await bot.slack.wait_for(lambda: _answers(bot))
    await bot.idle()
    assert len(bot.slack.calls_to("chat.postMessage")) == 1
    assert len(bot.llm.chat_requests) == 1


async def test_slash_command_over_http_replies_via_response_url(slack_http_bot: SlackBot) -> None:
    bot = slack_http_bot
    command = bot.slack.slash_command("/kb", "scope", user=USER, channel=CHANNEL)
    status, body, _ = await bot.slack.deliver_http(
        _url(bot), form_body(command), content_type="application/x-www-form-urlencoded"
    )
    assert status == 200 and body == ""
    reply = await bot.slack.wait_for(lambda: bot.slack.responses_to(command["response_url"]))
    assert reply[0].body["text"] == "This channel answers from `default`."
