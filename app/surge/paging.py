"""Paging standby volunteers: the page on their screen, an SMS if configured, the answer.

A volunteer is on standby for a queue of their campaign (with the queue's skill, at
any level) when signed up as standby by a supervisor (``standby_volunteers``) and
not working now (logged out or paused), or when logged in but paused for a break.
Shifts do not exist yet (issue "The people of the show"): the sign-up is a flag.

A page is one transaction: the quiet-period guard (a conditional UPDATE of the
volunteer's ``last_paged_at``, so two processes paging at once page once), the
``pages`` row, the ``agent.paged`` event (to the volunteer's screens and the
supervisors') and, when an SMS webhook is configured and the volunteer has a phone
number, the SMS in the outbox (``app/surge/sms.py`` sends it, never the caller's
path).
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, exists, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.acd.models import Agent, AgentSkill, Campaign, Queue
from app.acd.states import AgentState
from app.db import Database, UnitOfWork, utcnow
from app.errors import NotFound
from app.i18n import N_, translate
from app.outbox import emit
from app.settings import settings_of
from app.surge.models import STANDBY, Page, SmsMessage, Standby

# The page's text, in the campaign's language (its screens' and SMS's).
PAGE_TEXT = N_("Appeal on air: calls waiting, please come back ({queue}).")
BREAK_REASON = "break"


@dataclass(frozen=True)
class Candidate:
    agent_id: int
    display_name: str
    standby_as: str  # standby | break
    phone: str | None


def _standby_condition() -> Any:
    signed_up = and_(
        Standby.standby.is_(True),
        Agent.state.in_((AgentState.LOGGED_OUT, AgentState.PAUSED)),
    )
    on_break = and_(Agent.state == AgentState.PAUSED, Agent.pause_reason == BREAK_REASON)
    return or_(signed_up, on_break)


async def candidates(session: AsyncSession, queue: Queue) -> list[Candidate]:
    """The queue's standby volunteers now (one statement)."""
    stmt = (
        select(Agent.id, Agent.display_name, Agent.state, Standby.phone)
        .outerjoin(Standby, Standby.agent_id == Agent.id)
        .where(Agent.campaign_id == queue.campaign_id, _standby_condition())
        .order_by(Agent.id)
    )
    if queue.required_skill:
        stmt = stmt.where(
            exists().where(
                AgentSkill.agent_id == Agent.id, AgentSkill.skill == queue.required_skill
            )
        )
    rows = (await session.execute(stmt)).all()
    return [
        Candidate(
            agent_id=agent_id,
            display_name=name,
            standby_as=BREAK_REASON if state == AgentState.PAUSED else "standby",
            phone=phone,
        )
        for agent_id, name, state, phone in rows
    ]


@dataclass
class PageOutcome:
    paged: list[int]  # page ids
    paged_agents: list[int]
    quiet: list[int]  # agents paged within the quiet period: not paged again


async def page_standby(
    uow: UnitOfWork,
    queue: Queue,
    *,
    by: str,
    now: dt.datetime | None = None,
    only: set[int] | None = None,
    limit: int = 0,
) -> PageOutcome:
    """Page the queue's standby volunteers (``only`` some of them; at most ``limit``)."""
    now = now or utcnow()
    settings = settings_of(uow.db)
    session = uow.session
    outcome = PageOutcome(paged=[], paged_agents=[], quiet=[])
    quiet_since = now - dt.timedelta(seconds=settings.page_quiet_seconds)
    language = (
        await session.execute(select(Campaign.language).where(Campaign.id == queue.campaign_id))
    ).scalar_one()
    message = translate(language, PAGE_TEXT, {"queue": queue.name})
    for candidate in await candidates(session, queue):
        if only is not None and candidate.agent_id not in only:
            continue
        if limit and len(outcome.paged) >= limit:
            break
        await session.execute(
            uow.db.insert_or_ignore(STANDBY).values(
                agent_id=candidate.agent_id,
                campaign_id=queue.campaign_id,
                standby=False,
                updated_at=now,
            )
        )
        claimed = await session.execute(
            update(Standby)
            .where(
                Standby.agent_id == candidate.agent_id,
                or_(Standby.last_paged_at.is_(None), Standby.last_paged_at <= quiet_since),
            )
            .values(last_paged_at=now)
            .returning(Standby.agent_id)
        )
        if claimed.first() is None:
            outcome.quiet.append(candidate.agent_id)
            continue
        sms = bool(settings.sms_webhook_url and candidate.phone)
        page = Page(
            campaign_id=queue.campaign_id,
            queue_id=queue.id,
            agent_id=candidate.agent_id,
            paged_by=by,
            paged_at=now,
            standby_as=candidate.standby_as,
            message=message,
            sms="pending" if sms else "none",
        )
        session.add(page)
        await session.flush()
        if sms:
            assert candidate.phone is not None
            session.add(
                SmsMessage(
                    page_id=page.id,
                    idempotency_key=f"page-{uuid.uuid4().hex}",
                    to_number=candidate.phone,
                    body=f"Pledgeline: {message}",
                    created_at=now,
                    delivery="pending",
                    attempts=0,
                )
            )
        emit(
            uow,
            "agent.paged",
            campaign_id=queue.campaign_id,
            queue_id=queue.id,
            agent_id=candidate.agent_id,
            data={
                "page_id": page.id,
                "message": message,
                "queue": queue.name,
                "standby_as": candidate.standby_as,
                "paged_by": by,
                "sms": page.sms,
            },
        )
        outcome.paged.append(page.id)
        outcome.paged_agents.append(candidate.agent_id)
    return outcome


async def answer(db: Database, agent_id: int, page_id: int) -> dict[str, Any]:
    """The volunteer's "I'm coming": recorded once (a second answer changes nothing)."""
    now = utcnow()
    async with db.unit_of_work() as uow:
        row = (
            await uow.session.execute(
                update(Page)
                .where(Page.id == page_id, Page.agent_id == agent_id, Page.answered_at.is_(None))
                .values(answered_at=now)
                .returning(Page.campaign_id, Page.queue_id)
            )
        ).first()
        if row is not None:
            emit(
                uow,
                "agent.page_answered",
                campaign_id=row[0],
                queue_id=row[1],
                agent_id=agent_id,
                data={"page_id": page_id, "answered_at": now.isoformat()},
            )
            return {"page_id": page_id, "answered_at": now.isoformat()}
        page = await uow.session.get(Page, page_id)
        if page is None or page.agent_id != agent_id:
            raise NotFound("page {page_id} not found", field="args.page_id", page_id=page_id)
        assert page.answered_at is not None
        return {"page_id": page_id, "answered_at": page.answered_at.isoformat()}


async def open_pages(session: AsyncSession, agent_id: int, since: dt.datetime) -> list[Page]:
    """A volunteer's pages not answered yet (for a screen that opens after the page)."""
    stmt = (
        select(Page)
        .where(Page.agent_id == agent_id, Page.answered_at.is_(None), Page.paged_at >= since)
        .order_by(Page.id)
    )
    return list((await session.execute(stmt)).scalars())
