"""SFT errors, part of the Lorebot hierarchy so the CLI reports them like any other failure."""

from __future__ import annotations

from pathlib import Path

from bot.errors import LorebotError


class SFTError(LorebotError):
    """Fine-tuning, evaluation or export could not run (bad config, missing model, failed endpoint)."""

    reason = "fine-tuning failed"


class DatasetFormatError(SFTError):
    """A training file is malformed; names the file and the 1-based line (JSONL) or array item (JSON) at fault."""

    reason = "malformed training data"

    def __init__(self, path: Path | str, line: int, problem: str, *, unit: str = "line") -> None:
        super().__init__(f"{path}: {unit} {line}: {problem}")
        self.path = Path(path)
        self.line = line
        self.problem = problem
