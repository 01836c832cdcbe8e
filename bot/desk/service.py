"""The desk's operations on behalf of an :class:`~bot.domain.Actor`: channel behaviour and scope settings (admins,
audited), hand-over of an answered question to people, saving a person's answer as curated knowledge (admins or
the scope's supporters, audited; nothing is saved without that explicit action), and the report.

Settings from chat (stored in Postgres) win over the ``DESK_*`` settings, which win over the defaults.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import timedelta

from psycopg_pool import AsyncConnectionPool

from bot.access import AuditTrail, is_admin
from bot.desk.policy import ChannelMode, ChannelPolicy, HandoverTarget, ScopeDesk, parse_language, parse_mode
from bot.desk.redact import redact
from bot.desk.report import Report, build_report
from bot.desk.texts import text
from bot.domain import Actor, Answer, IngestResult, Question
from bot.embeddings import Embedder
from bot.errors import InvalidInput, NotFound
from bot.settings import Settings
from bot.storage import desk as store
from bot.validation import check_actor, clean_text

log = logging.getLogger(__name__)

REASONS = ("not_found", "thumbs_down", "asked")
MAX_FOOTER_CHARS = 300
MAX_SAVED_ANSWER_CHARS = 8000
TITLE_CHARS = 80


def saved_document_text(question: str, answer: str) -> str:
    """The text of a saved answer's document (and of its SFT example's source)."""
    return f"Question: {question}\n\nAnswer: {answer}"


@dataclass(frozen=True, slots=True)
class Handover:
    """A question handed over to people: what to post in ``target.channel`` and where the asker is."""

    escalation_id: int
    created: bool
    """False when the question was already handed over (nothing new is posted)."""
    reason: str
    question: str
    answer: str
    found: bool
    sources: tuple[str, ...]
    asker: str
    workspace: str
    channel: str
    thread: str
    target: HandoverTarget
    language: str


class NoHandover(NotFound):
    """The scope has no hand-over channel on this platform: automatic hand-overs (not found, 👎) are skipped."""


Supporter = Callable[[str], Awaitable[bool]]
"""Whether the acting person belongs to a support group (Slack user group, Discord role), asked by the adapter."""

AddText = Callable[..., Awaitable[IngestResult]]
"""The service's audited ``add_text``: a saved answer is stored like any other document."""


@dataclass(frozen=True, slots=True)
class Decoration:
    footer: str
    ask_person: str | None
    """The button's label; None when the scope has no hand-over on the platform."""
    language: str

    def shown(self, answer: Answer) -> Answer:
        """The answer as the channel shows it: "not found" in the channel's language (the record keeps the
        model-facing English text)."""
        if answer.found or self.language in ("", "en"):
            return answer
        return replace(answer, text=text(self.language, "not_found"))


