"""The simulated platform: callers and volunteers for the demo, training and load.

Callers arrive from an arrival profile (a base rate with on-air spikes), wait with
a patience of their own and hang up when it runs out (abandon). Volunteers whose
login starts with the configured prefix log in, go ready, answer what the ACD
bridges to them, talk for a random time, hang up and wrap up, saving a pledge
when the call ends with one (``app/pledges/simulated.py``). Everything goes
through the same paths as real traffic: caller-side events through
``inbound.handle`` (as the webhook does), volunteer actions through ``lifecycle``
(as the agent API does).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import math
import random
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar

from sqlalchemy import select

from app.acd import lifecycle, repository
from app.acd.models import Agent, Call, Campaign, Seat
from app.acd.states import CALL_LIVE_STATES, AgentState, CallState
from app.background import stop_tasks
from app.db import Database, UnitOfWork, utcnow
from app.errors import AppError
from app.pledges import service as pledges
from app.pledges.simulated import random_pledge
from app.settings import Settings
from app.telephony import inbound
from app.telephony.port import TelephonyPlatform
from app.telephony.schemas import CallHangup, CallIncoming, SeatAnswered

log = logging.getLogger(__name__)

DISPOSITIONS = ("pledge", "pledge", "pledge", "no_pledge", "information", "wrong_number")


@dataclass
class ArrivalProfile:
    """Calls a second over time: a base rate with on-air appeal spikes."""

    per_minute: float
    spike_every: float
    spike_factor: float
    spike_seconds: float

    def rate(self, elapsed: float) -> float:
        in_spike = self.spike_every > 0 and (elapsed % self.spike_every) < self.spike_seconds
        return self.per_minute / 60.0 * (self.spike_factor if in_spike else 1.0)


@dataclass
class _LiveCall:
    provider_call_id: str
    connected: asyncio.Event = field(default_factory=asyncio.Event)


def random_french_number(rng: random.Random) -> str | None:
    roll = rng.random()
    if roll < 0.05:
        return None  # withheld
    prefix = rng.choice(["1", "2", "3", "4", "5", "6", "6", "7"])
    digits = "".join(str(rng.randrange(10)) for _ in range(8))
    return f"0{prefix}{digits}"


class SimulatedPlatform(TelephonyPlatform):
    name: ClassVar[str] = "simulated"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.rng = random.Random(settings.sim_seed)
        self.profile = ArrivalProfile(
            settings.sim_rate_per_minute,
            settings.sim_spike_every_seconds,
            settings.sim_spike_factor,
            settings.sim_spike_seconds,
        )
        self._db: Database | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._calls: dict[str, _LiveCall] = {}
        self._agents: set[int] = set()
        self._ids = itertools.count(1)
        self._run_id = f"sim-{int(time.time())}"

    @classmethod
    def from_settings(cls, settings: Settings) -> SimulatedPlatform:
        return cls(settings)

    # --- lifecycle ----------------------------------------------------------------

    async def start(self, db: Database) -> None:
        self._db = db
        await self._end_stale_calls()
        self._spawn(self._arrivals())
        self._spawn(self._keep_staffed())

    async def stop(self) -> None:
        await stop_tasks(list(self._tasks))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- the platform side ----------------------------------------------------------

    async def send(self, command: dict[str, Any]) -> None:
        if command["command"] == "bridge":
            agent_id = int(command["args"]["agent_id"])
            if agent_id in self._agents:
                self._spawn(self._agent_answers(command["call_id"], agent_id))
            else:
                # A person at a web softphone: their screen answers; we play the caller.
                self._spawn(self._caller_talks_to_person(command["call_id"]))
        elif command["command"] == "hangup":
            live = self._calls.pop(command["call_id"], None)
            if live is not None:
                live.connected.set()  # the caller's wait is over either way

    async def _event(self, event: Any) -> None:
        assert self._db is not None
        raw = json.dumps(event.model_dump()).encode()
        try:
            await inbound.handle(self._db, event, raw)
        except AppError as exc:
            log.info("simulated event %s refused: %s", event.type, exc.message)

    def _event_id(self) -> str:
        return f"{self._run_id}-e{next(self._ids)}"

    # --- callers ------------------------------------------------------------------

    async def _end_stale_calls(self) -> None:
        """Simulated callers of an earlier run are gone: hang their calls up.

        Without this a restarted demo would keep volunteers on calls that no
        simulated caller will ever end.
        """
        assert self._db is not None
        async with self._db.read() as session:
            stmt = select(Call.provider_call_id).where(
                Call.state.in_([s.value for s in CALL_LIVE_STATES if s != CallState.WRAP_UP]),
                Call.provider_call_id.startswith("sim-"),
            )
            stale = list((await session.execute(stmt)).scalars())
        for provider_call_id in stale:
            await self._event(
                CallHangup(event_id=self._event_id(), call_id=provider_call_id, type="call.hangup")
            )

    async def _dialled_numbers(self) -> list[str]:
        assert self._db is not None
        async with self._db.read() as session:
            campaigns = (await session.execute(select(Campaign))).scalars().all()
        return [n for c in campaigns for n in (c.dialled_numbers or [])[:1]]

    async def _arrivals(self) -> None:
        started = time.monotonic()
        while True:
            rate = self.profile.rate(time.monotonic() - started)
            await asyncio.sleep(self.rng.expovariate(rate) if rate > 0 else 1.0)
            numbers = await self._dialled_numbers()
            if numbers:
                self._spawn(self._caller(self.rng.choice(numbers)))

    async def _caller(self, dialled: str) -> None:
        provider_call_id = f"{self._run_id}-c{next(self._ids)}"
        live = _LiveCall(provider_call_id)
        self._calls[provider_call_id] = live
        caller = random_french_number(self.rng)
        await self._event(
            CallIncoming(
                event_id=self._event_id(),
                call_id=provider_call_id,
                type="call.incoming",
                caller=caller or "anonymous",
                dialled=dialled,
            )
        )
        patience = self.rng.expovariate(1.0 / self.settings.sim_patience_seconds)
        try:
            await asyncio.wait_for(live.connected.wait(), timeout=patience)
        except TimeoutError:
            if self._calls.pop(provider_call_id, None) is not None:
                await self._event(
                    CallHangup(
                        event_id=self._event_id(), call_id=provider_call_id, type="call.hangup"
                    )
                )

    # --- volunteers -----------------------------------------------------------------

    async def _keep_staffed(self) -> None:
        # Volunteers may be added during the show: look for new ones now and then.
        while True:
            try:
                await self._staff_agents()
            except Exception:
                log.exception("staffing simulated volunteers failed")
            await asyncio.sleep(2.0)

    async def _staff_agents(self) -> None:
        """Log the simulated volunteers in at seats and make them ready (once each)."""
        assert self._db is not None
        prefix = self.settings.sim_agent_prefix
        async with self._db.unit_of_work() as uow:
            agents = (
                (
                    await uow.session.execute(
                        select(Agent).where(Agent.login.startswith(prefix)).order_by(Agent.id)
                    )
                )
                .scalars()
                .all()
            )
            seats = (await uow.session.execute(select(Seat).order_by(Seat.id))).scalars().all()
            free_seats = [s for s in seats if s.id not in {a.seat_id for a in agents}]
            now = utcnow()
            for agent in agents:
                if agent.id in self._agents:
                    continue
                self._agents.add(agent.id)
                if agent.state == AgentState.LOGGED_OUT:
                    seat = next((s for s in free_seats if s.campaign_id == agent.campaign_id), None)
                    if seat is not None:
                        free_seats.remove(seat)
                    await lifecycle.login(uow, agent, seat.id if seat else None, now)
                if agent.state == AgentState.PAUSED:
                    await lifecycle.ready(uow, agent, now)

    async def _agent_answers(self, provider_call_id: str, agent_id: int) -> None:
        await asyncio.sleep(self.rng.uniform(0.2, 1.0))  # auto-answer on the softphone
        await self._event(
            SeatAnswered(event_id=self._event_id(), call_id=provider_call_id, type="seat.answered")
        )
        live = self._calls.get(provider_call_id)
        if live is not None:
            live.connected.set()
        talk = self.rng.lognormvariate(math.log(self.settings.sim_talk_seconds), 0.4)
        await asyncio.sleep(talk)
        if self._calls.pop(provider_call_id, None) is None:
            return  # ended meanwhile
        if self.rng.random() < 0.6:
            await self._event(
                CallHangup(event_id=self._event_id(), call_id=provider_call_id, type="call.hangup")
            )
        else:
            await self._agent_step(agent_id, "hangup")
        wrapup = self.settings.sim_wrapup_seconds
        await asyncio.sleep(self.rng.uniform(0.4, 1.6) * wrapup)  # wrap-up notes
        await self._agent_step(agent_id, "end_wrap_up")

    async def _caller_talks_to_person(self, provider_call_id: str) -> None:
        live = self._calls.get(provider_call_id)
        if live is not None:
            live.connected.set()  # being put through: the caller stops counting
        await asyncio.sleep(self.settings.sim_talk_seconds * 3)
        if self._calls.pop(provider_call_id, None) is not None:
            # Callers do not talk forever; a person's own hang-up usually comes first.
            await self._event(
                CallHangup(event_id=self._event_id(), call_id=provider_call_id, type="call.hangup")
            )

    async def _save_pledge(self, uow: UnitOfWork, call: Call) -> None:
        try:
            await pledges.save_simulated(uow, call, random_pledge(self.rng, call.id))
        except AppError as exc:
            # Refused before anything is written (e.g. below the campaign's minimum).
            log.debug("simulated pledge refused: %s", exc.code)

    async def _agent_step(self, agent_id: int, step: str) -> None:
        assert self._db is not None
        try:
            async with self._db.unit_of_work() as uow:
                call, agent = await lifecycle.agent_call(uow, agent_id)
                if step == "hangup" and call.state == "connected":
                    await lifecycle.start_wrap_up(uow, call, agent, utcnow(), by="agent")
                elif step == "end_wrap_up" and call.state == "wrap_up":
                    disposition = self.rng.choice(DISPOSITIONS)
                    if disposition == "pledge":  # saved as a volunteer would, before wrap-up ends
                        await self._save_pledge(uow, call)
                    await lifecycle.end_wrap_up(uow, call, agent, utcnow(), disposition)
        except AppError:
            pass  # the call moved on (wrap-up timer, supervisor): nothing to do
        # The agent may have been paused (missed offer): get back to work.
        async with self._db.unit_of_work() as uow:
            agent = await repository.get_agent(uow.session, agent_id, lock=True)
            if agent.state == AgentState.PAUSED and agent.pause_reason == "missed":
                await lifecycle.ready(uow, agent, utcnow())
