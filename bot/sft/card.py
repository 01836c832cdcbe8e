"""The dataset card: counts per source, split and language plus token-length statistics, as Markdown and JSON."""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Sequence

from bot.sft.example import Example


def card_stats(splits: dict[str, Sequence[Example]], lengths: dict[str, Sequence[int]], unit: str) -> dict:
    """Numbers for the card; ``lengths`` holds one length per example, in ``unit`` (tokens or chars)."""
    stats: dict = {"length_unit": unit, "splits": {}}
    for split, examples in splits.items():
        sizes = sorted(lengths[split])
        stats["splits"][split] = {
            "examples": len(examples),
            "groups": len({e.group for e in examples}),
            "by_source": dict(sorted(Counter(e.source for e in examples).items())),
            "by_language": dict(sorted(Counter(e.lang for e in examples).items())),
            "refusals": sum(1 for e in examples if e.refused),
            "length": _summary(sizes),
        }
    return stats


def _summary(sizes: Sequence[int]) -> dict:
    if not sizes:
        return {}
    return {
        "min": sizes[0],
        "mean": round(statistics.fmean(sizes), 1),
        "p50": sizes[len(sizes) // 2],
        "p95": sizes[min(len(sizes) - 1, int(len(sizes) * 0.95))],
        "max": sizes[-1],
        "total": sum(sizes),
    }


def card_markdown(stats: dict, *, dropped: dict[str, int], settings: dict) -> str:
    """A short human-readable card: one table per split, what was dropped and the build settings."""
    lines = ["# Dataset card", "", f"Lengths are in {stats['length_unit']} of the rendered chat template.", ""]
    for split, info in stats["splits"].items():
        lines += [f"## {split}: {info['examples']} examples from {info['groups']} source documents", ""]
        lines += ["| source | examples |", "|---|---:|"]
        lines += [f"| {name} | {count} |" for name, count in info["by_source"].items()]
        lines += ["", "| language | examples |", "|---|---:|"]
        lines += [f"| {name} | {count} |" for name, count in info["by_language"].items()]
        length = info["length"]
        if length:
            lines += [
                "",
                f"Refusal examples (answer not in the sources): {info['refusals']}",
                "",
                "| min | mean | p50 | p95 | max | total |",
                "|---:|---:|---:|---:|---:|---:|",
                f"| {length['min']} | {length['mean']} | {length['p50']} | {length['p95']} | {length['max']} "
                f"| {length['total']} |",
            ]
        lines.append("")
    lines += ["## Dropped", "", "| reason | examples |", "|---|---:|"]
    lines += [f"| {reason} | {count} |" for reason, count in dropped.items()]
    lines += ["", "## Build settings", "", "```"]
    lines += [f"{key} = {value}" for key, value in settings.items()]
    lines += ["```", ""]
    return "\n".join(lines)
