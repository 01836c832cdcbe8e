"""What admins are told when another adapter starts serving: a platform-neutral notice with the metric deltas
the gate measured. Delivery (Slack, Discord) renders :class:`Notice`; nothing here knows a platform.
"""

from __future__ import annotations

from bot.notices import Notice
from bot.sft.gate import LOWER_IS_BETTER, points
from bot.storage.adapters import AdapterRow

SHOWN = ("token_f1", "gold_cited", "refusal_accuracy", "false_refusal", "wrong_refusal")


def serving_notice(action: str, previous: AdapterRow | None, current: AdapterRow) -> Notice:
    """The notice for ``current`` starting to serve after ``previous`` (promotion or rollback)."""
    before = previous.name if previous else "the base model"
    if action == "rolled_back":
        return Notice(f"Lorebot rolled back to adapter {current.name}", (f"{before} no longer serves.",))
    lines = [f"Replaces {before}; promoted by {current.promoted_by}."]
    lines += deltas(current.metrics)
    return Notice(f"Lorebot now answers with adapter {current.name}", tuple(lines))


def deltas(recorded: dict) -> list[str]:
    """``suite metric: before → after (±points)`` for every language-wide score the cycle recorded."""
    lines = []
    for suite, scores in recorded.get("candidate", {}).items():
        baseline = recorded.get("current", {}).get(suite, {}).get("all", {})
        for metric in SHOWN:
            after, before = scores.get("all", {}).get(metric), baseline.get(metric)
            if after is None or before is None or after != after or before != before:  # absent or NaN
                continue
            gain = points(metric, after) - points(metric, before)
            improved = -gain if metric in LOWER_IS_BETTER else gain
            verdict = "better" if improved > 0 else "worse" if improved < 0 else "same"
            lines.append(f"{suite} {metric}: {before:.3f} → {after:.3f} ({gain:+.1f} pts, {verdict})")
    return lines
