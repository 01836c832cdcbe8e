"""How the bot behaves in a channel (mention / questions / threads) and what a scope adds to its answers."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from bot.desk.detector import is_question
from bot.errors import InvalidInput


class ChannelMode(StrEnum):
    MENTION = "mention"
    """Answer mentions, and follow-ups in threads the bot is in (the default)."""
    QUESTIONS = "questions"
    """Also answer every message that is a question, without a mention (see :mod:`bot.desk.detector`)."""
    THREADS = "threads"
    """Answer only follow-ups in threads the bot is already in."""


LANGUAGES = ("", "en", "zh")
"""A channel's language for the desk's own messages; "" = English."""


@dataclass(frozen=True, slots=True)
class ChannelPolicy:
    mode: ChannelMode = ChannelMode.MENTION
    language: str = ""


@dataclass(frozen=True, slots=True)
class HandoverTarget:
    """Where a scope's questions go to people on one platform: a channel and the group to mention there."""

    channel: str
    support_group: str = ""


@dataclass(frozen=True, slots=True)
class ScopeDesk:
    """What a scope adds to answers: a footer, and (when set) an "Ask a person" hand-over."""

    scope: str
    footer: str = ""
    target: HandoverTarget | None = None


def parse_mode(value: str) -> ChannelMode:
    """The mode named by ``value``; raises :class:`InvalidInput` naming the valid ones."""
    try:
        return ChannelMode(value.strip().lower())
    except ValueError:
        valid = ", ".join(mode.value for mode in ChannelMode)
        raise InvalidInput(f"unknown channel mode {value!r}; use one of {valid}") from None


def parse_language(value: str) -> str:
    language = value.strip().lower()
    if language not in LANGUAGES:
        raise InvalidInput(f"unknown language {value!r}; use en or zh")
    return language


def should_answer(policy: ChannelPolicy, text: str, *, mentioned: bool, in_bot_thread: bool) -> bool:
    """Whether a channel message gets an answer under ``policy``. Adapters write mentions of other people as
    ``@name`` in ``text`` so the detector can tell a message addressed to someone else."""
    if policy.mode is ChannelMode.THREADS:
        return in_bot_thread
    if mentioned or in_bot_thread:
        return True
    return policy.mode is ChannelMode.QUESTIONS and is_question(text)
