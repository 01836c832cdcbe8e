"""The answering chain (LangChain LCEL): question + history → search query → retrieve → numbered context → LLM.

Two runnables are assembled by :func:`build_chain` from plain typed functions:

- ``ground``: ``AnswerRequest → Grounding`` — when there is history, a condense call turns (history, question)
  into a standalone search query; then the retriever finds the passages.
- ``generate``: ``Grounding → str`` — the prompt from :mod:`bot.answer.prompt` → ``ChatOpenAI`` → text,
  streamed token by token.

:class:`Answerer` runs them, skips the LLM entirely when retrieval found nothing (no invented answers), parses
citations, and wraps every endpoint failure in :class:`~bot.errors.AnswerError` — a broken stream too, since what
the endpoint sends is never the user's fault. One deadline (``llm_deadline_s``) bounds each answer, across
condensing, every attempt, every Retry-After wait and the whole stream, so an endpoint that is down, hangs,
trickles keep-alives or asks to come back in a minute fails within that time instead of blocking a chat reply.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Protocol, TypeVar

import httpx
import openai
from langchain_core.output_parsers import StrOutputParser
from langchain_core.runnables import Runnable, RunnableLambda
from langchain_openai import ChatOpenAI

from bot.answer.citations import is_not_found, resolve_citations, strip_markers
from bot.answer.focus import focus_passages
from bot.answer.prompt import CONDENSE_PROMPT, NOT_FOUND_ANSWER, build_messages
from bot.domain import Answer, AnswerDelta, Passage, Turn
from bot.errors import AnswerError, ConfigError, EmptyAnswer, InvalidQuestion
from bot.settings import Settings
from bot.streaming import final_answer
from bot.validation import question_text

log = logging.getLogger(__name__)

LLM_FAILURES = (openai.OpenAIError, httpx.HTTPError, TimeoutError, ValueError, TypeError, KeyError, AttributeError)
"""What an endpoint can make the client raise: API and HTTP errors, timeouts, and — since the client parses stream
chunks without checking their shape — ``ValueError`` (a ``data:`` line that is not JSON, no chunk at all), and
``TypeError`` / ``KeyError`` / ``AttributeError`` (JSON of the wrong shape)."""
T = TypeVar("T")
CONDENSE_ANSWER_CHARS = 600
"""History answers are clipped in the condense prompt: the query needs their topic, not their full text."""


class PassageSearch(Protocol):
    """What the chain needs from :class:`bot.retrieval.Retriever`."""

    async def search(self, query: str, scopes: Sequence[str], k: int) -> list[Passage]: ...


@dataclass(frozen=True, slots=True)
class AnswerRequest:
    question: str
    scopes: tuple[str, ...]
    history: tuple[Turn, ...] = ()
    language: str = ""  # the channel's answer language; "" = the question's own


@dataclass(frozen=True, slots=True)
class Grounding:
    """A request with the passages retrieved for it: everything the generator's prompt is built from."""

    request: AnswerRequest
    search_query: str
    passages: tuple[Passage, ...] = ()
    timings: dict[str, float] = field(default_factory=dict)
    rewritten: str = ""  # the follow-up as the condense step wrote it standalone; "" for a first question


@dataclass(frozen=True, slots=True)
class Chain:
    ground: Runnable[AnswerRequest, Grounding]
    generate: Runnable[Grounding, str]


# --- plain steps ------------------------------------------------------------------------------------------


def condense_messages(request: AnswerRequest) -> list[dict[str, str]]:
    """The condense prompt: the transcript and the last question, asking for one standalone query."""
    lines = []
    for turn in request.history:
        answer = strip_markers(turn.answer)[:CONDENSE_ANSWER_CHARS]
        lines.append(f"User: {turn.question.strip()}\nAssistant: {answer}")
    transcript = "\n".join(lines)
    return [
        {"role": "system", "content": CONDENSE_PROMPT},
        {"role": "user", "content": f"Conversation:\n{transcript}\n\nLast question: {request.question}"},
    ]


def condensed_query(text: str) -> str:
    """The model's first non-empty line, without quotes or a 'Query:' label."""
    for line in text.splitlines():
        line = line.strip().strip("\"'“”").strip()
        if line.lower().startswith("query:"):
            line = line[len("query:") :].strip()
        if line:
            return line
    return ""


def original_question(request: AnswerRequest) -> str:
    return request.question


def search_query(condensed: str, question: str) -> str:
    """The condensed query followed by the question itself.

    The condensed query resolves references to earlier turns; the question keeps its own words, so retrieval
    still works when a small model condenses badly (drops the keywords, or answers in another language).
    """
    if not condensed or question in condensed:
        return condensed or question
    return f"{condensed} {question}"


