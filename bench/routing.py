"""Routing benchmark: full call lifecycles end to end against real server processes.

``pledgeline bench routing --json [key=value ...]`` starts the server(s) on a database
of their own, with the shipped rules and the built-in reverse directory on, creates
the agents through the API (logged in and ready), then drives callers from
``load_processes`` worker processes (``bench/routing_load.py``): each lifecycle is
call.incoming -> (offer seen on the command feed) -> seat.answered -> call.hangup ->
wrap-up/end over HTTP, through every server in turn. Closed loop by default
(``concurrency`` callers back to back: the most calls a second); ``rate=N`` is an
open loop instead (N calls a second arrive whatever happens: latency at a load).
Figures are taken over ``duration`` seconds after ``warmup`` seconds.

Options (all ``key=value``):

``db``            postgresql (default) or sqlite
``servers``       server processes (default 2 on PostgreSQL, 1 on SQLite)
``agents``        agents logged in and ready (default 1000)
``duration``      measured seconds (default 60); ``warmup`` seconds before (default 5)
``concurrency``   closed loop: callers in flight at once, over all workers (default 16)
``rate``          open loop: calls a second offered (default 0: closed loop)
``arrivals``      open loop: ``poisson`` (default) or ``even`` spacing
``load_processes``  load worker processes (default 2)
``connections``   HTTP connections per server and worker (default 64)
``poll_ms``       how often the offer watcher reads the command feed (default 20)
``ceiling_s``     seconds of the bare-driver commit test (default 3)
``ceiling_connections``  asyncpg connections in it (default 8)
``pg_url``        admin URL (default $PLEDGELINE_TEST_PG_URL or postgres@127.0.0.1)
``profile``       a directory: ``py-spy record`` each server over the measured window
                  (raw collapsed stacks there; a summary goes into the figures)
``pool``          PLEDGELINE_DB_POOL_SIZE of each server (default: the server default)
``app_root``      the source tree the servers run (default: this repository)
``sqlite_synchronous``  FULL or NORMAL for the server (default: the server's default);
                  the SQLite ceiling runs with the same
``rules``         ``default`` (the shipped rules, as deployed) or ``off`` (an empty rule
                  set for the campaign: the comparison for the rules' share)
``directory``     ``on`` (default: the built-in directory in its own process, every
                  caller looked up) or ``off`` (no look-ups)
``idle_s``        seconds of the servers' background work measured with no calls,
                  before the load (default 3; 0: none)
``mode``          ``load`` (default) or ``breakdown``: CPU per lifecycle step, one call
                  at a time on one server (``calls`` of them, default 200)

The pieces (``LoadClient``, ``OfferWatcher``, ``run_lifecycle``, ``audit``) are also
used by ``tests/test_multiprocess_pg.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import itertools
import json
import math
import os
import sqlite3
import statistics
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson

from app import signing
from app.acd.states import AGENT_TRANSITIONS, CALL_END_STATES, CALL_TRANSITIONS
from bench.http1 import Http1Pool, HttpError
from bench.stats import cpu_seconds, percentiles, profile_servers
from tests import procs

ROOT = Path(__file__).resolve().parent.parent

DIALLED = "+33800000001"
LOAD_TAIL_S = 1.0  # load after the measured window
BENCH_SECRET = "bench-routing-telephony-Dv3fN9tG6mXq"


# --- HTTP to the servers ----------------------------------------------------------------


class RequestFailed(Exception):
    pass


class LoadClient:
    """HTTP clients to every server, a bounded number of keep-alive connections each.

    ``transport``: ``httpx`` (the default: the tests) or ``raw`` (``bench/http1.py``,
    a fraction of httpx's CPU per request: the load generator of the benchmark).
    Requests without an explicit ``server`` go round-robin over the servers. Every
    answer is tallied by (what, status); statuses outside ``expect`` are kept.
    """

    def __init__(
        self,
        base_urls: list[str],
        secret: str,
        *,
        connections: int = 64,
        timeout: float = 60.0,
        token: str | None = None,
        transport: str = "httpx",
    ) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.transport = transport
        self.clients: list[Any]
        if transport == "raw":
            self.clients = [
                Http1Pool(url, connections=connections, timeout=timeout, headers=headers)
                for url in base_urls
            ]
        elif transport == "httpx":
            limits = httpx.Limits(
                max_connections=connections,
                max_keepalive_connections=connections,
                keepalive_expiry=2.0,  # below the servers' keep-alive timeout (tests/procs.py)
            )
            self.clients = [
                httpx.AsyncClient(base_url=url, limits=limits, timeout=timeout, headers=headers)
                for url in base_urls
            ]
        else:
            raise ValueError(f"transport is httpx or raw, not {transport!r}")
        self.secret = secret
        self._next = itertools.count()
        self.tally: Counter[str] = Counter()
        self.per_server = [0] * len(base_urls)
        self.unexpected: list[str] = []

    @property
    def servers(self) -> int:
        return len(self.clients)

    def _pick(self, server: int | None) -> int:
        index = (next(self._next) if server is None else server) % len(self.clients)
        self.per_server[index] += 1
        return index

    async def aclose(self) -> None:
        for client in self.clients:
            await client.aclose()

    async def _send(self, index: int, method: str, path: str, kwargs: dict[str, Any]) -> Any:
        client = self.clients[index]
        if self.transport == "httpx":
            return await client.request(method, path, **kwargs)
        headers = dict(kwargs.get("headers") or {})
        body = kwargs.get("content")
        if kwargs.get("json") is not None:
            body = orjson.dumps(kwargs["json"])
            headers["Content-Type"] = "application/json"
        elif body is None and method in ("POST", "PUT", "PATCH"):
            body = b""
        return await client.request(method, path, body=body, headers=headers)

    async def request(
        self,
        method: str,
        path: str,
        *,
        what: str | None = None,
        server: int | None = None,
        expect: Iterable[int] = (200, 201),
        **kwargs: Any,
    ) -> Any:
        """The answer (an ``httpx.Response`` or an ``http1.Response``: the same reading)."""
        what = what or f"{method} {path.split('/')[1]}"
        try:
            response = await self._send(self._pick(server), method, path, kwargs)
        except (httpx.HTTPError, HttpError) as exc:
            self.tally[f"{what} {type(exc).__name__}"] += 1
            self.unexpected.append(f"{what}: {type(exc).__name__}: {exc}")
            raise RequestFailed(f"{what}: {type(exc).__name__}") from exc
        self.tally[f"{what} {response.status_code}"] += 1
        if response.status_code not in expect:
            self.unexpected.append(f"{what} -> {response.status_code} {response.text[:300]}")
        return response

    async def telephony(
        self,
        type: str,
        provider_call_id: str,
        *,
        server: int | None = None,
        event_id: str | None = None,
        expect: Iterable[int] = (200,),
        **fields: Any,
    ) -> Any:
        event = {
            "event_id": event_id or f"ev-{uuid.uuid4().hex}",
            "type": type,
            "call_id": provider_call_id,
            **fields,
        }
        body = orjson.dumps(event)
        headers = {
            "Content-Type": "application/json",
            **signing.signed_headers(self.secret, body),
        }
        return await self.request(
            "POST",
            "/telephony/events",
            what=type,
            server=server,
            expect=expect,
            content=body,
            headers=headers,
        )


class OfferWatcher:
    """Tells waiting callers when their call is offered, as the telephony platform learns it.

    One poller per load client reads the command feed (``GET /telephony/commands``,
    signed) every ``interval`` seconds while anyone waits: a ``bridge`` command is an
    offer, and names the agent. On PostgreSQL ids are handed out before commit, so a
    command may appear after a higher id was read: the cursor stays at the last id
    below which everything was seen, and a gap older than ``gap_grace`` seconds (a
    rolled-back transaction) is passed. A waiter that has heard nothing for
    ``fallback_after`` seconds is looked up alone with ``GET /calls/{id}``, which also
    notices a call that ended without an offer.
    """

    def __init__(
        self,
        client: LoadClient,
        campaign_id: int,
        *,
        interval: float = 0.02,
        fallback_after: float = 2.0,
        gap_grace: float = 0.5,
    ) -> None:
        self.client = client
        self.campaign_id = campaign_id
        self.interval = interval
        self.fallback_after = fallback_after
        self.gap_grace = gap_grace
        # provider call id -> (future, database call id, since)
        self._waiters: dict[str, tuple[asyncio.Future[dict[str, Any]], int, float]] = {}
        self._early: dict[str, dict[str, Any]] = {}  # offers seen before anyone waited
        # provider call id -> the number of the latest offer told, and of the bridge
        # commands read. An offer is told once, by whichever comes first: its bridge or
        # a look-up (which reads the call's ``offers``). A bridge read after a look-up
        # told its offer, or a look-up that finds the call still ringing with an offer
        # already told, tells nothing (else a caller letting an offer ring out would
        # hear that same offer again and answer it).
        self._told: dict[str, int] = {}
        self._bridges: dict[str, int] = {}
        self._cursor = 0
        self._seen: set[int] = set()
        self._gap_since: float | None = None
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.polls = 0
        self.fallbacks = 0

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="offer-watcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def wait(
        self, provider_call_id: str, call_id: int, timeout: float = 60.0
    ) -> dict[str, Any]:
        """``{"state", "agent_id"}`` once the call is offered, or its state once ended."""
        early = self._early.pop(provider_call_id, None)
        if early is not None:
            return early
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiters[provider_call_id] = (future, call_id, time.monotonic())
        self._wake.set()
        try:
            return await asyncio.wait_for(future, timeout)
        finally:
            self._waiters.pop(provider_call_id, None)

    def _resolve(self, provider_call_id: str, answer: dict[str, Any]) -> None:
        entry = self._waiters.get(provider_call_id)
        if entry is None:
            self._early[provider_call_id] = answer
        elif not entry[0].done():
            entry[0].set_result(answer)

    async def _run(self) -> None:
        while True:
            if not self._waiters:
                self._wake.clear()
                await self._wake.wait()
            try:
                await self._poll()
            except (RequestFailed, ValueError, KeyError):
                await asyncio.sleep(0.1)
            await asyncio.sleep(self.interval)

    async def _poll(self) -> None:
        self.polls += 1
        query = f"after={self._cursor}&limit=1000"
        response = await self.client.request(
            "GET",
            f"/telephony/commands?{query}",
            what="GET /telephony/commands",
            headers=signing.signed_headers(self.client.secret, query.encode()),
        )
        if response.status_code == 200:
            self._take(response.json()["commands"])
        await self._look_up_stale()

    async def _look_up_stale(self) -> None:
        """Waiters that heard nothing for ``fallback_after``: ask for their call alone."""
        now = time.monotonic()
        stale = [
            (pid, call_id)
            for pid, (future, call_id, since) in list(self._waiters.items())
            if not future.done() and now - since > self.fallback_after
        ]
        for pid, call_id in stale:
            self.fallbacks += 1
            entry = self._waiters.get(pid)
            if entry is None:
                continue
            self._waiters[pid] = (entry[0], call_id, now)
            one = await self.client.request("GET", f"/calls/{call_id}", what="GET /calls/{id}")
            if one.status_code == 200 and one.json()["state"] != "queued":
                row = one.json()
                told = self._told.get(pid, 0)
                if row["state"] == "offered" and row["offers"] <= told:
                    continue
                self._told[pid] = max(told, row["offers"])
                self._resolve(pid, {"state": row["state"], "agent_id": row["agent_id"]})

    def _take(self, commands: list[dict[str, Any]]) -> None:
        for command in commands:
            if command["id"] in self._seen:
                continue
            self._seen.add(command["id"])
            if command["command"] == "bridge":
                answer = {"state": "offered", "agent_id": command["args"]["agent_id"]}
                pid = command["call_id"]
                self._bridges[pid] = number = self._bridges.get(pid, 0) + 1
                if number > self._told.get(pid, 0):
                    self._told[pid] = number
                    self._resolve(pid, answer)
        # Move the cursor over the ids seen without a gap; wait a little on a gap.
        while self._cursor + 1 in self._seen:
            self._cursor += 1
            self._seen.discard(self._cursor)
        if self._seen:
            now = time.monotonic()
            if self._gap_since is None:
                self._gap_since = now
            elif now - self._gap_since > self.gap_grace:
                self._cursor += 1  # never filled: a rolled-back insert
                self._gap_since = None
        else:
            self._gap_since = None
        if len(self._early) > 10_000:  # offers nobody waited for (ended calls)
            self._early.clear()


@dataclass
class Lifecycle:
    """What one caller saw (monotonic seconds)."""

    n: int
    provider_call_id: str
    started: float
    call_id: int | None = None
    offer_seen: float | None = None
    ended: float | None = None
    outcome: str = "pending"  # completed | abandoned | failed:<why>
    agent_id: int | None = None


async def run_lifecycle(
    client: LoadClient,
    watcher: OfferWatcher,
    n: int,
    *,
    prefix: str,
    hangup_by: str = "caller",
    abandon_after: float | None = None,
    duplicate_incoming: bool = False,
    offer_timeout: float = 60.0,
    ring_out: int = 0,
    talk: float = 0.0,
) -> Lifecycle:
    """One caller, end to end.

    ``ring_out``: let that many offers ring unanswered (the ring timeout hands the
    call to another agent) before answering one. ``talk``: seconds between the
    answer and the hang-up.

    ``abandon_after``: hang up that long after the call was accepted, before anyone
    answers (the call is abandoned whether queued or ringing by then).
    ``duplicate_incoming``: deliver call.incoming twice at once (same event id) to two
    servers; both answers must name the same call.
    ``hangup_by``: ``caller`` (call.hangup webhook) or ``agent`` (POST /agents/{id}/hangup).
    """
    pid = f"{prefix}-{n}"
    life = Lifecycle(n, pid, time.monotonic())
    fields = {"caller": f"06{n % 100_000_000:08d}", "dialled": DIALLED}
    server = n % client.servers
    if duplicate_incoming:
        event_id = f"ev-in-{pid}"
        answers = await asyncio.gather(
            client.telephony("call.incoming", pid, event_id=event_id, server=server, **fields),
            client.telephony("call.incoming", pid, event_id=event_id, server=server + 1, **fields),
        )
        ids = {a.json()["call"]["id"] for a in answers if a.status_code == 200}
        if len(ids) != 1 or any(a.status_code != 200 for a in answers):
            life.outcome = f"failed:duplicate incoming answered {[a.text for a in answers]}"
            return life
        life.call_id = ids.pop()
    else:
        answer = await client.telephony("call.incoming", pid, server=server, **fields)
        if answer.status_code != 200:
            life.outcome = f"failed:incoming {answer.status_code}"
            return life
        life.call_id = answer.json()["call"]["id"]
    assert life.call_id is not None

    if abandon_after is not None:
        await asyncio.sleep(abandon_after)
        answer = await client.telephony("call.hangup", pid)
        state = answer.json()["call"]["state"] if answer.status_code == 200 else None
        life.ended = time.monotonic()
        life.outcome = "abandoned" if state == "abandoned" else f"failed:abandon gave {state}"
        return life

    unanswered = ring_out
    for _attempt in range(3 + ring_out):  # a ring timeout may hand the call to another agent
        row = await watcher.wait(pid, life.call_id, offer_timeout)
        if row["state"] != "offered":
            life.outcome = f"failed:call {row['state']} before an offer was seen"
            return life
        life.offer_seen = life.offer_seen or time.monotonic()
        life.agent_id = row["agent_id"]
        if unanswered:
            unanswered -= 1
            continue  # not answered: the next offer comes after the ring timeout
        answer = await client.telephony("seat.answered", pid)
        if answer.status_code == 200 and answer.json()["call"]["state"] == "connected":
            # The agent it connected to: under load the offer seen may have rung out
            # and gone to another agent before the answer came.
            life.agent_id = answer.json()["call"].get("agent_id") or life.agent_id
            break
    else:
        life.outcome = "failed:never connected"
        return life

    if talk:
        await asyncio.sleep(talk)
    if hangup_by == "agent":
        answer = await client.request(
            "POST", f"/agents/{life.agent_id}/hangup", what="POST agent hangup"
        )
    else:
        answer = await client.telephony("call.hangup", pid)
    if answer.status_code != 200:
        life.outcome = f"failed:hangup {answer.status_code}"
        return life

    for _attempt in range(2):
        answer = await client.request(
            "POST",
            f"/agents/{life.agent_id}/wrap-up/end",
            what="POST wrap-up/end",
            json={"disposition": "pledge"},
        )
        if answer.status_code == 200:
            break
        # The agent we saw may not be the one who answered (a re-offer): ask the call.
        row = (await client.request("GET", f"/calls/{life.call_id}", what="GET /calls/{id}")).json()
        life.agent_id = row["agent_id"]
    else:
        life.outcome = f"failed:wrap-up/end {answer.status_code}"
        return life
    life.ended = time.monotonic()
    life.outcome = "completed"
    return life


# --- setting up a hotline -----------------------------------------------------------------


async def bounded(limit: int, coroutines: Iterable[Any]) -> list[Any]:
    semaphore = asyncio.Semaphore(limit)

    async def _one(coroutine: Any) -> Any:
        async with semaphore:
            return await coroutine

    return await asyncio.gather(*(_one(c) for c in coroutines))


async def setup_hotline(
    client: LoadClient,
    agents: int,
    *,
    queue: dict[str, Any] | None = None,
    parallel: int = 32,
) -> dict[str, Any]:
    """A campaign on ``DIALLED``, queue ``pledges`` and ``agents`` agents, logged in, ready.

    Agents are created, logged in and made ready through every server in turn.
    """
    r = await client.request(
        "POST",
        "/campaigns",
        server=0,
        json={"name": f"Telethon {uuid.uuid4().hex[:6]}", "dialled_numbers": [DIALLED]},
    )
    if r.status_code != 201:
        raise RuntimeError(f"campaign: {r.status_code} {r.text}")
    campaign_id = r.json()["id"]
    r = await client.request(
        "POST",
        "/queues",
        server=0,
        json={
            "campaign_id": campaign_id,
            "name": "pledges",
            "required_skill": "pledges",
            **(queue or {}),
        },
    )
    if r.status_code != 201:
        raise RuntimeError(f"queue: {r.status_code} {r.text}")
    queue_id = r.json()["id"]

    async def _agent(n: int) -> int:
        r = await client.request(
            "POST",
            "/agents",
            server=n,
            json={
                "campaign_id": campaign_id,
                "login": f"vol{n}",
                "display_name": f"Volunteer {n}",
                "skills": {"pledges": 1},
            },
        )
        if r.status_code != 201:
            raise RuntimeError(f"agent {n}: {r.status_code} {r.text}")
        agent_id: int = r.json()["id"]
        for step, body in (("login", {}), ("ready", None)):
            r = await client.request("POST", f"/agents/{agent_id}/{step}", server=n + 1, json=body)
            if r.status_code != 200:
                raise RuntimeError(f"agent {n} {step}: {r.status_code} {r.text}")
        return agent_id

    agent_ids = await bounded(parallel, (_agent(n) for n in range(agents)))
    return {"campaign_id": campaign_id, "queue_id": queue_id, "agent_ids": agent_ids}


# --- reading the database ------------------------------------------------------------------


async def fetch(database_url: str, sql: str) -> list[tuple[Any, ...]]:
    """Rows of a query over the bare driver (asyncpg or sqlite3)."""
    if database_url.startswith("sqlite"):
        path = database_url.split("///", 1)[1]

        def _read() -> list[tuple[Any, ...]]:
            conn = sqlite3.connect(path)
            try:
                return list(conn.execute(sql).fetchall())
            finally:
                conn.close()

        return await asyncio.to_thread(_read)
    conn = await asyncpg.connect(procs.pg_dsn(database_url))
    try:
        return [tuple(r) for r in await conn.fetch(sql)]
    finally:
        await conn.close()


def _as_time(value: Any) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    return dt.datetime.fromisoformat(str(value)).replace(tzinfo=dt.UTC)


def _as_json(value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    loaded: dict[str, Any] = json.loads(value) if value else {}
    return loaded


# The events after which a call is no longer held by the agent it was offered to.
_RELEASING = {"call.requeued"} | {f"call.{state}" for state in CALL_END_STATES}


@dataclass
class Audit:
    """What the events table and the rows say about a run."""

    events: int = 0
    calls: int = 0
    double_bookings: list[str] = field(default_factory=list)
    illegal_transitions: list[str] = field(default_factory=list)
    mismatches: list[str] = field(default_factory=list)
    offer_latency_ms: dict[int, float] = field(default_factory=dict)
    received_at: dict[int, dt.datetime] = field(default_factory=dict)
    call_states: Counter[str] = field(default_factory=Counter)
    agent_states: Counter[str] = field(default_factory=Counter)
    event_types: Counter[str] = field(default_factory=Counter)
    requeued: int = 0

    def problems(self) -> list[str]:
        return self.double_bookings + self.illegal_transitions + self.mismatches


def check_timeline(
    events: list[tuple[int, str, Any, int | None, int | None, dict[str, Any]]],
) -> tuple[list[str], list[str]]:
    """Double bookings and illegal transitions in an event timeline, in ``seq`` order.

    Every transition locks the rows it changes before it writes its events, so for
    one call or one agent the ``seq`` order is the order the changes committed in.
    An agent holds a call from ``call.offered`` until the call is requeued or ends;
    an offer is open from ``call.offered`` until then too. Returns (double
    bookings, illegal transitions).
    """
    doubles: list[str] = []
    illegal: list[str] = []
    holder: dict[int, int] = {}  # agent -> call it holds
    offered_to: dict[int, int] = {}  # call -> agent holding it
    call_state: dict[int, str] = {}
    agent_state: dict[int, str] = defaultdict(lambda: "logged_out")
    for seq, kind, _at, call_id, agent_id, data in events:
        state = data.get("state")
        if kind == "agent.state" and agent_id is not None:
            action = data.get("action")
            allowed, target = AGENT_TRANSITIONS.get(str(action), (frozenset(), None))
            before = agent_state[agent_id]
            if before not in allowed or target != state:
                illegal.append(f"seq {seq}: agent {agent_id} {before} -{action}-> {state}")
            agent_state[agent_id] = str(state)
            continue
        if not kind.startswith("call.") or call_id is None:
            continue
        before_call = call_state.get(call_id)
        if kind == "call.received":
            if before_call is not None:
                illegal.append(f"seq {seq}: call {call_id} received twice")
        elif (
            kind != "call.moved"
            and state is not None  # no state: not a transition (a screen pop, a script)
            and state != before_call  # an event that is not a transition (a tag, a note)
            and not any(
                before_call in froms and state == target
                for froms, target in CALL_TRANSITIONS.values()
            )
        ):
            illegal.append(f"seq {seq}: call {call_id} {before_call} -> {state} ({kind})")
        if state is not None:
            call_state[call_id] = str(state)
        if kind == "call.offered":
            if call_id in offered_to:
                doubles.append(
                    f"seq {seq}: call {call_id} offered to agent {agent_id} while agent "
                    f"{offered_to[call_id]} holds it"
                )
            if agent_id is None:
                illegal.append(f"seq {seq}: call {call_id} offered to nobody")
                continue
            if agent_id in holder:
                doubles.append(
                    f"seq {seq}: agent {agent_id} offered call {call_id} while holding "
                    f"call {holder[agent_id]}"
                )
            holder[agent_id] = call_id
            offered_to[call_id] = agent_id
        elif kind in _RELEASING:
            agent = offered_to.pop(call_id, None)
            if agent is not None and holder.get(agent) == call_id:
                del holder[agent]
    return doubles, illegal


async def audit(database_url: str) -> Audit:
    """Check the whole run from the database (see ``check_timeline``), rows against events."""
    result = Audit()
    events = [
        (seq, kind, _as_time(at), call_id, agent_id, _as_json(data))
        for seq, kind, at, call_id, agent_id, data in await fetch(
            database_url,
            "SELECT seq, type, at, call_id, agent_id, data FROM events ORDER BY seq",
        )
    ]
    result.events = len(events)
    result.event_types = Counter(kind for _seq, kind, *_rest in events)
    result.double_bookings, result.illegal_transitions = check_timeline(events)

    calls = {
        row[0]: row
        for row in await fetch(
            database_url,
            "SELECT id, state, answered_at, offers, agent_id, ended_at FROM calls",
        )
    }
    agents = {
        row[0]: row
        for row in await fetch(database_url, "SELECT id, state, current_call_id FROM agents")
    }
    result.calls = len(calls)
    result.call_states = Counter(row[1] for row in calls.values())
    result.agent_states = Counter(row[1] for row in agents.values())

    last_call_state: dict[int, str] = {}
    last_agent_state: dict[int, str] = {}
    offered_events: Counter[int] = Counter()
    connected_events: Counter[int] = Counter()
    first_offer: dict[int, dt.datetime] = {}
    for _seq, kind, at, call_id, agent_id, data in events:
        if kind == "agent.state" and agent_id is not None:
            last_agent_state[agent_id] = data.get("state", "?")
        if not kind.startswith("call.") or call_id is None:
            continue
        if "state" in data and kind != "call.moved":
            last_call_state[call_id] = data["state"]
        if kind == "call.received":
            result.received_at[call_id] = at
        elif kind == "call.offered":
            offered_events[call_id] += 1
            first_offer.setdefault(call_id, at)
        elif kind == "call.connected":
            connected_events[call_id] += 1
        elif kind == "call.requeued":
            result.requeued += 1
    for call_id, offered_at in first_offer.items():
        received = result.received_at.get(call_id)
        if received is not None:
            result.offer_latency_ms[call_id] = (offered_at - received).total_seconds() * 1000

    m = result.mismatches
    for call_id, (_, state, answered_at, offers, _agent, _ended) in calls.items():
        if last_call_state.get(call_id) != state:
            m.append(f"call {call_id}: row {state}, last event {last_call_state.get(call_id)}")
        if offered_events[call_id] != offers:
            m.append(
                f"call {call_id}: offers {offers}, call.offered events {offered_events[call_id]}"
            )
        if connected_events[call_id] != (1 if answered_at is not None else 0):
            m.append(
                f"call {call_id}: answered_at {answered_at}, "
                f"call.connected events {connected_events[call_id]}"
            )
    with_answer = sum(1 for row in calls.values() if row[2] is not None)
    if sum(connected_events.values()) != with_answer:
        m.append(f"{sum(connected_events.values())} call.connected events, {with_answer} answered")
    for agent_id, (_, state, current_call_id) in agents.items():
        if agent_id in last_agent_state and last_agent_state[agent_id] != state:
            m.append(f"agent {agent_id}: row {state}, last event {last_agent_state[agent_id]}")
        busy = state in ("reserved", "on_call", "wrap_up")
        if busy != (current_call_id is not None):
            m.append(f"agent {agent_id}: {state} with current_call_id {current_call_id}")
    return result


# --- the bare-driver ceiling ---------------------------------------------------------------


async def pg_durability(dsn: str) -> dict[str, str]:
    """The commit durability PostgreSQL runs with (what the app's commits get too)."""
    conn = await asyncpg.connect(dsn)
    try:
        return {
            name: str(await conn.fetchval(f"SHOW {name}"))
            for name in ("synchronous_commit", "fsync", "wal_sync_method")
        }
    finally:
        await conn.close()


async def pg_ceiling(database_url: str, seconds: float, connections: int) -> float:
    """Single-row committed transactions per second over asyncpg, ``connections`` at once.

    The connections keep the server's settings: ``synchronous_commit`` as the app has it
    (each commit waits for its WAL flush when it is on).
    """
    dsn = procs.pg_dsn(database_url)
    setup = await asyncpg.connect(dsn)
    await setup.execute(
        "CREATE TABLE IF NOT EXISTS bench_ceiling (id bigserial PRIMARY KEY, v integer)"
    )
    conns = [await asyncpg.connect(dsn) for _ in range(connections)]
    done = 0
    stop = time.monotonic() + seconds

    async def _loop(conn: asyncpg.Connection) -> None:
        nonlocal done
        while time.monotonic() < stop:
            await conn.execute("INSERT INTO bench_ceiling (v) VALUES ($1)", 1)
            done += 1

    started = time.monotonic()
    try:
        await asyncio.gather(*(_loop(c) for c in conns))
        elapsed = time.monotonic() - started
    finally:
        for conn in conns:
            await conn.close()
        await setup.execute("DROP TABLE IF EXISTS bench_ceiling")
        await setup.close()
    return done / elapsed


def sqlite_ceiling(directory: Path, seconds: float, synchronous: str = "NORMAL") -> float:
    """Single-row committed transactions per second, sqlite3, WAL, the app's ``synchronous``."""
    path = directory / "ceiling.db"
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={'FULL' if synchronous == 'FULL' else 'NORMAL'}")
        conn.execute("CREATE TABLE IF NOT EXISTS bench_ceiling (id INTEGER PRIMARY KEY, v INTEGER)")
        done = 0
        started = time.monotonic()
        stop = started + seconds
        while time.monotonic() < stop:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("INSERT INTO bench_ceiling (v) VALUES (?)", (1,))
            conn.execute("COMMIT")
            done += 1
        return done / (time.monotonic() - started)
    finally:
        conn.close()
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(f"{path}{suffix}")


# --- CPU accounting ------------------------------------------------------------------------


def _postgres_cpu(database: str | None, exclude: frozenset[int] = frozenset()) -> float:
    """CPU of the PostgreSQL backends serving ``database`` (by process title)."""
    import psutil

    total = 0.0
    for proc in psutil.process_iter(["name", "cmdline"]):
        if not (proc.info["name"] or "").startswith("postgres") or proc.pid in exclude:
            continue
        title = " ".join(proc.info["cmdline"] or [])
        if database is not None and f" {database} " not in f"{title} ":
            continue
        with contextlib.suppress(psutil.Error):
            times = proc.cpu_times()
            total += times.user + times.system
    return total


@dataclass
class CpuSnapshot:
    servers: float
    client: float  # the whole load client: this process and the load workers
    postgres: float
    directory: float
    machine_busy: float
    client_workers: float = 0.0  # the load workers alone (the per-call part)

    @classmethod
    def take(
        cls,
        server_pids: list[int],
        database: str | None,
        client_pids: list[int] = [],  # noqa: B006 (read only)
        directory_pids: list[int] = [],  # noqa: B006 (read only)
    ) -> CpuSnapshot:
        """CPU seconds so far; the load client is this process plus ``client_pids``."""
        import psutil

        machine = psutil.cpu_times()
        busy = machine.user + machine.system + machine.nice + getattr(machine, "softirq", 0.0)
        workers = cpu_seconds(client_pids)
        return cls(
            cpu_seconds(server_pids),
            time.process_time() + workers,
            _postgres_cpu(database),
            cpu_seconds(directory_pids),
            busy,
            workers,
        )


# --- the benchmark -------------------------------------------------------------------------


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)  # nearest rank
    index = min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))
    return round(ordered[index], 2)


