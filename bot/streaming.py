"""Reading an answer stream to its end: the text so far as throttled previews, then the final :class:`Answer`.

Every place that shows an answer while it is written (Slack, Discord, the terminal) and every caller that only
wants the result (:meth:`Lorebot.ask`) reads the stream with :func:`final_answer`, so "the stream ends with the
Answer" is checked in one place.
"""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterable, Awaitable, Callable

from bot.domain import Answer, AnswerDelta

Preview = Callable[[str], Awaitable[None]]
"""Shows the text so far (a platform edit, a terminal update)."""


async def final_answer(
    stream: AsyncIterable[AnswerDelta | Answer],
    preview: Preview | None = None,
    *,
    every_s: float = 0.0,
    last_shown: float = -math.inf,
    clock: Callable[[], float] = time.monotonic,
) -> Answer:
    """Read ``stream`` to its final :class:`Answer` and return it.

    With ``preview``, the text so far (never blank) is shown at most once per ``every_s`` seconds of ``clock``,
    counted from ``last_shown`` (the time something, such as a placeholder, was last shown).
    """
    text, answer = "", None
    async for event in stream:  # to its end, so the stream's own cleanup runs here, not in a finalizer
        if isinstance(event, Answer):
            answer = event
            continue
        text += event.text
        if preview is not None and text.strip() and clock() - last_shown >= every_s:
            last_shown = clock()
            await preview(text)
    if answer is None:
        raise AssertionError("the answer stream always ends with an Answer")
    return answer
