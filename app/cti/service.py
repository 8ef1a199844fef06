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
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, cast

from sqlalchemy import Table
from sqlalchemy.dialects.postgresql import insert as _pg_insert
from sqlalchemy.dialects.sqlite import insert as _sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.acd.hooks import CallHooks, CommittedCall, request_dispatch
from app.cti.directory import DirectoryClient, DirectoryResult, LatencyStats
from app.cti.models import ScreenPop
from app.cti.screenpop import CallHistory, ReturningDonor, assemble
from app.db import Database, UnitOfWork, built_once, utcnow
from app.errors import NotFound
from app.phone_numbers import CallerNumber
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


class CallRecords(Protocol):
    """What the look-up reads of calls, given by the ACD (``app.acd.call_records``):
    the CTI does not read the ACD's tables itself."""

    async def caller_calls(
        self, session: AsyncSession, call_id: int
    ) -> tuple[int, str | None, str | None, int, Any] | None:
        """(campaign id, caller number, its issue, earlier calls, last call time)."""
        ...

    async def lock_for_pop(
        self, session: AsyncSession, call_id: int
    ) -> tuple[int, int | None, int | None, str] | None:
        """Lock the call; (campaign id, queue id, agent id, state)."""
        ...


async def call_facts(session: AsyncSession, call_id: int, calls: CallRecords) -> CallFacts | None:
    """The call and the earlier calls from its number (one statement, the ACD's)."""
    row = await calls.caller_calls(session, call_id)
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


SCREEN_POPS = cast(Table, ScreenPop.__table__)


def _pop_upsert(db: Database) -> Any:
    """``INSERT ... ON CONFLICT (call_id) DO UPDATE`` of a screen pop (its dialect's)."""

    def build() -> Any:
        upsert = (_pg_insert if db.is_postgres else _sqlite_insert)(SCREEN_POPS)
        replaced = ("status", "data", "created_at")
        return upsert.on_conflict_do_update(
            index_elements=["call_id"], set_={name: upsert.excluded[name] for name in replaced}
        )

    return built_once(("screen pop upsert", db.dialect), build)


class CallerLookup:
    """Directory client + own records + assembly + storage, for one process."""

    def __init__(
        self,
        settings: Settings,
        calls: CallRecords,
        *,
        directory: DirectoryClient | None = None,
    ) -> None:
        self.settings = settings
        self.calls = calls
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
        self,
        db: Database,
        call_id: int,
        caller: CallerNumber | None = None,
        known: CallFacts | None = None,
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
                # Given by the call path when it already read them: no read of the call.
                facts = known or await call_facts(session, call_id, self.calls)
                if facts is None:
                    raise NotFound("no call {call_id}", field="call_id", call_id=call_id)
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
        self,
        db: Database,
        call_id: int,
        caller: CallerNumber | None = None,
        known: CallFacts | None = None,
    ) -> dict[str, Any]:
        """Build, store and announce the screen pop of a call; returns the pop.

        ``caller``, when the caller of this method has it, lets the directory
        look-up start before the call is read. Directory trouble never raises (the
        pop says so in ``status``); database errors do, and ``NotFound`` when the
        call does not exist.
        """
        started = time.perf_counter()
        pop = await self.prepare(db, call_id, caller, known)
        await self.store(db, call_id, pop)
        self.counts["pops"] += 1
        self.counts[f"status_{pop['status']}"] += 1
        self.latency.observe((time.perf_counter() - started) * 1000)
        return pop

    async def store(self, db: Database, call_id: int, pop: dict[str, Any]) -> None:
        """Save the pop of a call and emit `call.cti_ready`, in one transaction."""
        async with db.unit_of_work() as uow:
            # Lock the call: an offer in progress finishes first (and we see its agent),
            # or it waits for this commit (and then reads the stored pop).
            call = await self.calls.lock_for_pop(uow.session, call_id)
            if call is None:
                raise NotFound("call {call_id} is gone", field="call_id", call_id=call_id)
            campaign_id, queue_id, agent_id, state = call
            # A second look-up of the same call (a retry) replaces the first one's pop.
            row = {"call_id": call_id, "status": pop["status"], "data": pop}
            await uow.session.execute(_pop_upsert(db), {**row, "created_at": utcnow()})
            emit(
                uow,
                EVENT_TYPE,
                campaign_id=campaign_id,
                queue_id=queue_id,
                call_id=call_id,
                agent_id=agent_id,
                data=pop,
            )
            if state == "queued" and db.is_postgres:
                # A router that met the locked row skipped it (SKIP LOCKED): look again.
                request_dispatch(uow, campaign_id)

    def spawn(
        self,
        db: Database,
        call_id: int,
        caller: CallerNumber | None = None,
        known: CallFacts | None = None,
    ) -> asyncio.Task[dict[str, Any] | None]:
        """Run :meth:`lookup` in the background; failures are logged, never raised."""
        task = asyncio.create_task(
            self._guarded(db, call_id, caller, known), name=f"cti-lookup-{call_id}"
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _guarded(
        self,
        db: Database,
        call_id: int,
        caller: CallerNumber | None,
        known: CallFacts | None,
    ) -> dict[str, Any] | None:
        try:
            return await self.lookup(db, call_id, caller, known)
        except asyncio.CancelledError:
            raise
        except Exception:
            self.counts["failed"] += 1
            log.exception("screen pop of call %s failed", call_id)
            return None

    async def idle(self) -> bool:
        """True when no look-up of this process is in flight (tests wait on it)."""
        return not self._tasks

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


# --- on the call path ------------------------------------------------------------


KnownHistory = Callable[[UnitOfWork, CommittedCall], CallHistory | None]


def register(
    hooks: CallHooks, lookup: CallerLookup | None, known_history: KnownHistory | None = None
) -> None:
    """Plug the CTI into the ACD's hooks: the stored pop rides on the offer, a
    transferred leg keeps its pop, and a new call is looked up once committed
    (when this process has a caller look-up: a directory is configured).
    ``known_history`` finds the caller's earlier calls if the committed
    transaction read them already (the rules do), so they are not read again."""

    async def pop_for_offer(uow: UnitOfWork, call_id: int) -> dict[str, Any] | None:
        return await stored_pop(uow.session, call_id)

    async def leg_created(uow: UnitOfWork, call: Any, leg: Any) -> bool:
        return await carry_pop(uow.session, call.id, leg.id)

    hooks.pop_for_offer.append(pop_for_offer)
    hooks.leg_created.append(leg_created)
    if lookup is None:
        return

    def committed(uow: UnitOfWork, call: CommittedCall) -> None:
        history = known_history(uow, call) if known_history is not None else None
        start_lookup(lookup, uow, call, history)

    hooks.call_committed.append(committed)


def start_lookup(
    lookup: CallerLookup,
    uow: UnitOfWork,
    call: CommittedCall,
    history: CallHistory | None = None,
) -> None:
    """Look a new call's caller up, beside routing. Withheld and invalid numbers
    start nothing: the reason is on the call. ``history``: the caller's earlier
    calls when the call path read them already (then the call is not read again)."""
    if call.number is None:
        return
    known = None
    if history is not None:
        known = CallFacts(call.call_id, call.campaign_id, call.number, call.issue, history)
    lookup.spawn(uow.db, call.call_id, CallerNumber(call.number, call.issue), known)