@contextlib.asynccontextmanager
async def _database(kind: str, admin_url: str, root: Path) -> AsyncIterator[tuple[str, Path]]:
    with tempfile.TemporaryDirectory(prefix="pledgeline-bench-") as tmp:
        if kind == "sqlite":
            url = f"sqlite+aiosqlite:///{tmp}/bench.db"
            await procs.migrate(url, root)
            yield url, Path(tmp)
        else:
            async with procs.fresh_pg_database("pledgeline_bench", admin_url, root) as url:
                yield url, Path(tmp)


def _no_rules_dir(campaigns: int = 20) -> str:
    """A rules folder giving the first campaigns an empty rule set (``rules=off``).

    The shipped rules apply to every campaign without a file of its own; an empty
    file replaces them, so one run measures routing with no rules at all.
    """
    folder = Path(tempfile.mkdtemp(prefix="pledgeline-no-rules-"))
    for campaign_id in range(1, campaigns + 1):
        (folder / f"{campaign_id}.yaml").write_text("version: 1\nrules: []\n")
    return str(folder)


@dataclass
class Options:
    kind: str
    servers: int
    agents: int
    duration: float
    warmup: float
    load: str  # closed | open
    concurrency: int
    rate: float
    arrivals: str
    load_processes: int
    connections: int
    poll: float
    ceiling_seconds: float
    ceiling_connections: int
    admin_url: str
    profile: Path | None
    root: Path
    settings: dict[str, Any]
    rules: bool
    directory: bool
    idle_seconds: float

    @classmethod
    def parse(cls, options: dict[str, str]) -> Options:
        known = {
            "db", "servers", "agents", "duration", "warmup", "concurrency", "connections",
            "poll_ms", "ceiling_s", "ceiling_connections", "pg_url", "profile", "app_root",
            "pool", "sqlite_synchronous", "rules", "directory", "rate", "arrivals",
            "load_processes", "idle_s",
        }  # fmt: skip
        unknown = set(options) - known
        if unknown:
            raise ValueError(f"unknown options {sorted(unknown)}; known: {sorted(known)}")
        kind = "sqlite" if options.get("db", "postgresql").startswith("sqlite") else "postgresql"
        servers = int(options.get("servers", "1" if kind == "sqlite" else "2"))
        if kind == "sqlite" and servers != 1:
            raise ValueError("SQLite runs in one process: servers=1")
        profile = options.get("profile")
        if profile:
            Path(profile).mkdir(parents=True, exist_ok=True)
        settings: dict[str, Any] = {}
        if "pool" in options:
            settings["db_pool_size"] = int(options["pool"])
        if "sqlite_synchronous" in options:
            settings["sqlite_synchronous"] = options["sqlite_synchronous"].upper()
        rules = options.get("rules", "default")
        if rules not in ("default", "on", "off"):
            raise ValueError("rules is default (on) or off")
        if rules == "off":
            settings["rules_dir"] = _no_rules_dir()
        directory = options.get("directory", "on")
        if directory not in ("on", "off"):
            raise ValueError("directory is on or off")
        if directory == "off":
            settings["directory_url"] = ""  # the server's "no look-ups"
        arrivals = options.get("arrivals", "poisson")
        if arrivals not in ("poisson", "even"):
            raise ValueError("arrivals is poisson or even")
        rate = float(options.get("rate", "0"))
        return cls(
            kind=kind,
            servers=servers,
            agents=int(options.get("agents", "1000")),
            duration=float(options.get("duration", "60")),
            warmup=float(options.get("warmup", "5")),
            load="open" if rate > 0 else "closed",
            concurrency=int(options.get("concurrency", "16")),
            rate=rate,
            arrivals=arrivals,
            load_processes=max(1, int(options.get("load_processes", "2"))),
            connections=int(options.get("connections", "64")),
            poll=float(options.get("poll_ms", "20")) / 1000,
            ceiling_seconds=float(options.get("ceiling_s", "3")),
            ceiling_connections=int(options.get("ceiling_connections", "8")),
            admin_url=options.get("pg_url", procs.PG_ADMIN_URL),
            profile=Path(profile).resolve() if profile else None,
            root=Path(options.get("app_root", str(procs.ROOT))).resolve(),
            settings=settings,
            rules=rules != "off",
            directory=directory == "on",
            idle_seconds=float(options.get("idle_s", "3")),
        )

    def sqlite_synchronous(self) -> str:
        """The ``synchronous`` mode the SQLite server runs with (given, or its default)."""
        if "sqlite_synchronous" in self.settings:
            return str(self.settings["sqlite_synchronous"])
        from app.settings import Settings

        field = Settings.model_fields.get("sqlite_synchronous")
        return str(field.default) if field else "FULL"


