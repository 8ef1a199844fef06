"""The screens' websockets: ``/ws/agent`` and ``/ws/supervisor``.

Handshake: ``?token=`` (from ``POST /auth/ws-token``, one handshake within a minute) and,
when reconnecting, ``&last_seq=`` (the last ``seq`` the screen saw). The
``Origin`` header must be the app's own or one of ``PLEDGELINE_ALLOWED_ORIGINS``.

Server messages are ``{"type", "seq", "at", "data"}``; only events, ``snapshot``
and ``resync`` carry a position (``seq``) to resume from, the others have
``seq: null``. Kinds: events, ``snapshot``
(first connect), ``resync`` followed by a ``snapshot`` (too far behind),
``stats`` (supervisors, once a second), ``ack``/``error`` for commands,
``pong``. Screen commands are
``{"type": "command", "client_id", "command", "args"}``; a screen pings every
``PLEDGELINE_HEARTBEAT_SECONDS`` and is cut after three silent periods.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Any

import orjson
from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import and_, or_, select

from app import cardguard
from app.acd import actions, lifecycle, repository
from app.acd.models import Agent
from app.auth.service import Principal, Role, consume_ws_token
from app.background import BackgroundTask, FailedPasses
from app.db import Database, utcnow
from app.errors import AppError, Forbidden
from app.i18n import N_
from app.i18n.catalogues import translate
from app.i18n.negotiation import negotiate, request_language
from app.i18n.validation import validation_message
from app.realtime.feed import EventFeed
from app.realtime.hub import (
    CAMPAIGN_WIDE,
    CLOSE,
    CloseCode,
    Hub,
    Screen,
    dumps,
    encode,
    view_for,
)
from app.realtime.models import Event
from app.realtime.outbox import emit
from app.realtime.snapshots import agent_snapshot, supervisor_snapshot
from app.settings import Settings

log = logging.getLogger(__name__)
router = APIRouter()

COMMANDS_PER_SECOND = 10.0
COMMAND_BURST = 20
FLOOD_LIMIT = 50  # refused commands in a row before the socket is cut
# A screen's messages are small: anything larger or deeper is abuse, and the socket
# is closed (with a log line) before the message is even parsed or walked.
MAX_MESSAGE_BYTES = 64 * 1024
MAX_NESTING = 16
_TOO_DEEP = N_("messages nest at most {levels} levels")


def _text_depth(text: str) -> int:
    """How deep brackets nest in a (possibly invalid) JSON text, strings skipped."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def _too_deep(value: Any, limit: int = MAX_NESTING) -> bool:
    """Whether a parsed message nests objects or lists deeper than ``limit``
    (iterative: a hostile message cannot exhaust the stack here)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > limit:
                return True
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return False


class _Command(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: str
    client_id: str = Field(min_length=1, max_length=64)
    command: str = Field(min_length=1, max_length=32)
    args: dict[str, Any] = Field(default_factory=dict)


class _PauseArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(default="break", pattern=r"^[a-z_]{1,64}$")
    agent_id: int | None = None


class _WrapUpArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    disposition: str | None = Field(default=None, pattern=r"^[a-z_]{1,64}$")
    seconds: int = Field(default=30, ge=1, le=600)
    agent_id: int | None = None


class _AgentArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    agent_id: int | None = None


class _TransferArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    queue_id: int | None = None
    number: str | None = Field(default=None, pattern=r"^\+[1-9][0-9]{5,14}$")


class _ScriptChoiceArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    script: str = Field(pattern=r"^[a-z][a-z0-9_\-]{0,63}$")
    button: str = Field(pattern=r"^[a-z][a-z0-9_\-]{0,63}$")


class _PageAnswerArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    page_id: int = Field(ge=1, le=2**63 - 1)


class _BroadcastArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = Field(min_length=1, max_length=500)


@dataclass
class _Bucket:
    """Token bucket: a screen may send bursts, not floods."""

    tokens: float = COMMAND_BURST
    stamp: float = 0.0

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(COMMAND_BURST, self.tokens + (now - self.stamp) * COMMANDS_PER_SECOND)
        self.stamp = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


# What sending to a screen that has gone raises.
_GONE = (WebSocketDisconnect, RuntimeError, ConnectionError)


def _message(type: str, seq: int | None, data: dict[str, Any]) -> dict[str, Any]:
    return {"type": type, "seq": seq, "at": utcnow().isoformat(), "data": data}


def _origin_allowed(websocket: WebSocket, settings: Settings) -> bool:
    origin = websocket.headers.get("origin")
    if origin is None:
        return True  # not a browser: nothing cross-site to fear
    allowed = {o.strip().rstrip("/") for o in settings.allowed_origins.split(",") if o.strip()}
    host = websocket.headers.get("host", "")
    allowed |= {f"http://{host}", f"https://{host}"}
    return origin.rstrip("/") in allowed


class ScreenConnection:
    def __init__(self, websocket: WebSocket, kind: str) -> None:
        self.ws = websocket
        self.kind = kind
        state = websocket.app.state
        self.db: Database = state.db
        self.settings: Settings = state.settings
        self.hub: Hub = state.hub
        self.feed: EventFeed = state.feed
        self.sent_upto = 0
        self.bucket = _Bucket(stamp=time.monotonic())
        self.refused_in_row = 0
        # Refusals speak the user's language once known (run), until then the browser's.
        self.language = request_language(websocket)

    async def _send(self, message: dict[str, Any]) -> None:
        await self.ws.send_text(dumps(message))

    # --- handshake ----------------------------------------------------------------

    async def _principal(self) -> Principal | None:
        token = self.ws.query_params.get("token", "")
        return await consume_ws_token(self.db, self.settings.secret_key, token)  # once only

    def _role_fits(self, principal: Principal) -> bool:
        if self.kind == "agent":
            return principal.role == Role.AGENT and principal.agent_id is not None
        return principal.role in (Role.SUPERVISOR, Role.ADMIN)

    async def run(self) -> None:
        if not _origin_allowed(self.ws, self.settings):
            await self.ws.close(code=CloseCode.FORBIDDEN)
            return
        await self.ws.accept()
        principal = await self._principal()
        if principal is None:
            await self.ws.close(code=CloseCode.UNAUTHORIZED, reason="token invalid or expired")
            return
        if not self._role_fits(principal):
            await self.ws.close(code=CloseCode.FORBIDDEN, reason="role not allowed here")
            return
        self.language = negotiate(
            principal.language,
            self.ws.headers.get("accept-language"),
            principal.campaign_language,
        )
        screen = Screen(
            kind=self.kind,
            campaign_id=principal.campaign_id,
            agent_id=principal.agent_id,
            session_id=principal.session_id,
            queue_size=self.settings.screen_queue_size,
            site_id=principal.site_id if self.kind == "supervisor" else None,
        )
        self.hub.add(screen)  # first, so nothing published from now on is missed
        try:
            if screen.site_id is not None:
                screen.site_agents = await _site_agents(self.db, screen.site_id)
            if principal.agent_id is not None and self.kind == "agent":
                await self._presence(principal.agent_id, opened=True)
            await self._catch_up(screen)
            tasks = [
                asyncio.create_task(self._write(screen)),
                asyncio.create_task(self._read(screen, principal)),
            ]
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in tasks:
                task.cancel()
                # A screen that went away mid-send is the normal end of a socket.
                with contextlib.suppress(asyncio.CancelledError, *_GONE):
                    await task
        except _GONE:
            pass  # left during the handshake or the catch-up
        finally:
            self.hub.remove(screen)
            if principal.agent_id is not None and self.kind == "agent":
                await self._presence(principal.agent_id, opened=False)

    async def _presence(self, agent_id: int, *, opened: bool) -> None:
        try:
            async with self.db.unit_of_work() as uow:
                agent = await repository.get_agent(uow.session, agent_id, lock=True)
                if opened:
                    await lifecycle.screen_opened(uow, agent, utcnow())
                else:
                    await lifecycle.screen_closed(
                        uow, agent, utcnow(), self.settings.screen_grace_seconds
                    )
        except Exception:
            log.exception("screen presence update failed for agent %s", agent_id)

    # --- catching up --------------------------------------------------------------

    def _filter(self, screen: Screen) -> Any:
        if self.kind == "supervisor":
            if screen.campaign_id is None:
                return True  # an admin's screen: every campaign
            campaign: Any = Event.campaign_id == screen.campaign_id
            if screen.site_id is None:
                return campaign
            return and_(
                campaign,
                or_(Event.agent_id.is_(None), Event.agent_id.in_(sorted(screen.site_agents))),
            )
        return or_(
            Event.agent_id == screen.agent_id,
            and_(Event.type.in_(CAMPAIGN_WIDE), Event.campaign_id == screen.campaign_id),
        )

    async def _snapshot(self, screen: Screen) -> dict[str, Any]:
        async with self.db.read() as session:
            if self.kind == "agent" and screen.agent_id is not None:
                return await agent_snapshot(session, screen.agent_id)
            return await supervisor_snapshot(
                session,
                screen.campaign_id,
                utcnow(),
                window_seconds=self.settings.stats_window_seconds,
                short_abandon_seconds=self.settings.short_abandon_seconds,
                site_id=screen.site_id,
            )

    async def _catch_up(self, screen: Screen) -> None:
        current = self.feed.last_seq
        raw = self.ws.query_params.get("last_seq")
        last_seq = int(raw) if raw is not None and raw.isdigit() else None
        if last_seq is not None and last_seq <= current:
            async with self.db.read() as session:
                stmt = (
                    select(Event)
                    .where(Event.seq > last_seq, Event.seq <= current, self._filter(screen))
                    .order_by(Event.seq)
                    .limit(self.settings.replay_max_events + 1)
                )
                missed = list((await session.execute(stmt)).scalars())
            if len(missed) <= self.settings.replay_max_events:
                for event in missed:
                    await self._send(view_for(screen.kind, event.as_message()))
                self.sent_upto = current
                return
        if last_seq is not None:
            await self._send(_message("resync", current, {"last_seq": last_seq}))
        await self._send(_message("snapshot", current, await self._snapshot(screen)))
        self.sent_upto = current

    # --- the two directions -------------------------------------------------------

    async def _write(self, screen: Screen) -> None:
        while True:
            item = await screen.queue.get()
            if item is CLOSE:
                await self.ws.close(code=screen.closing or CloseCode.SLOW_CONSUMER)
                return
            if item.type != "stats" and item.seq is not None and item.seq <= self.sent_upto:
                continue  # already sent in the replay or the snapshot
            await self.ws.send_text(item.text)

    async def _read(self, screen: Screen, principal: Principal) -> None:
        idle = 3 * self.settings.heartbeat_seconds
        while True:
            try:
                text = await asyncio.wait_for(self.ws.receive_text(), timeout=idle)
            except TimeoutError:
                screen.close(CloseCode.IDLE)
                return
            except (WebSocketDisconnect, RuntimeError, KeyError):
                return
            if len(text) > MAX_MESSAGE_BYTES or len(text.encode()) > MAX_MESSAGE_BYTES:
                log.warning("screen of %s sent %d bytes: closed", principal.username, len(text))
                screen.close(CloseCode.TOO_BIG)
                return
            reply = await self._handle(text, principal)
            if reply is not None and reply["data"].get("code") == "too_deep":
                log.warning(
                    "screen of %s sent a message nested too deep: closed", principal.username
                )
                screen.close(CloseCode.POLICY)
                return
            if reply is not None:
                if reply.get("type") == "error":
                    self.refused_in_row += 1
                    if self.refused_in_row >= FLOOD_LIMIT:
                        screen.close(CloseCode.FLOOD)
                        return
                elif reply.get("type") == "ack":
                    # Only a command that went through clears the count: pongs do
                    # not, so interleaving pings cannot keep a flood going.
                    self.refused_in_row = 0
                await self._send(reply)

    async def _handle(self, text: str, principal: Principal) -> dict[str, Any] | None:
        try:
            payload = orjson.loads(text)
        except orjson.JSONDecodeError:
            if _text_depth(text) > MAX_NESTING:  # the parser's own limit is far deeper
                return self._error(None, "too_deep", _TOO_DEEP, levels=MAX_NESTING)
            return self._error(None, "malformed_json", N_("the message is not valid JSON"))
        if not isinstance(payload, dict):
            return self._error(None, "malformed_message", N_("a message is a JSON object"))
        if _too_deep(payload):
            return self._error(None, "too_deep", _TOO_DEEP, levels=MAX_NESTING)
        refused = cardguard.find_card_data(payload)  # every text arg, before anything
        if refused is not None:
            card_in_id = "client_id" in (refused.field or "")
            client_id = None if card_in_id else payload.get("client_id")
            return self._refused(client_id, refused)
        kind = payload.get("type")
        if kind == "ping":
            if not self.bucket.take():  # pings share the commands' rate
                return self._error(None, "rate_limited", N_("too many messages; slow down"))
            return _message("pong", None, {})
        if kind != "command":
            return self._error(
                None, "unknown_message_type", N_("unknown message type {kind}"), kind=repr(kind)
            )
        try:
            command = _Command.model_validate(payload)
        except ValidationError as exc:
            first = exc.errors()[0]
            field = ".".join(str(p) for p in first["loc"]) or None
            message = validation_message(self.language, first)
            return _error(payload.get("client_id"), "invalid", message, field)
        if not self.bucket.take():
            return self._error(
                command.client_id, "rate_limited", N_("too many commands; slow down")
            )
        try:
            data = await self._perform(command, principal)
        except ValidationError as exc:
            first = exc.errors()[0]
            field = "args." + ".".join(str(p) for p in first["loc"])
            message = validation_message(self.language, first)
            return _error(command.client_id, "invalid", message, field)
        except AppError as exc:
            return self._refused(command.client_id, exc)
        except Exception:
            # A database hiccup (deadlock, pool timeout) must not cost the screen its socket.
            log.exception("screen command %s failed", command.command)
            return self._error(command.client_id, "internal", N_("the command failed; try again"))
        return _message("ack", None, {"client_id": command.client_id, **data})

    def _error(
        self,
        client_id: str | None,
        code: str,
        message_id: str,
        field: str | None = None,
        **params: object,
    ) -> dict[str, Any]:
        """A refusal in the screen's language (as the REST API answers, app/errors.py)."""
        return _error(client_id, code, translate(self.language, message_id, params), field)

    def _refused(self, client_id: str | None, exc: AppError) -> dict[str, Any]:
        return _error(
            client_id, exc.code, translate(self.language, exc.message_id, exc.params), exc.field
        )

    async def _perform(self, command: _Command, principal: Principal) -> dict[str, Any]:
        if self.kind == "agent":
            assert principal.agent_id is not None
            return await _agent_command(self.db, principal.agent_id, command)
        return await _supervisor_command(self.db, principal, command)


