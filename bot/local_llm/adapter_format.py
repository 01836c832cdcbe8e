"""The prompt format an adapter was trained on, kept next to its weights, so that the embedded model serves every
adapter the way its training data showed passages (train = serve) whatever the global default.

Today that is one setting, ``context_sentences`` (:mod:`bot.answer.focus`): an adapter trained on passages cut to
their most relevant sentences reads whole passages worse, and the other way round. ``lorebot sft dataset`` writes
the file into the dataset folder, ``lorebot sft train`` copies it into the adapter, ``lorebot sft export`` along
with it; an adapter without one was trained on whole passages.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from bot.errors import ConfigError

FORMAT_FILE = "lorebot_format.json"


@dataclass(frozen=True, slots=True)
class AdapterFormat:
    """How prompts showed passages in training: the ``context_sentences`` most relevant sentences (0: whole)."""

    context_sentences: int = 0

    @classmethod
    def read(cls, folder: Path | None) -> AdapterFormat:
        """The format declared in ``folder`` (a dataset or an adapter folder); whole passages when none is.
        Raises :class:`ConfigError` for a file that is not a format."""
        path = folder / FORMAT_FILE if folder is not None else None
        if path is None or not path.is_file():
            return cls()
        try:
            sentences = json.loads(path.read_text(encoding="utf-8"))["context_sentences"]
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ConfigError(f"{path} is not an adapter format file: {e}") from e
        if not isinstance(sentences, int) or isinstance(sentences, bool) or sentences < 0:
            raise ConfigError(f"{path}: context_sentences must be a whole number ≥ 0, got {sentences!r}")
        return cls(context_sentences=sentences)

    def to_json(self) -> str:
        return json.dumps(asdict(self)) + "\n"

    def write(self, folder: Path) -> None:
        (folder / FORMAT_FILE).write_text(self.to_json(), encoding="utf-8")