async def _ceiling(o: Options, url: str, tmp: Path) -> tuple[float, str, dict[str, str]]:
    """The bare-driver ceiling, how it was taken, and the durability it ran with."""
    if o.kind == "postgresql":
        durability = await pg_durability(procs.pg_dsn(url))
        ceiling = await pg_ceiling(url, o.ceiling_seconds, o.ceiling_connections)
        return (
            ceiling,
            f"asyncpg, {o.ceiling_connections} connections, autocommit single-row INSERT, "
            f"synchronous_commit={durability['synchronous_commit']}, {o.ceiling_seconds:g} s",
            durability,
        )
    synchronous = o.sqlite_synchronous()
    ceiling = await asyncio.to_thread(sqlite_ceiling, tmp, o.ceiling_seconds, synchronous)
    return (
        ceiling,
        f"sqlite3, WAL, synchronous={synchronous} (as the server), BEGIN IMMEDIATE + "
        f"single-row INSERT + COMMIT, one connection, {o.ceiling_seconds:g} s",
        {"sqlite_synchronous": synchronous, "journal_mode": "WAL"},
    )


@contextlib.asynccontextmanager
async def _directory(o: Options) -> AsyncIterator[dict[str, Any]]:
    """The built-in reverse directory for the servers (``directory=on``), stopped after.

    It answers from a hash of the number: every call's caller is looked up, as in
    production, at the price of a separate process on the same machine.
    """
    if not o.directory:
        yield {"on": False}
        return
    from app.cti.directory_server import DirectoryProcess

    directory = DirectoryProcess(faults=False)
    await asyncio.to_thread(directory.start)
    o.settings["directory_url"] = directory.base_url
    try:
        yield {"on": True, "url": directory.base_url, "pid": directory.proc and directory.proc.pid}
    finally:
        await asyncio.to_thread(directory.stop)