def _error(
    client_id: str | None, code: str, message: str, field: str | None = None
) -> dict[str, Any]:
    return _message(
        "error", None, {"client_id": client_id, "code": code, "message": message, "field": field}
    )


async def _agent_command(db: Database, agent_id: int, command: _Command) -> dict[str, Any]:
    name, args = command.command, command.args
    if name == "ready":
        _AgentArgs.model_validate(args)
        await actions.login_and_ready(db, agent_id)
    elif name == "logout":
        _AgentArgs.model_validate(args)
        await actions.logout(db, agent_id)
    elif name == "pause":
        await actions.pause(db, agent_id, _PauseArgs.model_validate(args).reason)
    elif name == "answer":
        await actions.answer(db, agent_id)
    elif name == "hangup":
        await actions.hangup(db, agent_id)
    elif name == "end_wrap_up":
        await actions.end_wrap_up(db, agent_id, _WrapUpArgs.model_validate(args).disposition)
    elif name == "extend_wrap_up":
        await actions.extend_wrap_up(db, agent_id, _WrapUpArgs.model_validate(args).seconds)
    elif name == "transfer":
        target = _TransferArgs.model_validate(args)
        await actions.transfer(db, agent_id, target.queue_id, target.number)
    elif name in ("flag_prank", "needs_support"):
        from app.rules import service as rules

        _AgentArgs.model_validate(args)
        kind = "prank" if name == "flag_prank" else "needs_support"
        return {"command": name, **await rules.flag(db, agent_id, kind)}
    elif name == "answer_page":
        from app.surge import paging

        page_id = _PageAnswerArgs.model_validate(args).page_id
        return {"command": name, **await paging.answer(db, agent_id, page_id)}
    elif name == "script_choice":
        from app.rules import service as rules

        choice = _ScriptChoiceArgs.model_validate(args)
        return {"command": name, **await rules.choose(db, agent_id, choice.script, choice.button)}
    else:
        raise AppError(
            "unknown command {name!r}", code="unknown_command", field="command", name=name
        )
    return {"command": name}