async def add_search_query(request: AnswerRequest, *, condense: Runnable[AnswerRequest, str]) -> Grounding:
    """Condense only when there is history: a first question is already standalone (and costs no LLM call)."""
    if not request.history:
        return Grounding(request, request.question)
    started = time.perf_counter()
    condensed = condensed_query(await condense.ainvoke(request))
    query = search_query(condensed, request.question)
    log.debug("search query after condensing: %s", query)
    return Grounding(request, query, timings={"condense_ms": _ms_since(started)}, rewritten=condensed)


async def retrieve(grounding: Grounding, *, retriever: PassageSearch, k: int, sentences: int) -> Grounding:
    """The ``k`` passages found for the search query, cut to their ``sentences`` most relevant sentences."""
    started = time.perf_counter()
    passages = await retriever.search(grounding.search_query, grounding.request.scopes, k)
    timings = {**grounding.timings, "retrieval_ms": _ms_since(started)}
    return replace(grounding, passages=focus_passages(grounding.search_query, passages, sentences), timings=timings)


def answer_messages(grounding: Grounding, *, with_history: bool = True) -> list[dict[str, str]]:
    """The answer prompt. ``with_history=False`` leaves the earlier turns out and asks the follow-up as the condense
    step rewrote it ("And on Sundays?" → "What are the support hours on Sundays?"), unless that is no question
    (a small model's condensing may shrink to a keyword): the earlier turns still shaped the search query."""
    request = grounding.request
    if with_history:
        return build_messages(request.question, grounding.passages, request.history, request.language)
    rewritten = grounding.rewritten if grounding.rewritten.endswith(("?", "？")) else ""
    return build_messages(rewritten or request.question, grounding.passages, (), request.language)


# --- assembly -----------------------------------------------------------------------------------------------


def chat_model(settings: Settings) -> ChatOpenAI:
    """The OpenAI-compatible client; timeouts and retries come from settings."""
    if not settings.llm_base_url:
        raise ConfigError("LLM_BASE_URL is empty: start the embedded local model or set LLM_BASE_URL")
    return ChatOpenAI(
        base_url=settings.llm_base_url,
        model=settings.llm_model,
        api_key=settings.llm_api_key,
        timeout=httpx.Timeout(settings.llm_timeout_s, connect=settings.llm_connect_timeout_s),
        max_retries=settings.llm_max_retries,
        temperature=settings.llm_temperature,
        max_tokens=settings.llm_max_tokens,
        streaming=True,
        stream_chunk_timeout=settings.llm_timeout_s,  # keep-alive comments alone do not count as an answer
    )


def build_chain(settings: Settings, retriever: PassageSearch) -> Chain:
    """Compose the steps. HTTP retries live in the client (``llm_max_retries``, honouring Retry-After); a
    condense request the endpoint rejects (e.g. history too long) falls back to searching the question as asked.
    """
    model = chat_model(settings)
    condense = (RunnableLambda(condense_messages) | model | StrOutputParser()).with_fallbacks(
        [RunnableLambda(original_question)], exceptions_to_handle=(openai.BadRequestError,)
    )
    ground = RunnableLambda(partial(add_search_query, condense=condense)) | RunnableLambda(
        partial(retrieve, retriever=retriever, k=settings.retrieval_k, sentences=settings.context_sentences)
    )
    prompt = RunnableLambda(partial(answer_messages, with_history=settings.answer_history))
    generate = prompt | model | StrOutputParser()
    return Chain(ground=ground, generate=generate)


# --- running ------------------------------------------------------------------------------------------------