async def _directory_lookups(url: str | None) -> int | None:
    """How many look-ups the built-in directory answered so far."""
    if not url:
        return None
    try:
        async with httpx.AsyncClient(base_url=url, timeout=5) as http:
            lookups: int = (await http.get("/_stats")).json()["lookups"]
            return lookups
    except (httpx.HTTPError, ValueError, KeyError):
        return None


async def _profile_window(o: Options, pids: list[int]) -> None:
    """py-spy attached to each server for the measured window only (raw collapsed stacks)."""
    if o.profile is not None:
        await profile_servers(o.profile, o.kind, o.duration, pids)


async def _token(url: str, root: Path, base_url: str) -> str | None:
    """An admin's bearer token when the API has users; None when it is open."""
    admin = await procs.bootstrap_admin(url, root)
    return None if admin is None else await procs.bearer_token(base_url, *admin)


async def _idle(
    o: Options,
    server_pids: list[int],
    database: str,
    directory_pids: list[int],
    activity: Any,
) -> dict[str, Any]:
    """The servers' background work with no calls (timers, sweeps, feeds), per second.

    Taken after the set-up and before the load: what the transactions and CPU of the
    window include whatever the call rate.
    """
    if o.idle_seconds <= 0:
        return {}
    await asyncio.sleep(1.0)  # the set-up's last statistics published (about once a second)
    c0, n0, t0 = CpuSnapshot.take(server_pids, database, [], directory_pids), None, 0.0
    if activity is not None:
        n0 = await activity.read()
    t0 = time.monotonic()
    await asyncio.sleep(o.idle_seconds)
    c1 = CpuSnapshot.take(server_pids, database, [], directory_pids)
    n1 = await activity.read() if activity is not None else None
    seconds = time.monotonic() - t0
    figures: dict[str, Any] = {
        "seconds": round(seconds, 1),
        "server_cores": round((c1.servers - c0.servers) / seconds, 3),
        "postgres_cores": round((c1.postgres - c0.postgres) / seconds, 3),
    }
    if n0 is not None and n1 is not None:
        figures["db_transactions_per_s"] = round((n1.transactions - n0.transactions) / seconds, 1)
    return figures


