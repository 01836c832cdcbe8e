"""Redaction of e-mail addresses and phone numbers in English and Chinese formats; dates, times, amounts and short
numbers stay."""

from __future__ import annotations

import pytest

from bot.desk.redact import redact


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mail jane.doe+desk@example.co.uk please", "mail [email] please"),
        ("call +1 (555) 010-2030.", "call [phone]."),
        ("UK: 020 7946 0958 or +44 20 7946 0958", "UK: [phone] or [phone]"),
        ("US 555-010-2030 / 555.010.2030", "US [phone] / [phone]"),
        ("手机 138 0013 8000，或 +86 138-0013-8000", "手机 [phone]，或 [phone]"),
        ("座机 (010) 6552 9988 / 010-65529988", "座机 [phone] / [phone]"),
        ("请拨打１３８００１３８０００咨询", "请拨打[phone]咨询"),
        ("邮箱 张三@例子.中国 或 li.si@example.cn", "邮箱 [email] 或 [email]"),
    ],
)
def test_personal_data_is_replaced(text: str, expected: str) -> None:
    assert redact(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "The meeting is on 2024-05-01 at 10:30 in room 1204.",
        "It costs 1,250.00 euros, invoice 4417.",
        "上午9点到下午5点，3楼301室，2026年11月30日",
        "Version 2.4.1 on port 8080",
        "",
    ],
)
def test_dates_times_amounts_and_short_numbers_stay(text: str) -> None:
    assert redact(text) == text


def test_a_huge_text_is_redacted_in_linear_time() -> None:
    text = ("call 020 7946 0958 " + "x" * 100) * 5000
    assert redact(text).count("[phone]") == 5000
