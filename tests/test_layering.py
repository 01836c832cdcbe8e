"""The layering rule, machine-checked: the import-linter contracts in ``pyproject.toml`` hold.

lorebot (the application) → connectors (one per platform, independent of each other, using only the service's
public API) → bot (the core: entry points → service → pipeline stages → storage); no import cycles.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from importlinter.cli import lint_imports

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def test_import_contracts_hold(capsys: pytest.CaptureFixture[str]) -> None:
    exit_code = lint_imports(config_filename=str(PYPROJECT), no_cache=True)

    report = capsys.readouterr().out
    assert exit_code == 0, report
    assert "0 broken" in report
