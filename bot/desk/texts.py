"""The desk's own messages in a channel's language (English by default, Chinese). ``{channel}`` and ``{group}``
are filled in by the adapter with the platform's mention syntax."""

from __future__ import annotations

TEXTS: dict[str, dict[str, str]] = {
    "en": {
        "ask_person": "🙋 Ask a person",
        "handed_over": "I've asked {group} in {channel}; a person will answer you here.",
        "already_handed_over": "This question is already with {group} in {channel}; a person will answer you here.",
        "not_found_handed_over": "I couldn't find this in the knowledge base, so I've asked {group} in {channel}.",
        "not_found": "I could not find this in the knowledge base.",
    },
    "zh": {
        "ask_person": "🙋 转人工",
        "handed_over": "我已请 {channel} 的 {group} 帮忙，稍后会有人在这里回复您。",
        "already_handed_over": "这个问题已转给 {channel} 的 {group}，稍后会有人在这里回复您。",
        "not_found_handed_over": "知识库里没有找到答案，我已请 {channel} 的 {group} 帮忙。",
        "not_found": "知识库里没有找到这个问题的答案。",
    },
}


def text(language: str, key: str, **values: str) -> str:
    """The message ``key`` in ``language`` (English when unset or unknown), filled with ``values``."""
    return TEXTS.get(language or "en", TEXTS["en"])[key].format(**values)
