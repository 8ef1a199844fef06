"""The CTI service: look a caller up and attach the screen pop to the call.

One :class:`CallerLookup` per process (it owns the directory client, its cache and
breaker). For each new call, :meth:`CallerLookup.lookup` (or :meth:`spawn`, its
fire-and-forget form) runs the directory look-up and the queries of the hotline's
own records at the same time (the call and its earlier calls in one statement,
then the pledge records), assembles the screen pop, stores it in ``screen_pops``
and emits ``call.cti_ready`` in one transaction. Given the caller number with the
call id, the directory look-up starts before the database is read.

Nothing in the call path waits for it. The offer step reads :func:`stored_pop`
inside its own transaction, after it has locked the call row: the look-up locks
the same row before it writes, so either the offer sees the stored pop, or the
look-up sees the call's agent and sends ``call.cti_ready`` to that agent. A call
still waiting when the pop is stored is handed back to the router (a dispatch
request), in case a router on PostgreSQL skipped the row while it was locked
(``FOR UPDATE SKIP LOCKED``).
"""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import logging
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from app.acd.models import Call
from app.acd.states import CallState
from app.cti.directory import DirectoryClient, DirectoryResult, LatencyStats
from app.cti.models import ScreenPop
from app.cti.numbers import CallerNumber
from app.cti.screenpop import CallHistory, ReturningDonor, assemble
from app.db import Database, utcnow
from app.errors import NotFound
from app.pledges import repository as pledges
from app.realtime.outbox import emit
from app.settings import Settings

log = logging.getLogger(__name__)

EVENT_TYPE = "call.cti_ready"


@dataclass(frozen=True)
class CallFacts:
    """What the look-up needs to know about a call, and its earlier calls."""

    call_id: int
    campaign_id: int
    number: str | None
    issue: str | None
    history: CallHistory


async def call_facts(session: AsyncSession, call_id: int) -> CallFacts | None:
    """The call and the earlier calls from its number, in one statement.

    Earlier calls: from the same number to the same campaign, received before this
    one, its own legs (same provider call id: transfers) left out, counted once per
    provider call id.
    """
    earlier = aliased(Call)
    same_caller = (
        earlier.caller_number == Call.caller_number,
        earlier.campaign_id == Call.campaign_id,
        earlier.received_at < Call.received_at,
        earlier.provider_call_id != Call.provider_call_id,
    )
    count = (
        select(func.count(func.distinct(earlier.provider_call_id)))
        .where(*same_caller)
        .scalar_subquery()
    )
    last = select(func.max(earlier.received_at)).where(*same_caller).scalar_subquery()
    stmt = select(
        Call.campaign_id, Call.caller_number, Call.caller_number_issue, count, last
    ).where(Call.id == call_id)
    row = (await session.execute(stmt)).one_or_none()
    if row is None:
        return None
    campaign_id, number, issue, n, last_at = row
    if number is None:
        n, last_at = 0, None
    if number is None and issue is None:
        issue = "invalid"
    return CallFacts(
        call_id=call_id,
        campaign_id=campaign_id,
        number=number,
        issue=issue,
        history=CallHistory(earlier_calls=int(n or 0), last_call_at=_utc(last_at)),
    )


def _utc(value: Any) -> dt.datetime | None:
    # max() over a UTCDateTime column comes back raw on SQLite (a naive string).
    if value is None:
        return None
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    if isinstance(value, dt.datetime):
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value
    return None


async def returning_donor(
    session: AsyncSession, *, campaign_id: int, number: str
) -> ReturningDonor | None:
    """The donor the hotline's own pledge records know at ``number``.

    Name, address, e-mail and phone from the donor's latest non-cancelled pledge
    in this campaign (from this number, as caller or as the phone they gave), with
    the number and total of their non-cancelled pledges and the date of the last.
    """
    latest = await pledges.latest_pledge_for_number(session, campaign_id, number)
    if latest is None:
        return None
    count, total = await pledges.pledge_count_and_total_for_number(session, campaign_id, number)
    return ReturningDonor(
        first_name=latest.first_name or None,
        last_name=latest.last_name or None,
        address_lines=tuple(line for line in latest.address.splitlines() if line.strip()),
        postcode=latest.postcode or None,
        city=latest.city or None,
        email=latest.email or None,
        phone=latest.phone_e164 or latest.phone or None,
        pledges=count,
        total_minor=total,
        currency=latest.currency,
        last_pledge_at=latest.created_at,
    )


async def stored_pop(session: AsyncSession, call_id: int) -> dict[str, Any] | None:
    """The screen pop stored for a call, or None when its look-up has not finished."""
    row = await session.get(ScreenPop, call_id)
    return dict(row.data) if row is not None else None


async def carry_pop(session: AsyncSession, from_call_id: int, to_call_id: int) -> bool:
    """Give a transferred call's next leg the pop of the first; False if there is none.

    The specialist who takes the leg sees the same caller details as the volunteer
    did, without a second look-up.
    """
    row = await session.get(ScreenPop, from_call_id)
    if row is None:
        return False
    session.add(
        ScreenPop(call_id=to_call_id, status=row.status, data=dict(row.data), created_at=utcnow())
    )
    return True


