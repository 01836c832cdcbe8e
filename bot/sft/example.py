"""One training example: OpenAI-style chat messages plus where it came from.

``group`` names the source document (article, instruction, rated message) so the train/eval split never puts
pieces of one document on both sides.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from bot.answer.prompt import NOT_FOUND_ANSWER

ROLES = frozenset({"system", "user", "assistant"})
_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


@dataclass(frozen=True, slots=True)
class Example:
    """A chat example ready for ``{"messages": [...]}`` JSONL; ``qa`` holds gold data for RAG evaluation."""

    messages: tuple[dict[str, str], ...]
    source: str
    group: str
    lang: str = "en"
    qa: dict | None = field(default=None, compare=False)

    @property
    def refused(self) -> bool:
        """The reply is the not-found answer (the sources do not hold one)."""
        return self.messages[-1]["content"] == NOT_FOUND_ANSWER

    def text(self) -> str:
        return "\n".join(message["content"] for message in self.messages)

    def to_record(self) -> dict:
        return {"messages": [dict(message) for message in self.messages]}


def detect_lang(text: str) -> str:
    """``zh`` when CJK characters make up a good share of the letters, else ``en``; enough for a dataset card."""
    letters = [char for char in text if char.isalpha()]
    if not letters:
        return "en"
    return "zh" if sum(1 for char in letters if _CJK.match(char)) / len(letters) > 0.2 else "en"