async def _run(o: Options) -> dict[str, Any]:
    from bench.dbstats import DbCounters, PgActivity, per_call
    from bench.routing_load import FeedFanout, LoadPlan, run_load

    if o.kind == "postgresql":
        problem = await procs.pg_unreachable(o.admin_url)
        if problem:
            raise RuntimeError(f"PostgreSQL at {o.admin_url} unreachable: {problem}")

    async with _database(o.kind, o.admin_url, o.root) as (url, tmp):
        ceiling, ceiling_method, durability = await _ceiling(o, url, tmp)
        async with _directory(o) as directory, contextlib.AsyncExitStack() as stack:
            started: list[procs.ServerProcess] = []
            for _ in range(o.servers):
                server = await procs.start_server(
                    url,
                    secret=BENCH_SECRET,
                    settings=o.settings,
                    log_dir=tmp / "logs",
                    root=o.root,
                )
                started.append(server)
                stack.push_async_callback(procs.stop_server, server)
            token = await _token(url, o.root, started[0].base_url)
            client = LoadClient(
                [s.base_url for s in started],
                BENCH_SECRET,
                connections=o.connections,
                token=token,
                transport="raw",
            )
            stack.push_async_callback(client.aclose)
            t_setup = time.monotonic()
            hotline = await setup_hotline(client, o.agents)
            setup_seconds = time.monotonic() - t_setup
            fanout = FeedFanout(client, hotline["campaign_id"], interval=o.poll)

            server_pids = [pid for s in started for pid in s.python_pids()]
            directory_pids = [directory["pid"]] if directory.get("pid") else []
            # SQLite runs inside the servers; PostgreSQL backends are found by database.
            database = url.rsplit("/", 1)[1] if o.kind == "postgresql" else "-"
            activity: PgActivity | None = None
            if o.kind == "postgresql":
                activity = await PgActivity.open(
                    procs.pg_dsn(o.admin_url), procs.pg_dsn(url), database
                )
                stack.push_async_callback(activity.close)
            idle = await _idle(o, server_pids, database, directory_pids, activity)
            cpu: dict[str, CpuSnapshot] = {}
            counters: dict[str, DbCounters] = {}
            lookups: dict[str, int | None] = {}
            polls: dict[str, int] = {}
            window: dict[str, float] = {}

            async def _marks(t_start: float, _t_end: float, worker_pids: list[int]) -> None:
                window["start"] = t_start + o.warmup
                window["stop"] = window["start"] + o.duration
                window["wall_start"] = time.time() + (window["start"] - time.monotonic())
                for mark in ("start", "stop"):
                    await asyncio.sleep(max(0.0, window[mark] - time.monotonic()))
                    cpu[mark] = CpuSnapshot.take(server_pids, database, worker_pids, directory_pids)
                    polls[mark] = fanout.polls
                    if activity is not None:
                        counters[mark] = await activity.read()
                    lookups[mark] = await _directory_lookups(directory.get("url"))
                    if mark == "start":
                        profiling = asyncio.create_task(_profile_window(o, server_pids))
                await profiling

            plan = LoadPlan(
                base_urls=[s.base_url for s in started],
                secret=BENCH_SECRET,
                token=token,
                prefix=f"b{uuid.uuid4().hex[:6]}",
                mode=o.load,
                processes=o.load_processes,
                concurrency=o.concurrency,
                rate=o.rate,
                arrivals=o.arrivals,
                # The load runs on a little after the window: the window's last calls
                # meet a system still under load, and the workers are still there to
                # have their CPU read at its end.
                seconds=o.warmup + o.duration + LOAD_TAIL_S,
                connections=o.connections,
            )
            load = await run_load(plan, fanout, tmp, on_start=_marks)
            drained = time.monotonic()
        # The servers are stopped (profiles written): the database is quiet, read it.
        server_errors = [e for s in started for e in s.errors()]
        result = await audit(url)

    t_measure, t_stop = window["start"], window["stop"]
    lives = load.lives
    measured = [
        life
        for life in lives
        if life.outcome == "completed" and life.ended and t_measure <= life.ended <= t_stop
    ]
    failed = Counter(life.outcome for life in lives if life.outcome.startswith("failed"))
    # Offer latency of the calls that arrived in the measured window.
    wall_measure = dt.datetime.fromtimestamp(window["wall_start"], dt.UTC)
    wall_stop = wall_measure + dt.timedelta(seconds=o.duration)
    in_window = [
        ms
        for call_id, ms in result.offer_latency_ms.items()
        if wall_measure <= result.received_at[call_id] <= wall_stop
    ]
    client_offer = [(life.offer_seen - life.started) * 1000 for life in measured if life.offer_seen]
    cycle = [(life.ended - life.started) * 1000 for life in measured if life.ended]
    calls_per_second = len(measured) / o.duration
    cores: dict[str, float] = {}
    cpu_ms: dict[str, float] = {}
    if "start" in cpu and "stop" in cpu:
        c0, c1 = cpu["start"], cpu["stop"]
        cores = {
            "servers": (c1.servers - c0.servers) / o.duration,
            "load_client": (c1.client - c0.client) / o.duration,
            "postgres": (c1.postgres - c0.postgres) / o.duration,
            "directory": (c1.directory - c0.directory) / o.duration,
            "machine_busy": (c1.machine_busy - c0.machine_busy) / o.duration,
        }
        ours = sum(v for k, v in cores.items() if k != "machine_busy")
        cores["other_processes"] = max(0.0, cores["machine_busy"] - ours)
        cores = {k: round(v, 2) for k, v in cores.items()}
        if measured:
            # Contention-proof cost figures: CPU time spent per completed lifecycle.
            per_call_ms = o.duration * 1000 / len(measured)
            cpu_ms = {
                name: round(cores[name] * per_call_ms, 2)
                for name in ("servers", "postgres", "directory", "load_client")
            }
    workers = load.workers
    tally: Counter[str] = Counter(client.tally)
    for report in workers:
        tally.update(report["tally"])
    unexpected = len(client.unexpected) + sum(r["unexpected"] for r in workers)
    unexpected_sample = client.unexpected[:5] + [x for r in workers for x in r["unexpected_sample"]]
    offered_in_window = sum(1 for life in lives if t_measure <= life.started <= t_stop)
    load_figures: dict[str, Any] = {
        "mode": o.load,
        "processes": o.load_processes,
        "transport": "raw HTTP/1.1 keep-alive (bench/http1.py), orjson",
        "offers_from": "command feed, one poller in the parent, fanned out to the workers",
        "connections_opened": sum(r["connections_opened"] for r in workers),
    }
    if o.load == "open":
        lags = [lag for r in workers for lag in r.get("arrival_lag_ms", [])]
        load_figures |= {
            "rate": o.rate,
            "arrivals": o.arrivals,
            "offered_calls_per_second": round(offered_in_window / o.duration, 1),
            "arrivals_skipped": sum(r.get("arrivals_skipped", 0) for r in workers),
            "arrival_lag_ms": percentiles(lags),
        }
    else:
        load_figures["concurrency"] = o.concurrency
    if cpu_ms:
        # The generator must not be the limit: its cost at the target rate, in cores.
        # The workers' CPU grows with the calls; the parent's (the feed poller, the
        # marks) is mostly a fixed cost a second, so it is projected as such.
        c0, c1 = cpu["start"], cpu["stop"]
        worker_ms = (c1.client_workers - c0.client_workers) * 1000 / len(measured)
        parent_cores = (c1.client - c1.client_workers - c0.client + c0.client_workers) / o.duration
        at_150 = worker_ms * 0.15 + parent_cores
        load_figures |= {
            "cpu_ms_per_call": cpu_ms["load_client"],
            "workers_cpu_ms_per_call": round(worker_ms, 2),
            "parent_cores": round(parent_cores, 3),
            "cores_at_150_calls_per_s": round(at_150, 2),
            "machine_share_at_150_calls_per_s": round(at_150 / (os.cpu_count() or 1), 3),
        }
    db_activity: dict[str, Any] = {"source": "not available on SQLite (no server counters)"}
    if "start" in counters and "stop" in counters:
        db_activity = {
            **per_call(counters["start"], counters["stop"], len(measured)),
            "source": "pg_stat_database xact_commit + xact_rollback of the bench database "
            "over the window (includes the command-feed polls and background tasks)",
            "statements_source": activity.statements_source if activity else None,
        }
    if "db_transactions_per_s" in idle and measured and "db_transactions" in db_activity:
        background = idle["db_transactions_per_s"] * o.duration
        db_activity["db_transactions_per_call_net_of_idle"] = round(
            (db_activity["db_transactions"] - background) / len(measured), 2
        )
    if "start" in polls and "stop" in polls and measured:
        db_activity["feed_polls_per_call"] = round(
            (polls["stop"] - polls["start"]) / len(measured), 3
        )
    directory_lookups = (
        lookups["stop"] - lookups["start"]
        if lookups.get("start") is not None and lookups.get("stop") is not None
        else None
    )
    figures: dict[str, Any] = {
        "benchmark": "routing",
        "date": dt.date.today().isoformat(),
        "database": o.kind,
        "servers": o.servers,
        "agents": o.agents,
        "rules": o.rules,
        "directory": o.directory,
        "directory_lookups_in_window": directory_lookups,
        "server_settings": {
            **{k: v for k, v in o.settings.items() if k != "rules_dir"},
            **({"sqlite_synchronous": o.sqlite_synchronous()} if o.kind == "sqlite" else {}),
        },
        "duration_s": o.duration,
        "warmup_s": o.warmup,
        "load": load_figures,
        "concurrency": o.concurrency if o.load == "closed" else None,
        "offered_rate": o.rate if o.load == "open" else None,
        "calls_completed": len(measured),
        "calls_per_second": round(calls_per_second, 1),
        "offer_latency_ms": {
            "p50": _percentile(in_window, 50),
            "p90": _percentile(in_window, 90),
            "p99": _percentile(in_window, 99),
            "max": round(max(in_window), 2) if in_window else None,
            "calls": len(in_window),
            "source": "events table: call.received.at -> first call.offered.at",
        },
        "client_offer_seen_ms": {
            "p50": _percentile(client_offer, 50),
            "p99": _percentile(client_offer, 99),
            "source": "load client: call.incoming sent -> offer seen by its poller",
        },
        "lifecycle_ms": {"p50": _percentile(cycle, 50), "p99": _percentile(cycle, 99)},
        "double_bookings": len(result.double_bookings),
        "illegal_transitions": len(result.illegal_transitions),
        "event_row_mismatches": len(result.mismatches),
        "problems_sample": result.problems()[:5],
        "calls_total": result.calls,
        "call_states": dict(result.call_states),
        "agent_states": dict(result.agent_states),
        "requeued": result.requeued,
        # What each call wrote (the rules' script, the screen pop...): all calls of the run.
        "events_per_call": {
            kind: round(count / result.calls, 2)
            for kind, count in sorted(result.event_types.items())
            if result.calls and not kind.startswith("agent.")
        },
        "failed_lifecycles": dict(failed),
        "http_requests": sum(tally.values()),
        "command_feed_polls": fanout.polls,
        "offer_fallbacks": sum(r["fallbacks"] for r in workers),
        "http_unexpected": unexpected,
        "http_unexpected_sample": unexpected_sample[:5],
        "server_errors": len(server_errors),
        "server_errors_sample": [e[:500] for e in server_errors[:3]],
        "drain_s": round(drained - load.t_stop, 2),
        "setup_s": round(setup_seconds, 1),
        "ceiling_tx_per_second": round(ceiling, 1),
        "ceiling_method": ceiling_method,
        "ceiling_durability": durability,
        "ratio_calls_per_ceiling_tx": round(calls_per_second / ceiling, 4) if ceiling else None,
        "db_activity": db_activity,
        "idle": idle,
        "cpu_cores": cores,
        "cpu_ms_per_call": cpu_ms,
    }
    if o.profile is not None:
        figures["profile"] = {
            "dir": str(o.profile),
            "top": summarise_profiles(sorted(o.profile.glob(f"{o.kind}-server*.txt"))),
        }
    return figures