class CallerLookup:
    """Directory client + own records + assembly + storage, for one process."""

    def __init__(self, settings: Settings, *, directory: DirectoryClient | None = None) -> None:
        self.settings = settings
        self.directory = directory or DirectoryClient.from_settings(settings)
        self._tasks: set[asyncio.Task[dict[str, Any] | None]] = set()
        self.counts: collections.Counter[str] = collections.Counter()
        self.latency = LatencyStats()

    async def start(self) -> None:
        await self.directory.start()

    async def stop(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        await self.directory.aclose()

    # the pop, without the database

    async def build(
        self,
        number: str | None,
        issue: str | None,
        history: CallHistory,
        donor: ReturningDonor | None = None,
        directory: DirectoryResult | None = None,
    ) -> dict[str, Any]:
        """Directory look-up (unless given) and assembly."""
        if directory is None:
            directory = await self.directory.lookup(number, issue)
        return assemble(
            number=number, issue=issue, directory=directory, history=history, donor=donor
        )

    # the whole look-up

    async def prepare(
        self, db: Database, call_id: int, caller: CallerNumber | None = None
    ) -> dict[str, Any]:
        """The screen pop of a call, not stored.

        One read transaction loads the call with its earlier calls, then asks the
        pledge records while the directory look-up runs. Given ``caller`` (the
        number as normalised when the call came in), the directory look-up starts
        at once, before the database is even asked.
        """
        early = self._directory_task(caller.e164, caller.issue) if caller else None
        directory_task = early
        try:
            async with db.read() as session:
                facts = await call_facts(session, call_id)
                if facts is None:
                    raise NotFound(f"no call {call_id}", field="call_id")
                if early is not None and caller is not None and caller.e164 != facts.number:
                    early.cancel()  # not the call's number after all: ask about the right one
                    directory_task = None
                if directory_task is None:
                    directory_task = self._directory_task(facts.number, facts.issue)
                donor = (
                    await returning_donor(
                        session, campaign_id=facts.campaign_id, number=facts.number
                    )
                    if facts.number
                    else None
                )
        except BaseException:
            for task in (early, directory_task):
                if task is not None:
                    task.cancel()
            raise
        directory = await directory_task
        return await self.build(facts.number, facts.issue, facts.history, donor, directory)

    def _directory_task(
        self, number: str | None, issue: str | None
    ) -> asyncio.Future[DirectoryResult]:
        return asyncio.ensure_future(self.directory.lookup(number, issue))

    async def lookup(
        self, db: Database, call_id: int, caller: CallerNumber | None = None
    ) -> dict[str, Any]:
        """Build, store and announce the screen pop of a call; returns the pop.

        ``caller``, when the caller of this method has it, lets the directory
        look-up start before the call is read. Directory trouble never raises (the
        pop says so in ``status``); database errors do, and ``NotFound`` when the
        call does not exist.
        """
        started = time.perf_counter()
        pop = await self.prepare(db, call_id, caller)
        for attempt in range(2):
            try:
                await self.store(db, call_id, pop)
                break
            except IntegrityError:
                # Two look-ups of one call raced to insert: the second one updates.
                if attempt:
                    raise
        self.counts["pops"] += 1
        self.counts[f"status_{pop['status']}"] += 1
        self.latency.observe((time.perf_counter() - started) * 1000)
        return pop

    async def store(self, db: Database, call_id: int, pop: dict[str, Any]) -> None:
        """Save the pop of a call and emit `call.cti_ready`, in one transaction."""
        async with db.unit_of_work() as uow:
            # Lock the call: an offer in progress finishes first (and we see its agent),
            # or it waits for this commit (and then reads the stored pop).
            stmt = (
                select(Call)
                .where(Call.id == call_id)
                .with_for_update()
                .execution_options(populate_existing=True)
            )
            call = (await uow.session.execute(stmt)).scalar_one_or_none()
            if call is None:
                raise NotFound(f"call {call_id} is gone", field="call_id")
            now = utcnow()
            row = await uow.session.get(ScreenPop, call_id)
            if row is None:
                uow.session.add(
                    ScreenPop(call_id=call_id, status=pop["status"], data=pop, created_at=now)
                )
            else:
                row.status, row.data, row.created_at = pop["status"], pop, now
            emit(
                uow,
                EVENT_TYPE,
                campaign_id=call.campaign_id,
                queue_id=call.queue_id,
                call_id=call.id,
                agent_id=call.agent_id,
                data=pop,
            )
            if call.state == CallState.QUEUED and db.is_postgres:
                # A router that met the locked row skipped it (SKIP LOCKED): look again.
                uow.dispatch_campaigns.add(call.campaign_id)

    def spawn(
        self, db: Database, call_id: int, caller: CallerNumber | None = None
    ) -> asyncio.Task[dict[str, Any] | None]:
        """Run :meth:`lookup` in the background; failures are logged, never raised."""
        task = asyncio.create_task(self._guarded(db, call_id, caller), name=f"cti-lookup-{call_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _guarded(
        self, db: Database, call_id: int, caller: CallerNumber | None
    ) -> dict[str, Any] | None:
        try:
            return await self.lookup(db, call_id, caller)
        except asyncio.CancelledError:
            raise
        except Exception:
            self.counts["failed"] += 1
            log.exception("screen pop of call %s failed", call_id)
            return None

    def metrics(self) -> dict[str, Any]:
        return {
            "pops": self.counts["pops"],
            "failed": self.counts["failed"],
            "in_flight": len(self._tasks),
            "pops_by_status": {
                key.removeprefix("status_"): n
                for key, n in sorted(self.counts.items())
                if key.startswith("status_")
            },
            "pop_latency_ms": self.latency.snapshot(),
            "directory": self.directory.metrics(),
        }
