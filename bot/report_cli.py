"""``lorebot report``: what the knowledge base cannot answer, for the operator (an admin: question text shown,
redacted per ``DESK_REDACT_PERSONAL_DATA``). Mounted on the main CLI by :mod:`lorebot.cli`, like ``sources``; it
lives outside :mod:`bot.desk` because it starts the service, which imports the desk."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from bot.cli import console, err_console, load_settings, operator, run_core

if TYPE_CHECKING:
    from bot.desk.report import Report


def report(
    since: Annotated[str, typer.Option(help="Time span up to now: 24h, 7d, 4w")] = "7d",
    scope: Annotated[str | None, typer.Option("--scope", "-s", help="Only questions asked in this scope")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts")] = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="Print CSV (section,name,value,detail)")] = False,
) -> None:
    """Questions asked, answered, not found, 👍/👎, hand-overs, median latency, the unanswered and 👎 questions
    grouped by topic, and the documents cited most and never."""
    from bot.desk.report import parse_since, report_csv, report_payload
    from bot.runtime import running_service

    if as_json and as_csv:
        err_console.print("error: choose one of --json and --csv")
        raise typer.Exit(2)
    settings = load_settings()

    async def run():
        span = parse_since(since)
        async with running_service(settings, with_llm=False, embeds=False) as service:
            return await service.desk.report(operator(), since=span, scope=scope)

    result = run_core(run())
    if as_json:
        print(json.dumps(report_payload(result), default=str, ensure_ascii=False, indent=2))
    elif as_csv:
        sys.stdout.write(report_csv(result))
    else:
        _print(result)


def _print(result: Report) -> None:
    rate = "–" if result.helpful_rate is None else f"{result.helpful_rate:.0%}"
    figures = Table("asked", "answered", "not found", "👍", "👎", "helpful", "handed over", "median latency")
    figures.add_row(
        *map(str, (result.asked, result.answered, result.not_found, result.thumbs_up, result.thumbs_down)),
        rate,
        str(result.escalations),
        f"{result.median_latency_ms:.0f} ms",
    )
    console.print(f"Since {result.since:%Y-%m-%d %H:%M} UTC" + (f" in scope {result.scope}" if result.scope else ""))
    console.print(figures)
    topics = Table("questions", "not found", "👎", "examples", title="Unanswered and 👎 questions by topic")
    for topic in result.topics:
        topics.add_row(str(topic.questions), str(topic.not_found), str(topic.thumbs_down), "\n".join(topic.examples))
    console.print(topics)
    cited = Table("id", "scope", "title", "citations", title="Cited most")
    for document in result.cited_most:
        cited.add_row(str(document.id), document.scope, document.title, str(document.citations))
    console.print(cited)
    never = Table("id", "scope", "title", title=f"Never cited ({result.never_cited_total})")
    for document in result.never_cited:
        never.add_row(str(document.id), document.scope, document.title)
    console.print(never)