class Desk:
    def __init__(
        self, pool: AsyncConnectionPool, settings: Settings, embedder: Embedder, audit: AuditTrail, add_text: AddText
    ) -> None:
        self._pool = pool
        self._settings = settings
        self._embedder = embedder
        self._audit = audit
        self._add_text = add_text

    # --- channel behaviour and scope settings ----------------------------------------------------------

    async def policy(self, platform: str, workspace: str, channel: str) -> ChannelPolicy:
        stored = await store.channel(self._pool, platform, workspace, channel)
        if stored:
            return ChannelPolicy(ChannelMode(stored[0]), stored[1])
        for key in (f"{platform}:{workspace}:{channel}", f"{platform}:{workspace}", platform):
            mode = self._settings.desk_channel_modes.get(key)
            if mode:
                return ChannelPolicy(ChannelMode(mode))
        return ChannelPolicy()

    async def set_policy(
        self,
        actor: Actor,
        platform: str,
        workspace: str,
        channel: str,
        *,
        mode: str | None = None,
        language: str | None = None,
    ) -> ChannelPolicy:
        """Change a channel's mode and/or language (admins only, audited); raises ``InvalidInput`` for unknown ones."""
        target = f"{platform}:{workspace}:{channel}"
        async with self._audit.admin_action(actor, "desk_channel", target=target) as entry:
            current = await self.policy(platform, workspace, channel)
            policy = ChannelPolicy(
                parse_mode(mode) if mode is not None else current.mode,
                parse_language(language) if language is not None else current.language,
            )
            await store.set_channel(
                self._pool, platform, workspace, channel, mode=policy.mode.value, language=policy.language, by=actor.ref
            )
            entry.detail.update(mode=policy.mode.value, language=policy.language)
        return policy

    async def scope_desk(self, scope: str, platform: str) -> ScopeDesk:
        footer = await store.footer(self._pool, scope)
        if footer is None:
            footer = self._settings.desk_footers.get(scope, "")
        stored = await store.handover_target(self._pool, scope, platform)
        configured = stored or tuple(self._settings.desk_handover.get(f"{platform}:{scope}", ()))
        target = HandoverTarget(configured[0], configured[1] if len(configured) > 1 else "") if configured else None
        return ScopeDesk(scope, footer, target)

    async def set_footer(self, actor: Actor, scope: str, footer: str) -> None:
        """Set (or with "" clear) the scope's answer footer (admins only, audited)."""
        footer = clean_text(" ".join(footer.split()))
        if len(footer) > MAX_FOOTER_CHARS:
            raise InvalidInput(f"the footer is {len(footer)} characters; at most {MAX_FOOTER_CHARS}")
        async with self._audit.admin_action(actor, "desk_footer", target=scope) as entry:
            await store.set_footer(self._pool, scope, footer, by=actor.ref)
            entry.detail.update(footer=footer)

    async def set_handover(self, actor: Actor, scope: str, channel: str, support_group: str) -> None:
        """Where ``scope``'s questions go to people on the actor's platform (admins only, audited)."""
        channel, support_group = clean_text(channel.strip()), clean_text(support_group.strip())
        if not channel or len(channel) > 100 or len(support_group) > 100:
            raise InvalidInput("give the hand-over channel (and optionally the group to mention)")
        async with self._audit.admin_action(actor, "desk_handover", target=scope) as entry:
            await store.set_handover_target(self._pool, scope, actor.platform, channel, support_group, by=actor.ref)
            entry.detail.update(channel=channel, support_group=support_group)

    # --- hand-over ----------------------------------------------------------------------------------------

    async def hand_over(self, actor: Actor, message_id: int, reason: str) -> Handover:
        """Record that answer ``message_id`` goes to its scope's people; raises :class:`NotFound` for an unknown
        answer (or one from another platform) and when the scope has no hand-over channel on this platform."""
        if reason not in REASONS:
            raise ValueError(f"unknown hand-over reason {reason!r}")
        check_actor(actor)
        asked = await store.asked_message(self._pool, message_id)
        if asked is None or asked.platform != actor.platform:
            raise NotFound(f"no answer {message_id} on {actor.platform}")
        scope = asked.scopes[0]
        target = (await self.scope_desk(scope, actor.platform)).target
        if target is None:
            raise NoHandover(f"scope {scope!r} has no hand-over channel on {actor.platform}; an admin can set one")
        escalation_id, created = await store.add_escalation(
            self._pool,
            message_id,
            reason=reason,
            platform=actor.platform,
            scope=scope,
            by=actor.ref,
            channel=target.channel,
        )
        language = ""
        if asked.channel is not None:
            language = (await self.policy(asked.platform, asked.workspace or "", asked.channel)).language
        log.info("hand-over %d of message %d (%s, new=%s) to %s", escalation_id, message_id, reason, created, scope)
        return Handover(
            escalation_id=escalation_id,
            created=created,
            reason=reason,
            question=asked.question,
            answer=asked.answer,
            found=asked.found,
            sources=tuple(dict.fromkeys(asked.sources)),
            asker=asked.user_id,
            workspace=asked.workspace or "",
            channel=asked.channel or "",
            thread=asked.thread or "",
            target=target,
            language=language,
        )

    async def posted(self, handover: Handover, post_ref: str) -> None:
        """Remember the hand-over post: replies in its thread can be saved as the answer."""
        await store.set_escalation_post(self._pool, handover.escalation_id, post_ref)

    async def save_answer(
        self, actor: Actor, channel: str, post_ref: str, reply: str, *, supporter: Supporter | None = None
    ) -> IngestResult:
        """Turn the handed-over question and a person's ``reply`` in the hand-over thread (``channel``,
        ``post_ref``) into a document in the scope, cited like any other, and a curated SFT example.

        Admins may do this, and members of the scope's support group (``supporter`` answers for the platform's
        group or role); everyone else gets :class:`~bot.errors.PermissionDenied`, audited. The asker's
        personal data is redacted from the stored question; the person's reply is kept as written (a clinic's
        phone number is the answer), and redacted in the SFT data when ``DESK_REDACT_PERSONAL_DATA`` is on.
        """
        check_actor(actor)
        reply = clean_text(reply.strip())
        if not reply:
            raise InvalidInput("the reply to save is empty")
        if len(reply) > MAX_SAVED_ANSWER_CHARS:
            raise InvalidInput(f"the reply is {len(reply)} characters; at most {MAX_SAVED_ANSWER_CHARS}")
        escalation = await store.escalation_by_post(self._pool, actor.platform, channel, post_ref)
        if escalation is None:
            raise NotFound("that message is not a reply in a hand-over thread")
        acting = actor
        if not is_admin(actor, self._settings) and supporter is not None:
            target = (await self.scope_desk(escalation.scope, actor.platform)).target
            if target is not None and target.support_group and await supporter(target.support_group):
                acting = replace(actor, is_admin=True)  # a supporter may store this one answer, audited as them
        question = redact(escalation.question)
        title = question if len(question) <= TITLE_CHARS else question[: TITLE_CHARS - 1] + "…"
        result = await self._add_text(
            acting,
            saved_document_text(question, reply),
            title=title,
            scope=escalation.scope,
            source_uri=f"desk:{actor.platform}:hand-over:{escalation.id}",
        )
        await store.add_curated(
            self._pool,
            escalation_id=escalation.id,
            scope=escalation.scope,
            question=question,
            answer=reply,
            document_id=result.document.id,
            by=actor.ref,
        )
        return result

    # --- the report -----------------------------------------------------------------------------------

    async def report(self, actor: Actor, *, since: timedelta, scope: str | None = None) -> Report:
        """The report for ``since`` up to now; question text only for admins."""
        check_actor(actor)
        return await build_report(
            self._pool,
            self._embedder,
            since=since,
            scope=scope,
            show_questions=is_admin(actor, self._settings),
            redact_personal_data=self._settings.desk_redact_personal_data,
        )

    async def decoration(self, question: Question) -> Decoration:
        """What an answer to ``question`` shows besides itself: the scope's footer, and the "Ask a person" label in
        the channel's language when the scope hands over on this platform."""
        scope = await self.scope_desk(question.scopes[0], question.actor.platform)
        language = await self.channel_language(question)
        ask_person = text(language, "ask_person") if scope.target is not None else None
        return Decoration(scope.footer, ask_person, language)

    async def channel_language(self, question: Question) -> str:
        """The answer language set for the channel ``question`` was asked in (a thread's: its parent channel's,
        as for the knowledge scopes); "" where none is set. The model's prompt and the shown answer both use it."""
        place = question.place
        if place is None or not place.channel:
            return ""
        return (await self.policy(place.platform, place.workspace, place.channel)).language

    async def kb_status(self) -> list[dict]:
        """Per scope: documents, chunks, the last change, connected sources and their last sync (App Home)."""
        return await store.kb_status(self._pool)
