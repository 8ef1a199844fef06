"""The simulated platform: callers and volunteers for the demo, training and load.

Callers arrive from an arrival profile (a base rate with on-air spikes), wait with
a patience of their own and hang up when it runs out (abandon). Volunteers whose
login starts with the configured prefix log in, go ready, answer what the ACD
bridges to them, talk for a random time, hang up and wrap up, saving a pledge
when the call ends with one (``app/pledges/simulated.py``). Everything goes
through the same paths as real traffic: caller-side events through
``inbound.handle`` (as the webhook does), volunteer actions through ``lifecycle``
(as the agent API does).

Like a real platform it does not give up on the hotline when the database is away
for a moment: a failed webhook or volunteer step is tried again after a bounded,
jittered back-off (``RETRY``), each failure logged; a hang-up is tried until it is
acknowledged or the call is known to have ended (``UNTIL_ACKNOWLEDGED``), because
a lost hang-up would hold a volunteer for ever. Every task it starts logs what
kills it (no "Task exception was never retrieved"), the arrival loop keeps the
last known on-air numbers when it cannot read them, and the staffing loop puts
back to work the volunteers a failed step left paused.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import logging
import math
import random
import time
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

from sqlalchemy import select

from app.acd import callbacks, lifecycle, repository
from app.acd.models import Agent, Call, Campaign, Seat
from app.acd.states import CALL_LIVE_STATES, AgentState, CallState, IllegalTransition
from app.background import stop_tasks
from app.db import Database, UnitOfWork, utcnow
from app.errors import AppError
from app.pledges import service as pledges
from app.pledges.simulated import random_pledge
from app.settings import Settings
from app.telephony import inbound
from app.telephony.port import TelephonyPlatform
from app.telephony.schemas import (
    CallDtmf,
    CallHangup,
    CallIncoming,
    DialAnswered,
    DialUnanswered,
    SeatAnswered,
)

log = logging.getLogger(__name__)

DISPOSITIONS = ("pledge", "pledge", "pledge", "no_pledge", "information", "wrong_number")


@dataclass(frozen=True)
class Backoff:
    """Waits between attempts: ``first`` doubling to ``longest``, each drawn between
    half and all of it (jitter, so callers failing together do not retry together);
    ``attempts`` in all, or until it works (None)."""

    first: float = 0.2
    longest: float = 4.0
    attempts: int | None = 10

    def delays(self, rng: random.Random) -> Iterator[float]:
        delay, attempt = self.first, 1
        while self.attempts is None or attempt < self.attempts:
            yield rng.uniform(delay / 2, delay)
            delay, attempt = min(delay * 2, self.longest), attempt + 1


# Webhooks and steps: 11 to 22 seconds of trying (as long as a caller lets it ring),
# then the platform gives up on them.
RETRY = Backoff()
# Hang-ups: never given up, tried every one to two seconds once the back-off is full.
UNTIL_ACKNOWLEDGED = Backoff(longest=2.0, attempts=None)


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
        # Bridges being answered: a command delivered twice (its lease expired while
        # the database was away) starts one conversation, not two.
        self._answering: set[tuple[str, int]] = set()
        self._dialling: set[str] = set()
        self._numbers: list[str] = []
        self._jitter = random.Random(self.rng.random())
        self._ids = itertools.count(1)
        self._run_id = f"sim-{int(time.time())}"
        # Browser softphones allowed to register, as a PBX keeps them: endpoint ->
        # {username: SHA-256 of the password} (only what checking a registration needs).
        self.softphones: dict[str, dict[str, str]] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> SimulatedPlatform:
        return cls(settings)

    # --- lifecycle ----------------------------------------------------------------

    async def start(self, db: Database) -> None:
        self._db = db
        # A callback offered to a simulated volunteer is taken from the committed
        # event (no bridge is sent for a callback: nobody is on the line yet).
        db.on_events.append(self._on_events)
        await self._end_stale_calls()
        self._spawn(self._arrivals())
        self._spawn(self._keep_staffed())

    async def stop(self) -> None:
        if self._db is not None and self._on_events in self._db.on_events:
            self._db.on_events.remove(self._on_events)
        await stop_tasks(list(self._tasks))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(self._logged(coro))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @staticmethod
    async def _logged(coro: Coroutine[Any, Any, None]) -> None:
        """A simulated caller or volunteer that fails says so, and takes nothing down."""
        try:
            await coro
        except Exception:
            log.exception("simulated %s failed", getattr(coro, "__name__", "task"))

    # --- the platform side ----------------------------------------------------------

    async def provision_softphone(self, endpoint: str, username: str, password: str) -> None:
        self.softphones.setdefault(endpoint, {})[username] = hashlib.sha256(
            password.encode()
        ).hexdigest()

    async def revoke_softphone(self, endpoint: str, username: str) -> None:
        users = self.softphones.get(endpoint, {})
        users.pop(username, None)
        if not users:
            self.softphones.pop(endpoint, None)

    def softphone_accepts(self, endpoint: str, username: str, password: str) -> bool:
        """Would a REGISTER of ``endpoint`` with these credentials be let in?"""
        kept = self.softphones.get(endpoint, {}).get(username)
        given = hashlib.sha256(password.encode()).hexdigest()
        return kept is not None and hmac.compare_digest(kept, given)

    async def send(self, command: dict[str, Any]) -> None:
        args = command.get("args") or {}
        if command["command"] == "bridge" and args.get("consult"):
            # A specialist answered a consult leg: the caller comes off hold to them.
            # A simulated specialist is talking already (it answered the ``consult``
            # ring); a person at a web softphone is played by the simulated caller.
            if int(args["agent_id"]) not in self._agents:
                self._spawn(self._caller_talks_to_person(command["call_id"]))
        elif command["command"] in ("bridge", "consult"):
            # ``consult`` rings a specialist's seat while the caller is on hold: a
            # simulated specialist answers it as it answers a bridge.
            agent_id = int(command["args"]["agent_id"])
            if command["command"] == "consult" and agent_id not in self._agents:
                return  # a person's screen answers; the caller stays on hold
            if agent_id in self._agents:
                bridge = (command["call_id"], agent_id)
                if bridge not in self._answering:
                    self._answering.add(bridge)
                    self._spawn(self._agent_answers(command["call_id"], agent_id))
            else:
                # A person at a web softphone: their screen answers; we play the caller.
                self._spawn(self._caller_talks_to_person(command["call_id"]))
        elif command["command"] == "hangup":
            live = self._calls.pop(command["call_id"], None)
            if live is not None:
                live.connected.set()  # the caller's wait is over either way
        elif command["command"] in ("hold", "unhold", "consult_cancel"):
            log.debug("simulated %s on %s: %s", command["command"], command["call_id"], args)
        elif command["command"] == "play":
            log.debug("simulated play to %s: %s", command["call_id"], args)
            # Some callers take a callback offer: they press its digit after a moment.
            if (
                args.get("prompt") == "callback_offer"
                and command["call_id"] in self._calls
                and self.rng.random() < self.settings.sim_callback_accept
            ):
                self._spawn(self._press(command["call_id"], str(args.get("digit", "1"))))
        elif command["command"] == "dial" and command["call_id"] not in self._dialling:
            # A dial delivered twice rings the caller once.
            self._dialling.add(command["call_id"])
            self._spawn(
                self._callee(command["call_id"], int(args["callback_id"]), int(args["agent_id"]))
            )

    async def _event(self, event: Any, backoff: Backoff = RETRY) -> dict[str, Any] | None:
        """Deliver one event as the webhook would, retried on failure with the same
        event id (a retry of a delivery that did commit gets the first answer).

        The answer; None when refused (a final answer: not retried) or given up.
        """
        assert self._db is not None
        raw = json.dumps(event.model_dump()).encode()
        delays = backoff.delays(self._jitter)
        attempt = 0
        while True:
            attempt += 1
            try:
                _status, answer = await inbound.handle(self._db, event, raw)
                return answer
            except (AppError, IllegalTransition) as exc:
                log.info("simulated event %s refused: %s", event.type, exc)
                return None
            except Exception as exc:
                delay = next(delays, None)
                if delay is None:
                    log.error(
                        "simulated event %s for %s given up after %s attempts: %r",
                        event.type,
                        event.call_id,
                        attempt,
                        exc,
                    )
                    return None
                log.warning(
                    "simulated event %s for %s failed (attempt %s), again in %.1fs: %r",
                    event.type,
                    event.call_id,
                    attempt,
                    delay,
                    exc,
                )
                await asyncio.sleep(delay)

    async def _hang_up(self, provider_call_id: str) -> None:
        """The caller hangs up: told to the hotline until it is acknowledged."""
        event = CallHangup(event_id=self._event_id(), call_id=provider_call_id, type="call.hangup")
        await self._event(event, UNTIL_ACKNOWLEDGED)

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
            )  # bounded: start-up must not hang; the safety net (app/acd/stale.py) follows

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
            try:
                self._numbers = await self._dialled_numbers()
            except Exception as exc:
                # The phone network does not stop when the hotline's database does:
                # callers keep dialling the numbers last seen on air.
                log.warning("simulated arrivals: on-air numbers unreadable (%r)", exc)
            if self._numbers:
                self._spawn(self._caller(self.rng.choice(self._numbers)))

    async def _caller(self, dialled: str) -> None:
        provider_call_id = f"{self._run_id}-c{next(self._ids)}"
        live = _LiveCall(provider_call_id)
        self._calls[provider_call_id] = live
        caller = random_french_number(self.rng)
        patience = self.rng.expovariate(1.0 / self.settings.sim_patience_seconds)
        answer = await self._event(
            CallIncoming(
                event_id=self._event_id(),
                call_id=provider_call_id,
                type="call.incoming",
                caller=caller or "anonymous",
                dialled=dialled,
            )
        )
        if answer is None:
            # Refused or never acknowledged: the caller gives up. Say so, in case a
            # delivery did get through unacknowledged (a hang-up that overtakes its
            # call ends that call when it arrives).
            if self._calls.pop(provider_call_id, None) is not None:
                await self._hang_up(provider_call_id)
            return
        try:
            await asyncio.wait_for(live.connected.wait(), timeout=patience)
        except TimeoutError:
            if self._calls.pop(provider_call_id, None) is not None:
                await self._hang_up(provider_call_id)

    async def _press(self, provider_call_id: str, digit: str) -> None:
        """A waiting caller presses the callback offer's digit."""
        await asyncio.sleep(self.rng.uniform(1.0, 3.0))
        if provider_call_id not in self._calls:
            return  # hung up or put through meanwhile
        event = CallDtmf(
            event_id=self._event_id(), call_id=provider_call_id, type="call.dtmf", digit=digit
        )
        await self._event(event)

    async def _callee(self, provider_call_id: str, callback_id: int, agent_id: int) -> None:
        try:
            await self._dialled(provider_call_id, callback_id, agent_id)
        finally:
            self._dialling.discard(provider_call_id)

    async def _dialled(self, provider_call_id: str, callback_id: int, agent_id: int) -> None:
        """The line dials a caller back: they answer (with a probability) or not."""
        await asyncio.sleep(self.rng.uniform(1.0, 4.0))  # it rings
        if self.rng.random() >= self.settings.sim_dial_answer:
            await self._event(
                DialUnanswered(
                    event_id=self._event_id(),
                    call_id=provider_call_id,
                    type="dial.unanswered",
                    callback_id=callback_id,
                )
            )
            return
        self._calls[provider_call_id] = _LiveCall(provider_call_id)
        answer = await self._event(
            DialAnswered(
                event_id=self._event_id(),
                call_id=provider_call_id,
                type="dial.answered",
                callback_id=callback_id,
            )
        )
        call = (answer or {}).get("call") or {}
        if call.get("state") != CallState.CONNECTED:
            self._calls.pop(provider_call_id, None)
            return
        if agent_id in self._agents:
            await self._talk(provider_call_id, agent_id)
        else:
            await self._caller_talks_to_person(provider_call_id)

    async def _on_events(self, events: list[Any]) -> None:
        for event in events:
            data = event.data or {}
            if (
                event.type == "call.offered"
                and data.get("kind") == "callback"
                and event.agent_id in self._agents
            ):
                self._spawn(self._accept_callback(event.agent_id, int(event.call_id)))

    async def _accept_callback(self, agent_id: int, call_id: int) -> None:
        """A simulated volunteer reads the pop, then presses Call back."""
        assert self._db is not None
        await asyncio.sleep(self.rng.uniform(0.5, 2.0))
        try:
            async with self._db.unit_of_work() as uow:
                call, agent = await lifecycle.agent_call(uow, agent_id)
                if call.id == call_id and call.state == CallState.OFFERED:
                    await callbacks.accept(uow, call, agent, utcnow())
        except (AppError, IllegalTransition) as exc:
            log.info("simulated volunteer %s: callback %s not taken: %s", agent_id, call_id, exc)

    # --- volunteers -----------------------------------------------------------------

    async def _keep_staffed(self) -> None:
        # Volunteers may be added during the show: look for new ones now and then.
        while True:
            try:
                await self._staff_agents()
            except Exception as exc:
                log.warning("staffing simulated volunteers failed (%r); again shortly", exc)
            await asyncio.sleep(2.0)

    async def _staff_agents(self) -> None:
        """Log new simulated volunteers in at seats and make them ready (once each), and
        put back to work those a missed offer paused (their own step may have failed)."""
        assert self._db is not None
        prefix = self.settings.sim_agent_prefix
        new: set[int] = set()
        try:
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
                        if agent.state == AgentState.PAUSED and agent.pause_reason == "missed":
                            await lifecycle.ready(uow, agent, now)
                        continue
                    # Known before commit: a bridge to them may be sent as soon as it commits.
                    new.add(agent.id)
                    self._agents.add(agent.id)
                    if agent.state == AgentState.LOGGED_OUT:
                        seat = next(
                            (s for s in free_seats if s.campaign_id == agent.campaign_id), None
                        )
                        if seat is not None:
                            free_seats.remove(seat)
                        await lifecycle.login(uow, agent, seat.id if seat else None, now)
                    if agent.state == AgentState.PAUSED:
                        await lifecycle.ready(uow, agent, now)
        except BaseException:
            self._agents -= new  # not staffed after all: the next pass tries again
            raise

    async def _agent_answers(self, provider_call_id: str, agent_id: int) -> None:
        try:
            await self._converse(provider_call_id, agent_id)
        finally:
            self._answering.discard((provider_call_id, agent_id))

    async def _converse(self, provider_call_id: str, agent_id: int) -> None:
        await asyncio.sleep(self.rng.uniform(0.2, 1.0))  # auto-answer on the softphone
        answer = await self._event(
            SeatAnswered(event_id=self._event_id(), call_id=provider_call_id, type="seat.answered")
        )
        call = (answer or {}).get("call") or {}
        if call.get("state") != CallState.CONNECTED or call.get("agent_id") != agent_id:
            return  # the offer was gone (caller left, ring timeout): no conversation
        live = self._calls.get(provider_call_id)
        if live is not None:
            live.connected.set()
        await self._talk(provider_call_id, agent_id)

    async def _talk(self, provider_call_id: str, agent_id: int) -> None:
        """A conversation of a simulated volunteer, hung up by either side, then wrap-up."""
        talk = self.rng.lognormvariate(math.log(self.settings.sim_talk_seconds), 0.4)
        await asyncio.sleep(talk)
        caller_still_there = self._calls.pop(provider_call_id, None) is not None
        if caller_still_there and self.rng.random() < 0.6:
            await self._hang_up(provider_call_id)
        else:
            # The volunteer hangs up; also when the caller's side is gone without a
            # word, so that a conversation never outlives the simulation's caller.
            await self._agent_step(agent_id, provider_call_id, "hangup", UNTIL_ACKNOWLEDGED)
        wrapup = self.settings.sim_wrapup_seconds
        await asyncio.sleep(self.rng.uniform(0.4, 1.6) * wrapup)  # wrap-up notes
        # Bounded: if it never gets through, the wrap-up timer ends it.
        await self._agent_step(agent_id, provider_call_id, "end_wrap_up", RETRY)

    async def _caller_talks_to_person(self, provider_call_id: str) -> None:
        live = self._calls.get(provider_call_id)
        if live is not None:
            live.connected.set()  # being put through: the caller stops counting
        await asyncio.sleep(self.settings.sim_talk_seconds * 3)
        if self._calls.pop(provider_call_id, None) is not None:
            # Callers do not talk forever; a person's own hang-up usually comes first.
            await self._hang_up(provider_call_id)

    async def _save_pledge(self, uow: UnitOfWork, call: Call) -> None:
        try:
            await pledges.save_simulated(uow, call, random_pledge(self.rng, call.id))
        except AppError as exc:
            # Refused before anything is written (e.g. below the campaign's minimum).
            log.debug("simulated pledge refused: %s", exc.code)

    async def _agent_step(
        self, agent_id: int, provider_call_id: str, step: str, backoff: Backoff
    ) -> None:
        """A volunteer's step on this call (``hangup``, ``end_wrap_up``), retried on
        failure; done as soon as the call has moved on (nothing left to do)."""
        delays = backoff.delays(self._jitter)
        attempt = 0
        while True:
            attempt += 1
            try:
                await self._agent_step_once(agent_id, provider_call_id, step)
                return
            except Exception as exc:
                delay = next(delays, None)
                if delay is None:
                    log.error(
                        "simulated volunteer %s: %s given up after %s attempts: %r",
                        agent_id,
                        step,
                        attempt,
                        exc,
                    )
                    return
                log.warning(
                    "simulated volunteer %s: %s failed (attempt %s), again in %.1fs: %r",
                    agent_id,
                    step,
                    attempt,
                    delay,
                    exc,
                )
                await asyncio.sleep(delay)

    async def _agent_step_once(self, agent_id: int, provider_call_id: str, step: str) -> None:
        assert self._db is not None
        try:
            async with self._db.unit_of_work() as uow:
                call, agent = await lifecycle.agent_call(uow, agent_id)
                if call.provider_call_id != provider_call_id:
                    pass  # on another call by now: this one is over for them
                elif step == "hangup" and call.state == CallState.CONNECTED:
                    await lifecycle.start_wrap_up(uow, call, agent, utcnow(), by="agent")
                elif step == "end_wrap_up" and call.state == CallState.WRAP_UP:
                    disposition = self.rng.choice(DISPOSITIONS)
                    if disposition == "pledge":  # saved as a volunteer would, before wrap-up ends
                        await self._save_pledge(uow, call)
                    await lifecycle.end_wrap_up(uow, call, agent, utcnow(), disposition)
        except (AppError, IllegalTransition):
            pass  # the call moved on (wrap-up timer, supervisor): nothing to do
        # The agent may have been paused (missed offer): get back to work.
        async with self._db.unit_of_work() as uow:
            agent = await repository.get_agent(uow.session, agent_id, lock=True)
            if agent.state == AgentState.PAUSED and agent.pause_reason == "missed":
                await lifecycle.ready(uow, agent, utcnow())