IDLE_FRAMES = ("Condition.wait (threading.py", "select (selectors.py", "_run_once (asyncio")


def summarise_profiles(paths: list[Path], top: int = 25) -> dict[str, Any]:
    """Where the servers' CPU went, from py-spy raw (collapsed) stacks.

    ``self``: share of samples by leaf package; ``app``: inclusive share of each
    ``app/`` function; ``hot``: inclusive share of the heaviest library functions.
    """
    total = 0
    by_package: Counter[str] = Counter()
    app_functions: Counter[str] = Counter()
    functions: Counter[str] = Counter()
    for path in paths:
        for line in path.read_text().splitlines():
            stack, _, count_text = line.rpartition(" ")
            if not stack or not count_text.isdigit():
                continue
            count = int(count_text)
            frames = stack.split(";")
            if any(f.startswith(IDLE_FRAMES) for f in frames[-2:]):
                continue  # a worker thread or the event loop waiting: not CPU
            total += count
            leaf = frames[-1]
            where = leaf.partition(" (")[2]
            by_package[where.split("/", 1)[0].split(":", 1)[0] or "?"] += count
            seen: set[str] = set()
            for frame in frames:
                name, _, location = frame.partition(" (")
                key = f"{name} ({location.split(':', 1)[0]})"
                if key in seen:
                    continue
                seen.add(key)
                if location.startswith("app/"):
                    app_functions[key] += count
                else:
                    functions[key] += count

    def share(counter: Counter[str], n: int) -> dict[str, float]:
        return {k: round(100 * v / total, 1) for k, v in counter.most_common(n)} if total else {}

    return {
        "samples": total,
        "self_by_package_pct": share(by_package, 12),
        "app_inclusive_pct": share(app_functions, top),
        "library_inclusive_pct": share(functions, top * 2),
    }


