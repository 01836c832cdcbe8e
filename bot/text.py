"""Text helpers shared by indexing and querying, so both sides tokenise Chinese the same way.

Postgres has no Chinese parser: Han characters are indexed as overlapping character bigrams (plus single
characters for one-character runs) with the ``simple`` configuration, next to the English words.
"""

from __future__ import annotations

import re

_WORD = re.compile(r"[^\W_]+")
_CJK_RUN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u3040-\u30ff\uac00-\ud7af]+")


def cjk_runs(text: str) -> list[str]:
    """Maximal runs of CJK characters in ``text``."""
    return _CJK_RUN.findall(text)


def cjk_bigrams(text: str) -> list[str]:
    """Overlapping character bigrams of every CJK run (a one-character run yields itself)."""
    terms: list[str] = []
    for run in cjk_runs(text):
        if len(run) == 1:
            terms.append(run)
        else:
            terms.extend(run[i : i + 2] for i in range(len(run) - 1))
    return terms


def lexemes(text: str) -> str:
    """The extra search terms stored in ``chunks.lexemes`` (space-separated CJK bigrams)."""
    return " ".join(cjk_bigrams(text))


def strip_cjk(text: str) -> str:
    """``text`` with CJK runs replaced by spaces: what the English parser should see in a query."""
    return _CJK_RUN.sub(" ", text)


def words(text: str) -> list[str]:
    """The lowercased words (runs of letters and digits) of ``text`` outside its CJK runs, in order."""
    return _WORD.findall(strip_cjk(text).lower())
