"""How an adapter's prompts are built, kept next to its weights, so that the embedded model serves every adapter the
way it was trained and measured, whatever the global defaults.

- ``context_sentences`` (:mod:`bot.answer.focus`): the passage format of its training data. An adapter trained on
  passages cut to their most relevant sentences reads whole passages worse, and the other way round.
  ``lorebot sft dataset`` writes the file into the dataset folder, ``lorebot sft train`` copies it into the adapter,
  ``lorebot sft export`` along with it.
- ``answer_history``: whether the answer prompt carries a conversation's earlier turns (``ANSWER_HISTORY``), or asks
  the follow-up as the condense step rewrote it, alone. A small model may copy an earlier answer; a real-loop
  evaluation with follow-ups (``lorebot sft eval --follow-up``) tells. ``lorebot sft dataset`` writes the dataset's
  own ``answer_history``; the adapter's maintainer may change it.

An adapter without the file is served with whole passages and the history.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from bot.errors import ConfigError

FORMAT_FILE = "lorebot_format.json"


@dataclass(frozen=True, slots=True)
class AdapterFormat:
    """How prompts show passages (the ``context_sentences`` most relevant sentences; 0: whole) and whether answers
    see earlier turns."""

    context_sentences: int = 0
    answer_history: bool = True

    @classmethod
    def read(cls, folder: Path | None) -> AdapterFormat:
        """The format declared in ``folder`` (a dataset or an adapter folder); the defaults when none is.
        Raises :class:`ConfigError` for a file that is not a format."""
        path = folder / FORMAT_FILE if folder is not None else None
        if path is None or not path.is_file():
            return cls()
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise ConfigError(f"{path} is not an adapter format file: {e}") from e
        unknown = set(data) - {f.name for f in fields(cls)} if isinstance(data, dict) else {"(not an object)"}
        if unknown:
            raise ConfigError(f"{path} is not an adapter format file: unknown {', '.join(sorted(unknown))}")
        sentences, history = data.get("context_sentences", 0), data.get("answer_history", True)
        if not isinstance(sentences, int) or isinstance(sentences, bool) or sentences < 0:
            raise ConfigError(f"{path}: context_sentences must be a whole number ≥ 0, got {sentences!r}")
        if not isinstance(history, bool):
            raise ConfigError(f"{path}: answer_history must be true or false, got {history!r}")
        return cls(context_sentences=sentences, answer_history=history)

    def to_json(self) -> str:
        return json.dumps(asdict(self)) + "\n"

    def write(self, folder: Path) -> None:
        (folder / FORMAT_FILE).write_text(self.to_json(), encoding="utf-8")