async def _breakdown(o: Options, calls: int) -> dict[str, Any]:
    """CPU cost of each step of a lifecycle, one call at a time on one server.

    Each step is sent alone and the server's and the database's CPU time is read
    before and after it (psutil; clock-tick resolution, hence the many calls). The
    offer step waits by reading the database directly, so it costs the server only
    the dispatcher's work. ``idle`` is the background work (timers, sweeps, feeds)
    per second with nothing to do.
    """
    steps: dict[str, list[float]] = defaultdict(list)
    db_steps: dict[str, list[float]] = defaultdict(list)
    directory_steps: dict[str, list[float]] = defaultdict(list)
    async with (
        _database(o.kind, o.admin_url, o.root) as (url, tmp),
        _directory(o) as directory,
    ):
        server = await procs.start_server(
            url, secret=BENCH_SECRET, settings=o.settings, log_dir=tmp / "logs", root=o.root
        )
        try:
            client = LoadClient(
                [server.base_url],
                BENCH_SECRET,
                connections=4,
                token=await _token(url, o.root, server.base_url),
            )
            await setup_hotline(client, max(10, min(o.agents, 50)))
            pids = server.python_pids()
            database = url.rsplit("/", 1)[1] if o.kind == "postgresql" else "-"
            watch: asyncpg.Connection | None = None
            mine: frozenset[int] = frozenset()
            if o.kind == "postgresql":
                watch = await asyncpg.connect(procs.pg_dsn(url))
                mine = frozenset({await watch.fetchval("SELECT pg_backend_pid()")})

            directory_pids = [directory["pid"]] if directory.get("pid") else []

            def mark() -> tuple[float, float, float]:
                return cpu_seconds(pids), _postgres_cpu(database, mine), cpu_seconds(directory_pids)

            async def step(name: str, action: Any) -> Any:
                before = mark()
                result = await action
                after = mark()
                steps[name].append((after[0] - before[0]) * 1000)
                db_steps[name].append((after[1] - before[1]) * 1000)
                directory_steps[name].append((after[2] - before[2]) * 1000)
                return result

            async def offered(call_id: int) -> dict[str, Any]:
                while True:
                    rows = await fetch(
                        url, f"SELECT state, agent_id FROM calls WHERE id = {call_id}"
                    )
                    if rows and rows[0][0] == "offered":
                        return {"agent_id": rows[0][1]}
                    await asyncio.sleep(0.002)

            query = "after=0&limit=100"
            idle_before, t0 = mark(), time.monotonic()
            await asyncio.sleep(3)
            idle_after, t1 = mark(), time.monotonic()
            for n in range(calls):
                pid = f"bd-{n}"
                fields = {"caller": f"06{n:08d}", "dialled": DIALLED}
                r = await step("call.incoming", client.telephony("call.incoming", pid, **fields))
                row = await step("dispatch (offer)", offered(r.json()["call"]["id"]))
                await step("seat.answered", client.telephony("seat.answered", pid))
                await step("call.hangup", client.telephony("call.hangup", pid))
                await step(
                    "POST wrap-up/end",
                    client.request(
                        "POST",
                        f"/agents/{row['agent_id']}/wrap-up/end",
                        json={"disposition": "pledge"},
                    ),
                )
                await step(
                    "GET /telephony/commands",
                    client.request(
                        "GET",
                        f"/telephony/commands?{query}",
                        headers=signing.signed_headers(BENCH_SECRET, query.encode()),
                    ),
                )
                await step(
                    "GET /calls/{id}", client.request("GET", f"/calls/{r.json()['call']['id']}")
                )
            await client.aclose()
            if watch is not None:
                await watch.close()
        finally:
            await procs.stop_server(server)
    idle_seconds = t1 - t0
    per_step = {
        name: {
            "server_cpu_ms": round(statistics.fmean(values), 2),
            "db_cpu_ms": round(statistics.fmean(db_steps[name]), 2),
            "directory_cpu_ms": round(statistics.fmean(directory_steps[name]), 2),
        }
        for name, values in steps.items()
    }
    lifecycle = [
        "call.incoming", "dispatch (offer)", "seat.answered", "call.hangup", "POST wrap-up/end"
    ]  # fmt: skip
    server_total = sum(per_step[name]["server_cpu_ms"] for name in lifecycle)
    db_total = sum(per_step[name]["db_cpu_ms"] for name in lifecycle)
    return {
        "benchmark": "routing-breakdown",
        "date": dt.date.today().isoformat(),
        "database": o.kind,
        "rules": o.rules,
        "directory": o.directory,
        "calls": calls,
        "steps": per_step,
        "lifecycle_server_cpu_ms": round(server_total, 1),
        "lifecycle_db_cpu_ms": round(db_total, 1),
        # What this CPU cost allows at best: SQLite is one server process (one core);
        # on PostgreSQL the servers and the database share the machine's cores.
        "cpu_bound_calls_per_second": round(
            1000 / server_total
            if o.kind == "sqlite"
            else 1000 * (os.cpu_count() or 1) / (server_total + db_total),
            1,
        ),
        "idle_server_cpu_ms_per_s": round(
            (idle_after[0] - idle_before[0]) * 1000 / idle_seconds, 1
        ),
        "idle_db_cpu_ms_per_s": round((idle_after[1] - idle_before[1]) * 1000 / idle_seconds, 1),
    }


def run(options: dict[str, str]) -> dict[str, Any]:
    mode = options.pop("mode", "load")
    calls = int(options.pop("calls", "200"))
    parsed = Options.parse(options)
    main = _breakdown(parsed, calls) if mode == "breakdown" else _run(parsed)
    try:
        import uvloop
    except ImportError:  # pragma: no cover
        return asyncio.run(main)
    return uvloop.run(main)
