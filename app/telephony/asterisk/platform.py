"""The Asterisk platform: Pledgeline drives Asterisk 22 through ARI.

The hotline numbers' dialplan sends each caller into the Stasis application
(``deploy/asterisk/extensions.conf``); the caller's channel id is the call's
``call_id``. What Asterisk tells on the events websocket becomes the same events
the webhook takes, through the same idempotent path (``app.telephony.inbound``),
with event ids made from the channel and what happened to it, so a repeat (after
a reconnection, say) changes nothing. Commands from the outbox become ARI calls:

- ``answer``, ``hangup`` (after a message being played), ``transfer`` (the
  caller continues in the dialplan's ``pledgeline-transfer``);
- ``play``: ``hold`` is the welcome prompt then music on hold; a text (closed,
  overflow, a rule's message) has no speech here: the message sound is played;
- ``bridge``: a channel is originated to the volunteer's seat (a leg) with the
  queue's ring timeout; its answer is ``seat.answered``, and once Pledgeline has
  connected the call the caller and the leg go into a mixing bridge; a leg that
  ends unanswered is ``seat.hangup`` (the call goes back to the head of its
  queue); a newer ``bridge`` of the call, or the call's return to the queue,
  takes a ringing leg back (and no event is sent for it);
- the warm hand-over: ``hold`` (the caller out of the bridge, on music),
  ``consult`` (a leg to the specialist, not bridged on answer), ``bridge`` with
  ``consult`` (the caller bridged to the specialist, the volunteer's leg hung
  up), ``consult_cancel``, ``unhold``;
- ``dial`` (a callback): the volunteer's seat is rung (``pl-dial-<callback>-<attempt>``),
  then, once it answers, the caller's number through the trunk on a channel whose
  id is the callback's call id; the caller's answer is ``dial.answered`` and both
  go into the call's bridge, from where the callback is a call like any other; a
  side ending first is ``dial.unanswered``.

Robustness: the websocket is opened again after any loss, and each time it opens
the adapter reconciles: a live call whose channel is gone ends (``call.hangup``),
a channel of the application that no live call owns is hung up.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
from dataclasses import dataclass
from typing import Any, ClassVar

import orjson
import websockets
from sqlalchemy import select

from app.acd.callbacks import CALLBACK_ID_PREFIX, DIAL_TIMEOUT_SECONDS
from app.acd.config_cache import cache_of
from app.acd.models import CALL_KIND_CALLBACK, Agent, Call
from app.acd.states import CALL_LIVE_STATES, CallState
from app.background import stop_tasks
from app.db import Database
from app.errors import AppError
from app.settings import Settings
from app.telephony import inbound
from app.telephony.asterisk.ari import AriClient, AriError
from app.telephony.asterisk.config import dial_string, trunk_dial_string
from app.telephony.asterisk.lease import AriLease, lock_key
from app.telephony.port import DeliveryFailed, TelephonyPlatform
from app.telephony.schemas import (
    CallDtmf,
    CallHangup,
    CallIncoming,
    DialAnswered,
    DialUnanswered,
    SeatAnswered,
    SeatHangup,
)

log = logging.getLogger(__name__)

LEG_PREFIX = "pl-leg-"
BRIDGE_PREFIX = "pl-bridge-"
DIAL_PREFIX = "pl-dial-"  # a callback's seat leg: pl-dial-<callback id>-<attempt>
# Calls whose id names no caller's channel by itself: callbacks (their channel is
# theirs only once dialled: ``_reconcile_dials``), simulated calls.
_NOT_A_CHANNEL = ("callback-", "sim-")
RECONNECT_FIRST, RECONNECT_LONGEST = 0.2, 5.0
DEFAULT_RING_SECONDS = 15
# A callback's dial: the seat rings at most this long (less than the queue's ring
# timeout when that is longer), then the caller's line at most the rest of
# Pledgeline's dial timeout, less a margin: the outcome is always told before that
# timeout would count the attempt unanswered with both phones still up.
DIAL_SEAT_RING_SECONDS = 20
DIAL_CALLER_RING_SECONDS = DIAL_TIMEOUT_SECONDS - DIAL_SEAT_RING_SECONDS - 10
# What the volunteer hears while the caller's line rings: the French ringing tone
# (440 Hz, 1.5 s on, 3.5 s off), spelt out: no tone zones (indications.conf) needed;
# its parts apart by "|", since ARI takes a comma for the next media.
DIAL_RINGBACK = "tone:440/1500|0/3500"
# Hang-up causes (Q.850) of a callee's line that ended unanswered, as dial.unanswered says them.
_UNANSWERED_CAUSES = {0: "no_answer", 16: "no_answer", 18: "no_answer", 19: "no_answer"}
_UNANSWERED_CAUSES |= {17: "busy", 21: "rejected"}
# The ARI events the adapter acts on (``_dispatch``); Asterisk is asked to send no
# other (``filter_events``), and any other that comes is dropped.
_HANDLED = frozenset(
    {"StasisStart", "StasisEnd", "ChannelDestroyed", "PlaybackFinished", "ChannelDtmfReceived"}
)
# The answer to the reconciliation's list of channels is one message: hundreds of
# calls' channels are a few hundred kilobytes.
_LARGEST_MESSAGE = 64 * 1024 * 1024


@dataclass
class Leg:
    """A channel Pledgeline rang: a volunteer's or a specialist's seat."""

    channel: str
    call: str
    seat: str
    agent_id: int
    consult: bool = False
    answered: bool = False
    # Taken back by Pledgeline (a newer bridge, a hang-up): no event is sent for it.
    withdrawn: bool = False


@dataclass
class Dial:
    """A callback being dialled (``dial``), until its outcome is told."""

    call: str  # the callback's call id (callback-<n>): the caller's channel id too
    callback_id: int
    attempt: int
    number: str
    hotline: str | None  # the number the caller once dialled: their screen shows it
    seat: str
    agent_id: int

    @property
    def seat_leg(self) -> str:
        """One channel per attempt: a ``dial`` delivered twice rings the seat once."""
        return f"{DIAL_PREFIX}{self.callback_id}-{self.attempt}"

    @property
    def ringback(self) -> str:
        return f"pl-ringback-{self.seat_leg}"


@dataclass
class Caller:
    channel: str
    on_hold: bool = False  # wants music on hold when no prompt plays
    # Music on hold may be playing: only then is it stopped (one ARI request less
    # on every call's way to its volunteer). A caller found by a reconciliation
    # may have it: True there.
    moh: bool = False
    prompt: str | None = None  # the playback id of a prompt playing
    hangup_after_prompt: bool = False
    leaving: bool = False  # sent on by Pledgeline (transfer, hang-up): no call.hangup


def _unanswered(cause: int | None) -> str:
    """Why a line ended unanswered, from its hang-up cause."""
    return "failed" if cause is None else _UNANSWERED_CAUSES.get(cause, "failed")


def _up(channel: dict[str, Any]) -> bool:
    """An originated channel answered (not ringing any more)."""
    return channel.get("state") == "Up"


class AsteriskPlatform(TelephonyPlatform):
    name: ClassVar[str] = "asterisk"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.ari = AriClient(
            settings.asterisk_ari_url,
            settings.asterisk_ari_user,
            settings.asterisk_ari_password,
            settings.asterisk_ari_app,
        )
        self._db: Database | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._callers: dict[str, Caller] = {}
        self._legs: dict[str, Leg] = {}
        self._call_ids: dict[int, str] = {}  # Pledgeline's call id -> caller channel
        self._dials: dict[str, Dial] = {}  # callbacks being dialled, by call id
        # One lane of events per call (its caller's channel): a call's events are
        # handled in order, different calls' at the same time (one slow database
        # transaction or ARI request no longer holds up every other call).
        self._lanes: dict[str, asyncio.Task[None]] = {}
        self._playbacks = itertools.count(1)
        self._dtmf = itertools.count(1)
        self.connected = asyncio.Event()  # the events websocket is up and reconciled
        self.unasked_events = 0  # events of a type the adapter does not act on
        self.reconciliations = 0
        self.lease = AriLease(
            settings.database_url,
            lock_key(settings.asterisk_ari_url, settings.asterisk_ari_app),
        )
        self.holding = False  # this process holds the ARI connection (the lease)

    @classmethod
    def from_settings(cls, settings: Settings) -> AsteriskPlatform:
        return cls(settings)

    # --- lifecycle ----------------------------------------------------------------

    async def start(self, db: Database) -> None:
        self._db = db
        db.on_events.append(self._on_events)
        self._spawn(self._hold())

    async def stop(self) -> None:
        if self._db is not None and self._on_events in self._db.on_events:
            self._db.on_events.remove(self._on_events)
        await stop_tasks(list(self._tasks))
        await self.lease.release()
        await self.ari.close()

    def accepts_commands(self) -> bool:
        return self.holding and self.connected.is_set()

    async def _hold(self) -> None:
        """Take the lease, hold the events websocket while it lasts; when it is lost,
        let go (another process takes over) and stand by to take it again."""
        while True:
            await self.lease.acquire()
            self.holding = True
            events = asyncio.create_task(self._events_loop())
            lost = asyncio.create_task(self.lease.lost())
            try:
                await asyncio.wait({events, lost}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                self.holding = False
                self.connected.clear()
                await stop_tasks([events, lost, *self._lanes.values()])
                self._lanes.clear()
                await self.lease.release()
                # What this process knew is the next holder's to rebuild (reconciliation).
                self._callers.clear()
                self._legs.clear()
                self._dials.clear()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- the events websocket -------------------------------------------------------

    async def _events_loop(self) -> None:
        delay = RECONNECT_FIRST
        while True:
            try:
                async with websockets.connect(
                    self.ari.events_url, ping_interval=10, max_size=_LARGEST_MESSAGE
                ) as ws:
                    log.info("ARI events connected (%s)", self.settings.asterisk_ari_url)
                    delay = RECONNECT_FIRST
                    await self._connected(ws)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("ARI events lost (%r), again in %.1fs", exc, delay)
            finally:
                self.ari.detach()
            self.connected.clear()
            await asyncio.sleep(delay)
            delay = min(delay * 2, RECONNECT_LONGEST)

    async def _connected(self, ws: Any) -> None:
        """Read the websocket until it closes. The requests' answers arrive on it too,
        so it is read from the start; the events that arrive before the reconciliation
        is over wait until it is, and are then handled in their order."""
        early: list[dict[str, Any]] = []

        async def read() -> None:
            async for raw in ws:
                message = orjson.loads(raw)
                if self.ari.take_response(message):
                    continue
                if self.connected.is_set():
                    self._enqueue(message)
                else:
                    early.append(message)

        reader = asyncio.create_task(read())
        try:
            await self.ari.attach(ws)
            await self.ari.filter_events(_HANDLED)
            await self._reconcile()
            for message in early:
                self._enqueue(message)
            self.connected.set()
            await reader
        finally:
            reader.cancel()

    def _lane_of(self, event: dict[str, Any]) -> str:
        """The call an event belongs to: its caller's channel (a seat's leg is its call's)."""
        if event.get("type") == "PlaybackFinished":
            return str(event["playback"].get("target_uri", "")).removeprefix("channel:")
        chan = str((event.get("channel") or {}).get("id", ""))
        leg = self._legs.get(chan)
        if leg is not None:
            return leg.call
        args = event.get("args") or []
        if event.get("type") == "StasisStart" and len(args) > 1 and args[0] != "inbound":
            return str(args[1])  # a leg rung by an earlier run: its call is in its arguments
        return chan

    def _enqueue(self, event: dict[str, Any]) -> None:
        """Handle the event after the earlier ones of its call, beside other calls'."""
        if event.get("type") not in _HANDLED:
            # Asterisk was asked not to send it (``filter_events``): counted, dropped.
            self.unasked_events += 1
            return
        lane = self._lane_of(event)
        task = asyncio.create_task(self._in_lane(self._lanes.get(lane), event))
        self._lanes[lane] = task
        self._tasks.add(task)

        def done(finished: asyncio.Task[None]) -> None:
            self._tasks.discard(finished)
            if self._lanes.get(lane) is finished:
                del self._lanes[lane]

        task.add_done_callback(done)

    async def _in_lane(self, previous: asyncio.Task[None] | None, event: dict[str, Any]) -> None:
        if previous is not None:
            # asyncio.wait, not await: cancelling this event must not cancel the earlier one.
            await asyncio.wait({previous})
        await self._dispatch(event)

    async def _dispatch(self, event: dict[str, Any]) -> None:
        """One ARI event; a failure is logged and the next event handled."""
        kind = event.get("type")
        try:
            if kind == "StasisStart":
                await self._stasis_start(event)
            elif kind == "StasisEnd":
                await self._channel_gone(event["channel"]["id"])
            elif kind == "ChannelDestroyed":
                await self._channel_gone(event["channel"]["id"], cause=event.get("cause"))
            elif kind == "PlaybackFinished":
                await self._playback_finished(event["playback"])
            elif kind == "ChannelDtmfReceived":
                await self._dtmf_received(event["channel"]["id"], event["digit"])
        except Exception:
            log.exception("ARI event %s not handled", kind)

    async def _stasis_start(self, event: dict[str, Any]) -> None:
        channel = event["channel"]
        args = event.get("args") or []
        role = args[0] if args else "inbound"
        if role == "inbound":
            await self._incoming(channel, args[1] if len(args) > 1 else None)
        elif role in ("seat", "consult"):
            await self._leg_answered(channel["id"], args)
        elif role == "dial":
            await self._dial_seat_answered(channel["id"], args)
        elif role == "callback":
            await self._dial_caller_answered(channel["id"])
        else:
            log.warning("channel %s entered Stasis as %r: hung up", channel["id"], role)
            await self.ari.hangup(channel["id"])

    async def _incoming(self, channel: dict[str, Any], dialled: str | None) -> None:
        chan = channel["id"]
        self._callers[chan] = Caller(chan)
        number = (channel.get("caller") or {}).get("number") or None
        event = CallIncoming(
            event_id=f"ari:{chan}:incoming",
            call_id=chan,
            type="call.incoming",
            caller=number,
            dialled=dialled or (channel.get("dialplan") or {}).get("exten") or "s",
        )
        answer = await self._report(event)
        if answer is None:
            # Refused (no campaign on this number...): nobody will ever take it.
            self._callers.pop(chan, None)
            await self.ari.hangup(chan)
            return
        self._remember(answer, chan)

    def _remember(self, answer: dict[str, Any], chan: str) -> None:
        call = answer.get("call") or {}
        if call.get("id") is not None:
            self._call_ids[int(call["id"])] = chan

    async def _leg_answered(self, chan: str, args: list[str]) -> None:
        leg = self._legs.get(chan)
        if leg is None and len(args) >= 4:
            # Rung by an earlier run of this process: known from its arguments.
            leg = Leg(chan, args[1], args[3], int(args[2]), consult=args[0] == "consult")
            self._legs[chan] = leg
        if leg is None or leg.withdrawn or leg.call not in self._callers:
            await self._withdraw(chan)
            return
        leg.answered = True
        answer = await self._report(
            SeatAnswered(
                event_id=f"ari:{chan}:answered",
                call_id=leg.call,
                type="seat.answered",
                seat=leg.seat,
            )
        )
        call = (answer or {}).get("call") or {}
        if leg.consult:
            return  # the caller is connected by the ``bridge`` (consult) that follows
        if call.get("state") != CallState.CONNECTED or call.get("agent_id") != leg.agent_id:
            # Too late: the call went back to the queue, or ended, meanwhile.
            await self._withdraw(chan)
            return
        try:
            await self._bridge(leg.call, chan)
        except AriError as exc:
            if exc.status not in (400, 404):
                raise
            # A party hung up as the seat answered (Asterisk: "Channel not found"): its
            # own end follows in this lane and ends the call or the seat.
            log.info("call %s: %s gone before the bridge (%s)", leg.call, chan, exc)

    async def _bridge(self, caller_chan: str, leg_chan: str) -> None:
        caller = self._callers.get(caller_chan)
        if caller is not None:
            caller.on_hold = False
            await self._stop_sounds(caller)
        bridge = BRIDGE_PREFIX + caller_chan
        await self.ari.bridge(bridge)
        await self.ari.add_to_bridge(bridge, [caller_chan, leg_chan])

    async def _channel_gone(self, chan: str, cause: int | None = None) -> None:
        if await self._dial_gone(chan, cause):
            return
        caller = self._callers.pop(chan, None)
        if caller is not None:
            for call_id in [k for k, v in self._call_ids.items() if v == chan]:
                del self._call_ids[call_id]
            for leg in [x for x in self._legs.values() if x.call == chan]:
                await self._withdraw(leg.channel)
            await self.ari.destroy_bridge(BRIDGE_PREFIX + chan)
            if not caller.leaving:
                await self._report(
                    CallHangup(event_id=f"ari:{chan}:hangup", call_id=chan, type="call.hangup")
                )
            return
        gone = self._legs.pop(chan, None)
        if gone is None or gone.withdrawn:
            return
        # Unanswered (cause: no answer, busy, refused) or hung up by the seat.
        log.info("seat %s of call %s ended (cause %s)", gone.seat, gone.call, cause)
        await self._report(
            SeatHangup(
                event_id=f"ari:{chan}:hangup", call_id=gone.call, type="seat.hangup", seat=gone.seat
            )
        )

    async def _playback_finished(self, playback: dict[str, Any]) -> None:
        chan = str(playback.get("target_uri", "")).removeprefix("channel:")
        caller = self._callers.get(chan)
        if caller is None or caller.prompt != playback["id"]:
            return
        caller.prompt = None
        if caller.hangup_after_prompt:
            caller.leaving = True
            await self.ari.hangup(chan)
        elif caller.on_hold:
            caller.moh = True
            await self.ari.start_moh(chan, self.settings.asterisk_moh_class)

    async def _dtmf_received(self, chan: str, digit: str) -> None:
        if chan not in self._callers:
            return
        await self._report(
            CallDtmf(
                event_id=f"ari:{chan}:dtmf:{next(self._dtmf)}",
                call_id=chan,
                type="call.dtmf",
                digit=digit,
            )
        )

    async def _report(self, event: Any) -> dict[str, Any] | None:
        """Deliver one event as the webhook would, retried on failure with the same id.
        The answer; None when refused (final) or given up."""
        assert self._db is not None
        raw = json.dumps(event.model_dump()).encode()
        delay = 0.2
        for attempt in range(1, 9):
            try:
                _status, answer = await inbound.handle(self._db, event, raw)
                return answer
            except AppError as exc:
                log.info("event %s for %s refused: %s", event.type, event.call_id, exc)
                return None
            except Exception as exc:
                log.warning(
                    "event %s for %s failed (attempt %s): %r",
                    event.type,
                    event.call_id,
                    attempt,
                    exc,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 4.0)
        log.error("event %s for %s given up", event.type, event.call_id)
        return None

    # --- reconciliation -------------------------------------------------------------

    async def _reconcile(self) -> None:
        """Asterisk's channels against the live calls, after each (re)connection."""
        assert self._db is not None
        channels = {c["id"]: c for c in await self.ari.channels()}
        async with self._db.read() as session:
            live_states = [s.value for s in CALL_LIVE_STATES if s != CallState.WRAP_UP]
            stmt = select(Call.id, Call.provider_call_id).where(Call.state.in_(live_states))
            live = {
                provider: call_id
                for call_id, provider in (await session.execute(stmt)).all()
                if not provider.startswith(_NOT_A_CHANNEL)
            }
        # Callbacks: those connected are calls like the others, those being dialled
        # have their channels adopted (none of which is hung up here).
        connected, handled = await self._reconcile_dials(channels)
        live.update(connected)
        for provider, call_id in live.items():
            self._call_ids[call_id] = provider
            if provider in channels:
                self._callers.setdefault(provider, Caller(provider, moh=True))
            else:
                self._callers.pop(provider, None)
                await self._report(
                    CallHangup(
                        event_id=f"ari:{provider}:hangup", call_id=provider, type="call.hangup"
                    )
                )
        for chan, channel in channels.items():
            if chan in live or chan in handled:
                continue
            leg = self._legs.get(chan)
            if chan.startswith(LEG_PREFIX):
                if leg is None and self._ours(channel):
                    # A seat talking, rung by another process (or this one before a
                    # restart): known again from its Stasis arguments.
                    args = str(channel["dialplan"].get("app_data", "")).split(",")[1:]
                    if len(args) >= 4 and args[1] in live:
                        self._legs[chan] = Leg(
                            chan, args[1], args[3], int(args[2]), args[0] == "consult", True
                        )
                        continue
                elif leg is not None and leg.call in live:
                    continue  # a seat this process rings or talks to, for a live call
            elif not self._ours(channel):
                continue  # not the hotline's (another application's)
            log.info("reconciliation: channel %s belongs to no live call: hung up", chan)
            await self._withdraw(chan)
        self.reconciliations += 1

    def _ours(self, channel: dict[str, Any]) -> bool:
        dialplan = channel.get("dialplan") or {}
        app_data = str(dialplan.get("app_data", ""))
        return dialplan.get("app_name") == "Stasis" and (
            app_data.split(",")[0] == self.settings.asterisk_ari_app
        )

    async def _on_events(self, events: list[Any]) -> None:
        """A call back in its queue (ring timeout, screen gone): its ringing seat stops."""
        for event in events:
            self._dial_ended_elsewhere(event)
            if event.type != "call.requeued" or event.call_id is None:
                continue
            chan = self._call_ids.get(int(event.call_id))
            for leg in [x for x in self._legs.values() if x.call == chan and not x.answered]:
                self._spawn(self._withdraw(leg.channel))

    # --- commands -------------------------------------------------------------------

    async def send(self, command: dict[str, Any]) -> None:
        try:
            await self._command(command)
        except AriError as exc:
            raise DeliveryFailed(str(exc)) from exc

    async def _command(self, command: dict[str, Any]) -> None:
        name, chan = command["command"], str(command["call_id"])
        args = command.get("args") or {}
        if name == "dial":
            await self._dial(chan, args)
            return
        caller = self._callers.get(chan)
        if caller is None:
            log.info("command %s for %s: no such caller (over)", name, chan)
            return  # commands for calls that are over are ignored (docs/telephony.md)
        if name == "answer":
            await self.ari.answer(chan)
        elif name == "play":
            await self._play(caller, args, int(command["id"]))
        elif name == "hangup":
            for leg in [x for x in self._legs.values() if x.call == chan]:
                await self._withdraw(leg.channel)
            if caller.prompt is not None:
                caller.hangup_after_prompt = True  # the message is heard first
            else:
                caller.leaving = True
                await self.ari.hangup(chan)
        elif name == "bridge" and args.get("consult"):
            await self._consult_bridge(caller, args)
        elif name in ("bridge", "consult"):
            await self._ring(caller, args, int(command["id"]), consult=name == "consult")
        elif name == "transfer":
            caller.leaving = True
            await self.ari.continue_in_dialplan(chan, "pledgeline-transfer", str(args["number"]))
        elif name == "hold":
            await self.ari.remove_from_bridge(BRIDGE_PREFIX + chan, chan)
            caller.on_hold = True
            caller.moh = True
            await self.ari.start_moh(chan, self.settings.asterisk_moh_class)
        elif name == "unhold":
            caller.on_hold = False
            await self._stop_sounds(caller)
            volunteer = [x for x in self._legs.values() if x.call == chan and not x.consult]
            await self.ari.add_to_bridge(
                BRIDGE_PREFIX + chan, [chan, *[x.channel for x in volunteer if x.answered]]
            )
        elif name == "consult_cancel":
            for leg in [x for x in self._legs.values() if x.call == chan and x.consult]:
                await self._withdraw(leg.channel)
        else:
            log.warning("command %s not carried by Asterisk", name)

    async def _play(self, caller: Caller, args: dict[str, Any], command_id: int) -> None:
        prompt = args.get("prompt")
        if args.get("message") == "hold":
            caller.on_hold = True
            media = [self.settings.asterisk_welcome_sound]
        elif prompt is not None and prompt != "callback_confirmed":
            # The expected wait, a callback offer: no recordings of figures here, so
            # the waiting announcement again, unless a prompt is playing already.
            if caller.prompt is not None:
                return
            media = [self.settings.asterisk_welcome_sound]
        else:
            media = self.settings.asterisk_message_sound.split(",")
        await self._stop_sounds(caller)
        playback = f"pl-play-{caller.channel}-{command_id}"
        caller.prompt = playback
        await self.ari.play(caller.channel, [m.strip() for m in media if m.strip()], playback)

    async def _stop_sounds(self, caller: Caller) -> None:
        if caller.moh:
            caller.moh = False
            await self.ari.stop_moh(caller.channel)
        if caller.prompt is not None:
            playback, caller.prompt = caller.prompt, None
            await self.ari.stop_playback(playback)

    async def _ring(
        self, caller: Caller, args: dict[str, Any], command_id: int, *, consult: bool
    ) -> None:
        """Ring a seat for the call; a ring still going for it (not answered) is taken
        back first: only the newest offer's seat may report."""
        chan = caller.channel
        for leg in [x for x in self._legs.values() if x.call == chan and not x.answered]:
            if leg.consult == consult:
                await self._withdraw(leg.channel)
        seat, agent_id = str(args["seat"]), int(args["agent_id"])
        leg_chan = f"{LEG_PREFIX}{command_id}"
        if leg_chan in self._legs:
            return  # a command delivered twice rings once
        self._legs[leg_chan] = Leg(leg_chan, chan, seat, agent_id, consult=consult)
        variables = {}
        if args.get("auto_answer"):
            seconds = int(args.get("auto_answer_seconds") or 0)
            variables["PJSIP_HEADER(add,Call-Info)"] = f"<sip:pledgeline>;answer-after={seconds}"
            variables["PJSIP_HEADER(add,Alert-Info)"] = "<http://127.0.0.1>;info=alert-autoanswer"
        role = "consult" if consult else "seat"
        try:
            await self.ari.originate(
                leg_chan,
                dial_string(seat),
                f"{role},{chan},{agent_id},{seat}",
                # The queue's ring timeout: Asterisk stops ringing when Pledgeline's
                # timer would.
                timeout=int(args.get("ring_seconds") or DEFAULT_RING_SECONDS),
                variables=variables,
            )
        except AriError:
            # The seat cannot be rung (unknown endpoint, not registered): as a
            # refused offer, the call goes back to the queue.
            leg = self._legs.pop(leg_chan)
            log.warning("seat %s cannot be rung for %s", seat, chan)
            await self._report(
                SeatHangup(
                    event_id=f"ari:{leg_chan}:hangup", call_id=chan, type="seat.hangup", seat=seat
                )
            )
            del leg

    async def _consult_bridge(self, caller: Caller, args: dict[str, Any]) -> None:
        """The specialist answered: the caller is bridged to them; the volunteer leaves.
        A command delivered twice bridges once (the second finds it done)."""
        chan = caller.channel
        legs = [x for x in self._legs.values() if x.call == chan and not x.withdrawn]
        if any(not x.consult and x.answered and x.agent_id == args.get("agent_id") for x in legs):
            return  # delivered again: the caller is with the specialist already
        specialist = [x for x in legs if x.consult and x.answered][-1:]
        for leg in specialist:
            # From now on the specialist's leg is the call's seat; said before any
            # await, so that a second delivery meanwhile sees it.
            leg.consult = False
        for leg in [x for x in legs if not x.consult and x not in specialist]:
            await self._withdraw(leg.channel)
        if not specialist:
            log.warning("consult bridge for %s: no answered specialist", chan)
            return
        await self._bridge(chan, specialist[0].channel)

    async def _withdraw(self, chan: str) -> None:
        """Hang up a channel Pledgeline no longer wants, reporting nothing for it."""
        leg = self._legs.get(chan)
        if leg is not None:
            leg.withdrawn = True
        with contextlib.suppress(AriError):
            await self.ari.hangup(chan)

    # --- callbacks: dial ------------------------------------------------------------

    async def _dial(self, call_id: str, args: dict[str, Any]) -> None:
        """``dial``: the volunteer's seat is rung first, the caller once it answers.

        Seat first, as a volunteer expects: they have just accepted the callback on
        screen, their phone rings at once, and picking up they hear the caller's
        line ring. The caller, answering, finds a volunteer already there: never the
        silence (or a second wait) of a call answered with nobody on it, which is
        what makes people hang up. Delivered twice, it rings once: the attempt's
        seat leg is there already, or the callback is no longer being dialled."""
        if call_id in self._dials:
            return
        dial = await self._dial_of(call_id, seat=str(args["seat"]))
        if (
            dial is None
            or dial.callback_id != int(args["callback_id"])
            or dial.agent_id != int(args["agent_id"])
        ):
            log.info("dial %s: the callback is not being dialled (any more): ignored", call_id)
            return
        if call_id in self._dials or dial.seat_leg in self._legs:
            return  # the same command, delivered again meanwhile
        self._dials[call_id] = dial
        self._legs[dial.seat_leg] = Leg(dial.seat_leg, call_id, dial.seat, dial.agent_id)
        ring = min(int(args.get("ring_seconds") or DEFAULT_RING_SECONDS), DIAL_SEAT_RING_SECONDS)
        try:
            await self.ari.originate(
                dial.seat_leg,
                dial_string(dial.seat),
                f"dial,{call_id},{dial.agent_id},{dial.seat}",
                timeout=ring,
                caller_id=dial.number,  # the volunteer's phone shows whom it calls
            )
        except AriError:
            log.warning("seat %s cannot be rung for callback %s", dial.seat, call_id)
            await self._dial_gone(dial.seat_leg, None)

    async def _dial_of(self, call_id: str, seat: str | None = None) -> Dial | None:
        """The callback ``call_id`` names while it is being dialled (the database's
        word, whichever process accepted it); ``seat``: the seat its ``dial`` named,
        else the volunteer's seat now."""
        assert self._db is not None
        async with self._db.read() as session:
            stmt = (
                select(Call.id, Call.dial_attempts, Call.caller_number, Call.dialled, Agent.id)
                .add_columns(Agent.seat_id)
                .join(Agent, Agent.id == Call.agent_id)
                .where(
                    Call.provider_call_id == call_id,
                    Call.kind == CALL_KIND_CALLBACK,
                    Call.state == CallState.DIALING,
                )
            )
            row = (await session.execute(stmt)).first()
            if row is None or row[2] is None:
                return None
            callback_id, attempt, number, hotline, agent_id, seat_id = row
            if seat is None:
                seat = (await cache_of(self._db).get(session)).seat_address(seat_id, agent_id)
        return Dial(call_id, callback_id, attempt, number, hotline, seat, agent_id)

    async def _dial_seat_answered(self, chan: str, args: list[str]) -> None:
        """The volunteer picked up: their phone hears the caller's line ring."""
        dial = self._dials.get(args[1]) if len(args) > 1 else None
        leg = self._legs.get(chan)
        if dial is None or dial.seat_leg != chan or leg is None or leg.withdrawn:
            await self._withdraw(chan)  # a dial over meanwhile: nobody to call
            return
        leg.answered = True
        await self._dial_caller(dial)

    async def _dial_caller(self, dial: Dial) -> None:
        """Ring the caller's number through the trunk, on a channel whose id is the
        callback's call id (from its answer on, the caller's channel of a call)."""
        with contextlib.suppress(AriError):
            await self.ari.play(dial.seat_leg, [DIAL_RINGBACK], dial.ringback)
        try:
            await self.ari.originate(
                dial.call,
                trunk_dial_string(dial.number, self.settings.asterisk_trunk_endpoint),
                f"callback,{dial.call}",
                timeout=DIAL_CALLER_RING_SECONDS,
                caller_id=dial.hotline,  # the caller sees the hotline they called
            )
        except (AriError, ValueError) as exc:
            log.warning("callback %s: %s cannot be dialled (%s)", dial.call, dial.number, exc)
            await self._dial_gone(dial.call, None)

    async def _dial_caller_answered(self, chan: str) -> None:
        """The caller picked up: ``dial.answered``, then caller and volunteer bridged."""
        dial = self._dials.pop(chan, None)
        if dial is None:
            await self.ari.hangup(chan)  # a dial over meanwhile: nobody on the other side
            return
        self._callers[chan] = Caller(chan)
        answer = await self._report(
            DialAnswered(
                event_id=f"ari:{dial.seat_leg}:dial.answered",
                call_id=chan,
                type="dial.answered",
                callback_id=dial.callback_id,
            )
        )
        call = (answer or {}).get("call") or {}
        if (
            answer is None
            or call.get("state") != CallState.CONNECTED
            or call.get("agent_id") != dial.agent_id
        ):
            # Too late: Pledgeline counted the attempt unanswered meanwhile (its own
            # dial timeout); the volunteer is free, the callback waits to be tried again.
            self._callers.pop(chan, None)
            await self._withdraw(dial.seat_leg)
            await self.ari.hangup(chan)
            return
        self._remember(answer, chan)
        await self.ari.stop_playback(dial.ringback)
        try:
            await self._bridge(chan, dial.seat_leg)
        except AriError as exc:
            if exc.status not in (400, 404):
                raise
            # A side hung up as the caller answered: its end follows in this lane.
            log.info("callback %s: a side gone before the bridge (%s)", chan, exc)

    async def _dial_gone(self, chan: str, cause: int | None) -> bool:
        """A channel of a dial not answered yet ended: the attempt is over, unanswered,
        and its other side is hung up. False for any other channel."""
        if not chan.startswith((DIAL_PREFIX, CALLBACK_ID_PREFIX)):
            return False
        dial = next((d for d in self._dials.values() if chan in (d.call, d.seat_leg)), None)
        if dial is None:
            return False
        del self._dials[dial.call]
        if chan == dial.seat_leg:
            leg = self._legs.pop(chan, None)
            # The volunteer's seat did not answer, or they hung up while the caller's
            # line rang: nobody would take the caller.
            seat = "hangup" if leg is not None and leg.answered else _unanswered(cause)
            reason = f"seat_{seat}"
            await self._withdraw(dial.call)
        else:
            reason = _unanswered(cause)
            await self._withdraw(dial.seat_leg)
        log.info("callback %s unanswered: %s (cause %s)", dial.call, reason, cause)
        await self._report(
            DialUnanswered(
                event_id=f"ari:{dial.seat_leg}:dial.unanswered",
                call_id=dial.call,
                type="dial.unanswered",
                callback_id=dial.callback_id,
                reason=reason,
            )
        )
        return True

    def _dial_ended_elsewhere(self, event: Any) -> None:
        """A dial Pledgeline ended itself (its dial timeout): both phones stop, untold."""
        if event.type != "callback.unanswered":
            return
        for dial in [d for d in self._dials.values() if d.callback_id == event.call_id]:
            del self._dials[dial.call]
            self._spawn(self._withdraw(dial.seat_leg))
            self._spawn(self._withdraw(dial.call))

    async def _reconcile_dials(
        self, channels: dict[str, dict[str, Any]]
    ) -> tuple[dict[str, int], set[str]]:
        """The callbacks' channels after a (re)connection. A connected callback is a
        live call (returned, with its seat leg kept); one being dialled goes on from
        where it is: its seat leg and caller's line adopted, the caller rung when the
        seat had answered, the answer told when the caller had, the attempt over when
        its seat leg is gone. Its channels are returned (the caller of this one leaves
        them alone); those of callbacks not dialled any more are hung up."""
        assert self._db is not None
        async with self._db.read() as session:
            stmt = (
                select(Call.provider_call_id, Call.id, Call.state, Call.dial_attempts)
                .add_columns(Call.agent_id, Agent.seat_id)
                .join(Agent, Agent.id == Call.agent_id)
                .where(
                    Call.kind == CALL_KIND_CALLBACK,
                    Call.state.in_([CallState.CONNECTED.value, CallState.DIALING.value]),
                )
            )
            rows = (await session.execute(stmt)).all()
            config = await cache_of(self._db).get(session)
        connected: dict[str, int] = {}
        handled: set[str] = set()
        dialled: set[str] = set()
        for call_id, callback_id, state, attempt, agent_id, seat_id in rows:
            seat_leg = f"{DIAL_PREFIX}{callback_id}-{attempt}"
            handled |= {call_id, seat_leg}
            if state == CallState.CONNECTED:
                connected[call_id] = callback_id
                if seat_leg in channels:
                    seat = config.seat_address(seat_id, agent_id)
                    self._legs.setdefault(
                        seat_leg, Leg(seat_leg, call_id, seat, agent_id, answered=True)
                    )
                continue
            dialled.add(call_id)
            await self._dial_again(call_id, channels)
        for call_id in set(self._dials) - dialled:
            del self._dials[call_id]  # over meanwhile (ended by another process)
        for chan in channels:
            if chan not in handled and chan.startswith((DIAL_PREFIX, CALLBACK_ID_PREFIX)):
                log.info("reconciliation: %s belongs to no callback being dialled", chan)
                await self._withdraw(chan)
                handled.add(chan)
        return connected, handled

    async def _dial_again(self, call_id: str, channels: dict[str, dict[str, Any]]) -> None:
        """A callback being dialled, at a (re)connection: on from where its channels are."""
        dial = self._dials.get(call_id) or await self._dial_of(call_id)
        if dial is None:
            return
        seat, caller = channels.get(dial.seat_leg), channels.get(dial.call)
        if seat is None and caller is None and call_id not in self._dials:
            return  # not rung yet: its ``dial`` is still to be delivered
        self._dials[call_id] = dial
        leg = self._legs.setdefault(
            dial.seat_leg, Leg(dial.seat_leg, call_id, dial.seat, dial.agent_id)
        )
        if seat is None:
            await self._dial_gone(dial.seat_leg, None)  # its end was not heard
            return
        leg.answered = _up(seat)
        if caller is not None and _up(caller):
            await self._dial_caller_answered(call_id)  # its answer was not told
        elif caller is None and leg.answered:
            await self._dial_caller(dial)  # the seat answered; the caller is rung (again)

    # --- browser softphones -------------------------------------------------------

    async def provision_softphone(self, endpoint: str, username: str, password: str) -> None:
        """The softphone's endpoint, aor and auth, in Asterisk's memory (sorcery.conf):
        a WebRTC endpoint that registers as ``endpoint`` with these credentials."""
        try:
            await self.ari.put_config(
                "auth",
                username,
                {"auth_type": "userpass", "username": username, "password": password},
            )
            await self.ari.put_config(
                "aor", endpoint, {"max_contacts": "1", "remove_existing": "yes"}
            )
            await self.ari.put_config(
                "endpoint",
                endpoint,
                {
                    "auth": username,
                    "aors": endpoint,
                    "context": "pledgeline-seats",
                    "disallow": "all",
                    "allow": "ulaw,alaw",
                    "webrtc": "yes",
                    "dtls_auto_generate_cert": "yes",
                },
            )
        except AriError as exc:
            raise DeliveryFailed(str(exc)) from exc

    async def revoke_softphone(self, endpoint: str, username: str) -> None:
        try:
            await self.ari.delete_config("endpoint", endpoint)
            await self.ari.delete_config("aor", endpoint)
            await self.ari.delete_config("auth", username)
        except AriError as exc:
            raise DeliveryFailed(str(exc)) from exc
