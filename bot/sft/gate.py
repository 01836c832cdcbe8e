"""The promotion gate: a candidate serves only if it beats the current adapter by a margin on the primary
metric and loses no more than a tolerance on any gated metric, in any language, in the real loop or on the
regression set of past 👍 questions.

Scores are compared in points: F1 and exact match are already percentages, rates (0-1) are multiplied by 100.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from bot.sft.config import CycleConfig

RATES = frozenset(
    {"gold_contained", "gold_cited", "citation_correct", "false_refusal", "refusal_accuracy", "wrong_refusal"}
)
LOWER_IS_BETTER = frozenset({"false_refusal", "wrong_refusal"})
PRIMARY_SUITE = "loop"

Scores = dict[str, dict[str, float]]
"""Scores of one model on one suite, by language (``all``, ``en``, ``zh``, …) then metric."""


@dataclass(frozen=True, slots=True)
class Row:
    """One comparison: ``gain`` is the candidate's improvement in points (positive = better)."""

    suite: str
    lang: str
    metric: str
    current: float
    candidate: float
    gain: float
    needed: float  # the least gain that passes: +margin on the primary row, -tolerance elsewhere
    questions: int
    gating: bool  # False: too few questions in this language to decide anything
    passed: bool


@dataclass(frozen=True, slots=True)
class Decision:
    promote: bool
    reasons: tuple[str, ...]
    rows: tuple[Row, ...]

    def to_dict(self) -> dict:
        return {"promote": self.promote, "reasons": list(self.reasons), "rows": [asdict(r) for r in self.rows]}


def points(metric: str, value: float) -> float:
    return value * 100 if metric in RATES else value


def decide(current: dict[str, Scores], candidate: dict[str, Scores], config: CycleConfig) -> Decision:
    """Compare ``candidate`` with ``current`` suite by suite (``loop``, ``regression``)."""
    rows = []
    for suite in current:
        for lang, scores in current[suite].items():
            theirs = candidate[suite].get(lang, {})
            count = int(scores.get("questions", scores.get("answerable", 0) + scores.get("unanswerable", 0)))
            for metric in config.metrics:
                before, after = _score(scores, metric), _score(theirs, metric)
                if math.isnan(before) or math.isnan(after):
                    continue
                gain = points(metric, after) - points(metric, before)
                gain = (-gain if metric in LOWER_IS_BETTER else gain) + 0.0  # + 0.0: no "-0.00" in the table
                primary = (suite, lang, metric) == (PRIMARY_SUITE, "all", config.primary_metric)
                needed = config.margin if primary else -config.tolerance
                gating = primary or count >= config.min_questions
                rows.append(
                    Row(suite, lang, metric, before, after, round(gain, 3), needed, count, gating,
                        gain >= needed - 1e-9)
                )  # fmt: skip
    reasons = _reasons(rows, config)
    return Decision(not reasons, tuple(reasons), tuple(rows))


def _score(scores: dict[str, float], metric: str) -> float:
    """The metric, NaN when absent or null (no questions behind it)."""
    value = scores.get(metric)
    return math.nan if value is None else float(value)


def _reasons(rows: list[Row], config: CycleConfig) -> list[str]:
    primary = [r for r in rows if (r.suite, r.lang, r.metric) == (PRIMARY_SUITE, "all", config.primary_metric)]
    if not primary:
        return [f"no {config.primary_metric} score in the real loop: nothing to decide on"]
    reasons = []
    for row in rows:
        if row.gating and not row.passed:
            what = "gains" if row is primary[0] else "changes"
            reasons.append(
                f"{row.suite} {row.lang} {row.metric} {what} {row.gain:+.2f} points (needs {row.needed:+.2f})"
            )
    return reasons


def table(decision: Decision) -> str:
    """The decision table in Markdown."""
    lines = [
        "| suite | lang | metric | current | candidate | gain (pts) | needs | questions | result |",
        "|---|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in decision.rows:
        result = ("pass" if r.passed else "FAIL") if r.gating else "not gating"
        lines.append(
            f"| {r.suite} | {r.lang} | {r.metric} | {r.current:.3f} | {r.candidate:.3f} | {r.gain:+.2f} | "
            f"{r.needed:+.2f} | {r.questions} | {result} |"
        )
    verdict = "PROMOTE" if decision.promote else "REJECT: " + "; ".join(decision.reasons)
    return "\n".join([*lines, "", verdict])