class Answerer:
    """Answers questions from the knowledge base, streaming or complete."""

    def __init__(self, settings: Settings, retriever: PassageSearch) -> None:
        self.settings = settings
        self.retriever = retriever
        self._chain: Chain | None = None

    @property
    def chain(self) -> Chain:
        """Built on first use, so a service that never answers (search, ingest) needs no LLM endpoint."""
        if self._chain is None:
            self._chain = build_chain(self.settings, self.retriever)
        return self._chain

    async def answer(
        self, question: str, scopes: Sequence[str], history: Sequence[Turn] = (), *, language: str = ""
    ) -> Answer:
        """The complete form of :meth:`stream`."""
        return await final_answer(self.stream(question, scopes, history, language=language))

    async def stream(
        self, question: str, scopes: Sequence[str], history: Sequence[Turn] = (), *, language: str = ""
    ) -> AsyncIterator[AnswerDelta | Answer]:
        """Yield :class:`AnswerDelta` pieces as the model writes, then the final :class:`Answer`.

        The deltas are the raw model text; the final answer's text has invalid citation markers removed, so
        show it in place of the streamed text. Raises ``InvalidQuestion`` for an empty or oversized question,
        :class:`ConfigError` when no LLM endpoint is set, :class:`AnswerError` when the LLM endpoint fails or
        times out, ``RetrievalError`` from the retriever.
        """
        request = _request(question, scopes, history, language)
        chain = self.chain
        deadline = _Deadline(self.settings)
        try:
            grounding = await deadline.wait_for(chain.ground.ainvoke(request))
        except LLM_FAILURES as e:
            raise _llm_error(e, self.settings) from e
        if not grounding.passages:
            log.info("nothing relevant for the question in scopes=%s: not-found answer, no LLM call", request.scopes)
            yield AnswerDelta(NOT_FOUND_ANSWER)
            yield self._final(grounding, NOT_FOUND_ANSWER, found=False)
            return

        started = time.perf_counter()
        pieces: list[str] = []
        timings = dict(grounding.timings)
        try:
            async with aclosing(chain.generate.astream(grounding)) as stream:
                while (piece := await deadline.wait_for(anext(stream, None))) is not None:
                    if not piece:
                        continue
                    timings.setdefault("first_token_ms", _ms_since(started))
                    pieces.append(piece)
                    yield AnswerDelta(piece)
        except LLM_FAILURES as e:
            raise _llm_error(e, self.settings) from e
        timings["llm_ms"] = _ms_since(started)
        text = "".join(pieces).strip()
        if not text:
            raise EmptyAnswer("the language model returned an empty answer")
        log.info(
            "generated answer chars=%d passages=%d llm_ms=%.0f first_token_ms=%.0f",
            len(text), len(grounding.passages), timings["llm_ms"], timings["first_token_ms"],
        )  # fmt: skip
        yield self._final(replace(grounding, timings=timings), text, found=True)

    def _final(self, grounding: Grounding, text: str, *, found: bool) -> Answer:
        if found and is_not_found(text):
            text, citations, found = strip_markers(text), (), False
        elif found:
            text, citations = resolve_citations(text, grounding.passages)
        else:
            citations = ()
        return Answer(
            text=text,
            citations=citations,
            passages=grounding.passages,
            found=found,
            model=self.settings.llm_model,
            search_query=grounding.search_query,
            timings=grounding.timings,
        )


class _Deadline:
    """What is left of one answer's ``llm_deadline_s``. Only the time spent waiting on the chain is spent from it:
    the adapter's own work between two streamed pieces (posting an update) is neither counted nor cancelled."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._left = settings.llm_deadline_s

    async def wait_for(self, step: Awaitable[T]) -> T:
        """Await ``step``; raise :class:`AnswerError` when the deadline passes first."""
        started = time.monotonic()
        try:
            async with asyncio.timeout(self._left) as timeout:
                return await step
        except TimeoutError as e:
            if not timeout.expired():
                raise
            endpoint, seconds = self._settings.llm_base_url, self._settings.llm_deadline_s
            raise AnswerError(
                f"the language model at {endpoint} gave no answer within the {seconds:g} s deadline (LLM_DEADLINE_S)"
            ) from e
        finally:
            self._left = max(0.0, self._left - (time.monotonic() - started))


def _request(question: str, scopes: Sequence[str], history: Sequence[Turn], language: str) -> AnswerRequest:
    question = question_text(question)
    if not scopes:
        raise InvalidQuestion("no knowledge scope to search")
    return AnswerRequest(question, tuple(scopes), tuple(history), language)


def _llm_error(error: Exception, settings: Settings) -> AnswerError:
    """One clear message per failure class; never the API key, always the endpoint that failed."""
    endpoint = settings.llm_base_url
    if isinstance(error, openai.APITimeoutError | httpx.TimeoutException | TimeoutError):
        return AnswerError(f"the language model at {endpoint} did not answer within {settings.llm_timeout_s:g} s")
    if isinstance(error, openai.APIConnectionError | httpx.TransportError):
        return AnswerError(f"cannot reach the language model at {endpoint}: {error}")
    if isinstance(error, openai.APIStatusError):
        return AnswerError(f"the language model at {endpoint} answered HTTP {error.status_code}: {error.message}")
    return AnswerError(f"the language model at {endpoint} sent something unusable: {type(error).__name__}: {error}")


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)
