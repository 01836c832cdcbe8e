"""``lorebot chat``: a terminal conversation with the knowledge base — question, streamed answer, numbered sources.

One conversation per session (``ConversationKey("local", "cli", <session id>)``), so follow-up questions get the
history like a Slack thread does. Input is read on the event loop on purpose: nothing else runs while the user
types, and Ctrl-C / Ctrl-D then end the chat at once instead of leaving a reader thread behind.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import TextIO

from rich.console import Console
from rich.live import Live
from rich.text import Text

from bot.domain import Actor, Answer, ConversationKey, Platform, Question
from bot.errors import LorebotError
from bot.failures import describe_failure
from bot.service import Lorebot
from bot.streaming import final_answer
from bot.terminal import sources_text

WORKSPACE = "cli"
PROMPT = Text("you › ", style="bold cyan")
EXIT_WORDS = frozenset({"exit", "quit", ":q", "/exit", "/quit"})


async def run_chat(
    service: Lorebot, actor: Actor, scopes: Sequence[str], console: Console, *, stream: TextIO | None = None
) -> None:
    """Ask questions typed on ``stream`` (stdin by default) until EOF, Ctrl-C or ``exit``."""
    session = ConversationKey(Platform.LOCAL, WORKSPACE, secrets.token_hex(4))
    intro = f"Ask about your documents (scopes: {', '.join(scopes)}). Empty line skips, 'exit' quits."
    console.print(Text(intro, style="dim"))
    while (line := _read_question(console, stream)) is not None:
        if not line:
            continue
        if line.lower() in EXIT_WORDS:
            break
        try:
            answer = await _stream_answer(service, Question(line, actor, tuple(scopes), session), console)
        except LorebotError as e:
            console.print(Text(describe_failure(e).user_message, style="red"))
            continue
        if answer.citations:
            console.print(sources_text(answer.citations))


def _read_question(console: Console, stream: TextIO | None) -> str | None:
    """The next line without surrounding blanks; None at end of input."""
    try:
        line = console.input(PROMPT, stream=stream)
    except (EOFError, KeyboardInterrupt):
        console.print()
        return None
    if stream is not None and not line:  # readline() gives "" only at end of file
        return None
    return line.strip()


async def _stream_answer(service: Lorebot, question: Question, console: Console) -> Answer:
    """In a terminal, show the answer as it streams, then replace it with the final text (invalid citation markers
    removed). Elsewhere (a pipe, a file) print the final text only: ``Live`` draws nothing there, and it would end
    without a newline, running the next prompt into the answer (rich issue #4192)."""
    if not console.is_terminal:
        answer = await final_answer(service.stream(question))
        console.print(Text(answer.text))
        return answer
    with Live(Text(), console=console, refresh_per_second=8, vertical_overflow="visible") as live:

        async def show(text: str) -> None:
            live.update(Text(text))

        answer = await final_answer(service.stream(question), show)
        live.update(Text(answer.text))
    return answer