async def _target_agent(db: Database, principal: Principal, agent_id: int | None) -> int:
    if agent_id is None:
        raise AppError("name the agent", code="invalid", field="args.agent_id")
    async with db.read() as session:
        agent = await repository.get_agent(session, agent_id)
    if principal.role != Role.ADMIN and agent.campaign_id != principal.campaign_id:
        raise Forbidden("this agent belongs to another campaign", field="args.agent_id")
    if principal.site_id is not None and agent.site_id != principal.site_id:
        raise Forbidden("this agent is at another site", field="args.agent_id")
    return agent.id


async def _site_agents(db: Database, site_id: int) -> frozenset[int]:
    """The volunteers of a site, whose events its scoped supervisors get."""
    async with db.read() as session:
        rows = await session.scalars(select(Agent.id).where(Agent.site_id == site_id))
        return frozenset(rows)


async def _supervisor_command(
    db: Database, principal: Principal, command: _Command
) -> dict[str, Any]:
    name, args = command.command, command.args
    if name == "force_pause":
        parsed = _PauseArgs.model_validate(args)
        agent_id = await _target_agent(db, principal, parsed.agent_id)
        await actions.pause(db, agent_id, parsed.reason)
    elif name in ("force_ready", "force_logout"):
        agent_id = await _target_agent(db, principal, _AgentArgs.model_validate(args).agent_id)
        await (actions.ready if name == "force_ready" else actions.logout)(db, agent_id)
    elif name == "end_wrap_up":
        wrap = _WrapUpArgs.model_validate(args)
        agent_id = await _target_agent(db, principal, wrap.agent_id)
        await actions.end_wrap_up(db, agent_id, wrap.disposition or "ended_by_supervisor")
    elif name == "broadcast":
        text = _BroadcastArgs.model_validate(args).text
        if principal.campaign_id is None:
            raise AppError("broadcasts go to one campaign", code="invalid", field="args")
        async with db.unit_of_work() as uow:
            emit(
                uow,
                "supervisor.broadcast",
                campaign_id=principal.campaign_id,
                data={"text": text, "from": principal.username},
            )
    else:
        raise AppError(
            "unknown command {name!r}", code="unknown_command", field="command", name=name
        )
    return {"command": name}


@router.websocket("/ws/agent")
async def agent_socket(websocket: WebSocket) -> None:
    await ScreenConnection(websocket, "agent").run()


@router.websocket("/ws/supervisor")
async def supervisor_socket(websocket: WebSocket) -> None:
    await ScreenConnection(websocket, "supervisor").run()


class StatsTicker(BackgroundTask):
    """Once a second, per campaign watched in this process: one computation, every viewer."""

    def __init__(self, db: Database, hub: Hub, settings: Settings, feed: EventFeed) -> None:
        super().__init__()
        self.db, self.hub, self.settings, self.feed = db, hub, settings, feed

    def start(self) -> None:
        self._launch(self._run, name="stats-ticker")

    async def _run(self) -> None:
        failures = FailedPasses("stats tick")
        while True:
            await asyncio.sleep(1.0)
            try:
                await self.tick()
                failures.succeeded()
            except Exception:
                await asyncio.sleep(failures.failed())

    async def tick(self) -> None:
        by_view: dict[tuple[int | None, int | None], list[Screen]] = {}
        for screen in self.hub.supervisors():
            by_view.setdefault((screen.campaign_id, screen.site_id), []).append(screen)
        for (campaign_id, site_id), screens in by_view.items():
            async with self.db.read() as session:
                data = await supervisor_snapshot(
                    session,
                    campaign_id,
                    utcnow(),
                    window_seconds=self.settings.stats_window_seconds,
                    short_abandon_seconds=self.settings.short_abandon_seconds,
                    site_id=site_id,
                )
            if site_id is not None:
                # The site's volunteers as of now (one added since is followed too).
                site_agents = frozenset(a["id"] for a in data["agents"])
                for screen in screens:
                    screen.site_agents = site_agents
            item = encode("supervisor", _message("stats", None, data))  # once for all
            for screen in screens:
                screen.offer(item)
