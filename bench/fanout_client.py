"""The two helper processes of the fan-out benchmark (``bench/fanout.py``).

``python -m bench.fanout_client client CONFIG.json``
    The load client: holds every agent and supervisor socket in one asyncio process.
    Volunteer screens behave like the web softphone set to auto-answer: ``ready`` once
    connected, ``answer`` on ``call.offered``, ``hangup`` after a talk time,
    ``end_wrap_up`` (disposition ``pledge``) once in wrap-up, ``ready`` again if paused
    for a missed offer; supervisors only read. Every socket pings every
    ``heartbeat`` seconds and reconnects (fresh token, ``last_seq``) when cut.

``python -m bench.fanout_client bare PORT COMPRESSION``
    The raw ceiling: a bare ``websockets`` server that only broadcasts
    (``websockets.asyncio.server.broadcast``), to the same number of sockets held by
    the same client, at a given rate or as fast as the sockets drain.

Both read one JSON command a line on stdin and answer one JSON line on stdout; logs
go to stderr. Receipt times are ``time.time()`` when ``recv`` hands the message to the
client (same machine, same clock as the server's ``at``).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import itertools
import json
import random
import resource
import sys
import time
from array import array
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import ServerConnection, broadcast, serve
from websockets.exceptions import ConnectionClosed

from bench.stats import percentiles

MAX_SIZE = 64 * 1024 * 1024  # a supervisor's snapshot/stats carries every agent
_fromiso = dt.datetime.fromisoformat


def raise_nofile() -> int:
    """Lift the open-files limit to the hard limit (one descriptor per socket)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft < target:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def log(*parts: Any) -> None:
    print(*parts, file=sys.stderr, flush=True)


def reply(payload: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(payload) + "\n")
    sys.stdout.flush()


async def until(predicate: Callable[[], bool], timeout: float, interval: float) -> bool:
    """Poll ``predicate`` every ``interval`` seconds for at most ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(interval)


async def stdin_reader() -> asyncio.StreamReader:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 24)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    return reader


SETTLE_TIMEOUT = 60.0


class _Release:
    """Releases a semaphore once, however many times it is called."""

    __slots__ = ("done", "semaphore")

    def __init__(self, semaphore: asyncio.Semaphore) -> None:
        self.semaphore = semaphore
        self.done = False

    def __call__(self) -> None:
        if not self.done:
            self.done = True
            self.semaphore.release()


# --- the load client ------------------------------------------------------------------------


class Sock:
    __slots__ = (
        "agent_id",
        "index",
        "kind",
        "last_seq",
        "last_stats",
        "ready_seen",
        "session_id",
        "settle",
        "stop",
        "ws",
    )

    def __init__(self, kind: str, index: int, session_id: str, agent_id: int | None) -> None:
        self.kind = kind  # agent | supervisor | bare
        self.index = index
        self.session_id = session_id
        self.agent_id = agent_id
        self.ws: ClientConnection | None = None
        self.last_seq: int | None = None
        self.last_stats: float | None = None
        self.ready_seen = False
        self.stop = False
        self.settle: Callable[[], None] = lambda: None


class Window:
    """Samples taken between ``measure`` and ``stop``."""

    def __init__(self) -> None:
        self.started = time.time()
        self.stopped: float | None = None
        self.offer_ms = array("d")
        self.agent_event_ms = array("d")
        self.sup_event_ms = array("d")
        self.stats_age_ms = array("d")
        self.stats_gap_ms = array("d")
        self.rtt_ms: dict[str, array] = {}
        self.messages: Counter[str] = Counter()  # agent | supervisor
        self.by_type: Counter[str] = Counter()
        self.bytes = 0
        self.event_bytes = 0
        self.events = 0

    def report(self) -> dict[str, Any]:
        seconds = (self.stopped or time.time()) - self.started
        total = sum(self.messages.values())
        return {
            "seconds": round(seconds, 3),
            "offer_delivery_ms": percentiles(self.offer_ms),
            "agent_event_ms": percentiles(self.agent_event_ms),
            "supervisor_event_ms": percentiles(self.sup_event_ms),
            "stats_age_ms": percentiles(self.stats_age_ms),
            "stats_interval_ms": percentiles(self.stats_gap_ms),
            "command_rtt_ms": {k: percentiles(v, (50, 99)) for k, v in self.rtt_ms.items()},
            "messages": total,
            "messages_per_s": round(total / seconds, 1) if seconds > 0 else None,
            "messages_by_socket_kind": dict(self.messages),
            "messages_by_type": dict(self.by_type.most_common()),
            "bytes_per_s": round(self.bytes / seconds) if seconds > 0 else None,
            "mean_event_bytes": round(self.event_bytes / self.events) if self.events else None,
        }


class LoadClient:
    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.secret_key: str = config["secret_key"]
        self.talk: tuple[float, float] = tuple(config["talk"])  # type: ignore[assignment]
        self.wrap: float = config["wrap"]
        self.heartbeat: float = config["heartbeat"]
        self.compression: str | None = config["compression"]
        self.gate = asyncio.Semaphore(config["connect_concurrency"])
        self.rng = random.Random(7)
        self.socks: list[Sock] = []
        self.tasks: set[asyncio.Task[Any]] = set()
        self.url = ""
        self.ids = itertools.count(1)
        self.pending: dict[str, tuple[str, float, Sock]] = {}
        self.window: Window | None = None
        self.totals: Counter[str] = Counter()
        self.close_codes: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.error_samples: list[str] = []
        self.offered_calls: set[int] = set()
        self.sample_event: str | None = None
        self._ready_event = asyncio.Event()
        self._agents_total = 0
        self._ready_count = 0
        self.bare_phases: dict[str, dict[str, Any]] = {}
        from app.auth.service import issue_ws_token

        def _token(session_public_id: str) -> str:
            # A fresh token per handshake: each opens one socket only.
            return issue_ws_token(self.secret_key, session_public_id, dt.datetime.now(dt.UTC))

        self.token: Callable[[str], str] = _token

    # --- plumbing -----------------------------------------------------------------------

    def spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def error(self, key: str, detail: str = "") -> None:
        self.errors[key] += 1
        if detail and len(self.error_samples) < 10:
            self.error_samples.append(f"{key}: {detail}"[:300])

    async def send(self, sock: Sock, payload: dict[str, Any]) -> None:
        ws = sock.ws
        if ws is None:
            return
        with contextlib.suppress(ConnectionClosed):
            await ws.send(orjson.dumps(payload).decode())

    async def command(self, sock: Sock, name: str, args: dict[str, Any] | None = None) -> None:
        client_id = f"{name}-{next(self.ids)}"
        self.pending[client_id] = (name, time.time(), sock)
        self.totals[f"sent_{name}"] += 1
        await self.send(
            sock, {"type": "command", "client_id": client_id, "command": name, "args": args or {}}
        )

    async def later(self, delay: float, sock: Sock, name: str, args: dict[str, Any]) -> None:
        await asyncio.sleep(delay)
        await self.command(sock, name, args)

    # --- sockets --------------------------------------------------------------------------

    def target(self, sock: Sock) -> str:
        if sock.kind == "bare":
            return f"{self.url}?kind={'agent' if sock.agent_id else 'supervisor'}"
        path = "/ws/agent" if sock.kind == "agent" else "/ws/supervisor"
        url = f"{self.url}{path}?token={self.token(sock.session_id)}"
        if sock.last_seq is not None:
            url += f"&last_seq={sock.last_seq}"
        return url

    async def hold(self, sock: Sock, opened: Callable[[], None]) -> None:
        """Connect, read until closed, reconnect (fresh token, last_seq) until told to stop.

        A socket holds its place in ``gate`` until it has settled: a volunteer until it
        is ready, a supervisor until its snapshot came. So no more than
        ``connect_concurrency`` screens are in their set-up (handshake, presence,
        snapshot, ready: several transactions each) at once, as on a staggered shift
        start, instead of 2,000 queueing on the server's connection pool together.
        """
        first = True
        loop = asyncio.get_running_loop()
        while not sock.stop:
            await self.gate.acquire()
            settle = _Release(self.gate)
            sock.settle = settle
            timer = loop.call_later(SETTLE_TIMEOUT, settle)
            try:
                ws = await connect(
                    self.target(sock),
                    compression=self.compression,
                    max_size=MAX_SIZE,
                    max_queue=None,
                    ping_interval=None,  # browsers do not ping; the app has its own
                    open_timeout=120,
                    close_timeout=2,
                    proxy=None,
                )
            except Exception as exc:
                settle()
                timer.cancel()
                self.error("connect_failed", repr(exc))
                await asyncio.sleep(1.0 + self.rng.random())
                continue
            sock.ws = ws
            if sock.kind == "bare":
                settle()
            if first:
                opened()
                first = False
            else:
                self.totals["reconnects"] += 1
            handler = self.on_bare if sock.kind == "bare" else self.on_app
            try:
                async for raw in ws:
                    handler(sock, raw, time.time())
            except ConnectionClosed:
                pass
            except Exception as exc:
                self.error(f"handler_{type(exc).__name__}", repr(exc))
                await ws.close()
            finally:
                settle()
                timer.cancel()
            sock.ws = None
            code = ws.close_code
            if not sock.stop:
                self.close_codes[f"{sock.kind}:{code}"] += 1
                await asyncio.sleep(1.0 + self.rng.random())

    async def pinger(self) -> None:
        """Each socket sends ``{"type": "ping"}`` every ``heartbeat`` seconds, staggered."""
        tick = 0.05
        position = 0
        while True:
            await asyncio.sleep(tick)
            socks = [s for s in self.socks if s.kind != "bare"]
            if not socks:
                continue
            batch = max(1, round(len(socks) * tick / self.heartbeat))
            for _ in range(batch):
                position = (position + 1) % len(socks)
                sock = socks[position]
                if sock.ws is not None:
                    await self.send(sock, {"type": "ping"})

    async def connect_app(self, url: str, timeout: float) -> dict[str, Any]:
        self.url = url
        started = time.time()
        agents = [Sock("agent", i, s, a) for i, (a, s) in enumerate(self.config["agents"])]
        supervisors = [
            Sock("supervisor", i, s, None) for i, s in enumerate(self.config["supervisors"])
        ]
        self.socks = agents + supervisors
        ready = self._ready_event
        opened = Counter[str]()

        def _opened(kind: str) -> Callable[[], None]:
            def _mark() -> None:
                opened[kind] += 1

            return _mark

        self._agents_total = len(agents)
        self.spawn(self.pinger())  # from the first socket on: the server cuts silent ones
        for sock in agents:
            self.spawn(self.hold(sock, _opened("agent")))

        async def _progress() -> None:
            while True:
                await asyncio.sleep(5)
                log(f"connect: opened {dict(opened)}, ready {self._ready_count}/{len(agents)}")

        progress = asyncio.create_task(_progress())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(ready.wait(), timeout=timeout)
        agents_s = time.time() - started
        # Supervisors after the volunteers: their snapshot then shows a staffed hotline.
        for sock in supervisors:
            self.spawn(self.hold(sock, _opened("supervisor")))
        await until(lambda: all(s.last_stats for s in supervisors), timeout, 0.2)
        progress.cancel()
        return {
            "agents_ready": sum(1 for s in agents if s.ready_seen),
            "agents_opened": opened["agent"],
            "supervisors_with_stats": sum(1 for s in supervisors if s.last_stats),
            "agents_seconds": round(agents_s, 2),
            "seconds": round(time.time() - started, 2),
        }

    def _mark_ready(self, sock: Sock) -> None:
        sock.settle()
        if not sock.ready_seen:
            sock.ready_seen = True
            self._ready_count += 1
            if self._ready_count >= self._agents_total:
                self._ready_event.set()

    def on_app(self, sock: Sock, raw: str | bytes, now: float) -> None:
        message = orjson.loads(raw)
        kind = message["type"]
        window = self.window
        if window is not None:
            window.messages[sock.kind] += 1
            window.by_type[kind] += 1
            window.bytes += len(raw)
        seq = message.get("seq")
        if kind == "stats":
            if window is not None:
                window.stats_age_ms.append((now - _fromiso(message["at"]).timestamp()) * 1000)
                if sock.last_stats is not None:
                    window.stats_gap_ms.append((now - sock.last_stats) * 1000)
            sock.last_stats = now
            return
        if kind in ("pong", "ack", "error"):
            if kind != "pong":
                self.on_reply(kind, message["data"], now)
            return
        if kind == "resync":
            self.totals[f"{sock.kind}_resyncs"] += 1
            return
        if kind == "snapshot":
            sock.last_seq = seq
            self.totals[f"{sock.kind}_snapshots"] += 1
            if sock.kind == "agent":
                self.on_agent_snapshot(sock, message["data"])
            else:
                sock.settle()
            return
        # An event.
        if seq is not None:
            sock.last_seq = seq
        if window is not None:
            lag = (now - _fromiso(message["at"]).timestamp()) * 1000
            window.events += 1
            window.event_bytes += len(raw)
            if sock.kind == "agent":
                window.agent_event_ms.append(lag)
                if kind == "call.offered":
                    window.offer_ms.append(lag)
            else:
                window.sup_event_ms.append(lag)
        if sock.kind == "supervisor":
            if self.sample_event is None and kind == "agent.state":
                self.sample_event = raw if isinstance(raw, str) else raw.decode()
            return
        data = message["data"]
        if data.get("agent_id") != sock.agent_id:
            return
        if kind == "call.offered":
            self.totals["offers_received"] += 1
            self.offered_calls.add(data["call_id"])
            self.spawn(self.command(sock, "answer"))
        elif kind == "call.connected":
            self.totals["connected_received"] += 1
            talk = self.rng.uniform(*self.talk)
            self.spawn(self.later(talk, sock, "hangup", {}))
        elif kind == "call.wrap_up":
            self.spawn(self.later(self.wrap, sock, "end_wrap_up", {"disposition": "pledge"}))
        elif kind == "call.completed":
            self.totals["completed_received"] += 1
        elif kind == "agent.state":
            state = data.get("state")
            if state == "available":
                self._mark_ready(sock)
            elif state == "logged_out" or (state == "paused" and data.get("reason") != "not_ready"):
                # Paused for a missed offer (or logged out by someone): back to work. The
                # "not_ready" pause is the login step of "ready" itself, ready follows.
                self.totals[f"agent_{state}_{data.get('reason')}"] += 1
                self.spawn(self.command(sock, "ready"))

    def on_agent_snapshot(self, sock: Sock, data: dict[str, Any]) -> None:
        state = data["agent"]["state"]
        if state in ("logged_out", "paused"):
            self.spawn(self.command(sock, "ready"))
        elif state == "available":
            self._mark_ready(sock)
        elif state == "reserved":
            self.spawn(self.command(sock, "answer"))
        elif state == "on_call":
            self.spawn(self.later(self.rng.uniform(*self.talk), sock, "hangup", {}))
        elif state == "wrap_up":
            self.spawn(self.later(self.wrap, sock, "end_wrap_up", {"disposition": "pledge"}))

    def on_reply(self, kind: str, data: dict[str, Any], now: float) -> None:
        pending = self.pending.pop(data.get("client_id") or "", None)
        name = pending[0] if pending else "?"
        if kind == "error":
            self.error(f"command_{name}_{data.get('code')}", data.get("message", ""))
            return
        self.totals[f"ack_{name}"] += 1
        if name == "ready" and pending is not None:
            self._mark_ready(pending[2])
        if pending is not None and self.window is not None:
            self.window.rtt_ms.setdefault(name, array("d")).append((now - pending[1]) * 1000)

    # --- the bare ceiling -------------------------------------------------------------------

    async def connect_bare(
        self, url: str, agents: int, supervisors: int, timeout: float
    ) -> dict[str, Any]:
        """The same number of sockets, to the bare server (``agent_id`` 1 marks a volunteer)."""
        self.url = url
        started = time.time()
        count = agents + supervisors
        self.socks = [Sock("bare", i, "", 1 if i < agents else None) for i in range(count)]
        opened = 0

        def _opened() -> None:
            nonlocal opened
            opened += 1

        for sock in self.socks:
            self.spawn(self.hold(sock, _opened))
        await until(lambda: opened >= count, timeout, 0.1)
        return {"opened": opened, "seconds": round(time.time() - started, 2)}

    def on_bare(self, sock: Sock, raw: str | bytes, now: float) -> None:
        message = orjson.loads(raw)
        phase = self.bare_phases.get(message["p"])
        if phase is None:
            phase = self.bare_phases[message["p"]] = {
                "lat": array("d"),
                "first": now,
                "last": now,
                "n": 0,
                "bytes": 0,
            }
        phase["lat"].append((now - _fromiso(message["at"]).timestamp()) * 1000)
        phase["last"] = now
        phase["n"] += 1
        phase["bytes"] += len(raw)

    def bare_report(self) -> dict[str, Any]:
        out = {}
        for name, phase in self.bare_phases.items():
            span = phase["last"] - phase["first"]
            out[name] = {
                "delivery_ms": percentiles(phase["lat"]),
                "messages": phase["n"],
                "received_span_s": round(span, 3),
                "messages_per_s": round(phase["n"] / span, 1) if span > 0 else None,
                "mean_bytes": round(phase["bytes"] / phase["n"]) if phase["n"] else None,
            }
        self.bare_phases = {}
        return out

    async def close_all(self) -> dict[str, Any]:
        for sock in self.socks:
            sock.stop = True
        open_ws = [s.ws for s in self.socks if s.ws is not None]
        await asyncio.gather(*(ws.close() for ws in open_ws), return_exceptions=True)
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        self.socks = []
        return {"closed": len(open_ws)}

    def app_totals(self) -> dict[str, Any]:
        return {
            "totals": dict(self.totals),
            "distinct_calls_offered": len(self.offered_calls),
            "close_codes": dict(self.close_codes),
            "errors": dict(self.errors),
            "error_samples": self.error_samples,
            "pending_commands": len(self.pending),
            "sample_event": self.sample_event,
        }


async def client_main(config: dict[str, Any]) -> None:
    nofile = raise_nofile()
    client = LoadClient(config)
    reader = await stdin_reader()
    reply({"ok": True, "nofile": nofile})
    while True:
        line = await reader.readline()
        if not line:
            break
        cmd = json.loads(line)
        name = cmd["cmd"]
        if name == "connect_app":
            reply(await client.connect_app(cmd["url"], cmd.get("connect_timeout", 120)))
        elif name == "measure":
            client.window = Window()
            reply({"ok": True})
        elif name == "stop":
            window, client.window = client.window, None
            if window is None:
                reply({})
            else:
                window.stopped = time.time()
                reply(window.report())
        elif name == "totals":
            reply(client.app_totals())
        elif name == "detach":
            for sock in client.socks:
                sock.stop = True  # no reconnecting once the server goes away
            reply({"ok": True})
        elif name == "close":
            reply(await client.close_all())
        elif name == "connect_bare":
            reply(
                await client.connect_bare(
                    cmd["url"], cmd["agents"], cmd["supervisors"], cmd.get("connect_timeout", 60)
                )
            )
        elif name == "bare_report":
            reply(client.bare_report())
        elif name == "exit":
            reply({"ok": True})
            break
    await client.close_all()


# --- the bare broadcast server ------------------------------------------------------------------


class BareServer:
    """Sockets say what they stand for in the URL (``/?kind=agent|supervisor``)."""

    def __init__(self) -> None:
        self.conns: dict[ServerConnection, str] = {}

    async def handler(self, ws: ServerConnection) -> None:
        path = ws.request.path if ws.request is not None else ""
        self.conns[ws] = "supervisor" if "kind=supervisor" in path else "agent"
        try:
            async for _ in ws:
                pass
        except ConnectionClosed:
            pass
        finally:
            self.conns.pop(ws, None)

    @staticmethod
    def buffered(conns: list[ServerConnection]) -> int:
        total = 0
        for ws in conns:
            transport = ws.transport
            if transport is not None:
                total += transport.get_write_buffer_size()
        return total

    async def run(
        self, phase: str, rate: float | None, seconds: float, template: dict[str, Any]
    ) -> dict[str, Any]:
        """The app's pattern with nothing in between: each event goes to one volunteer's
        socket (in turn) and to every supervisor socket, ``websockets.broadcast``.

        ``rate`` events a second, or (``None``) as fast as the sockets drain: while
        more than 64 KiB a socket waits in the write buffers of an event's recipients,
        the server waits a millisecond. Each message carries its send time (``at``,
        ISO like the app's) and the phase.
        """
        agents = [ws for ws, kind in self.conns.items() if kind == "agent"]
        supervisors = [ws for ws, kind in self.conns.items() if kind == "supervisor"]
        data = template.get("data", {})
        kind = template.get("type", "bench")
        sent = messages = 0
        message = ""
        started = time.monotonic()
        stop = started + seconds
        while True:
            now = time.monotonic()
            if now >= stop:
                break
            targets = [*supervisors, agents[sent % len(agents)]] if agents else supervisors
            if rate:
                due = started + sent / rate
                if due >= stop:
                    break
                if due > now:
                    await asyncio.sleep(due - now)
            else:
                high = 64 * 1024 * len(targets)
                await until(
                    lambda t=targets, h=high: self.buffered(t) <= h, stop - time.monotonic(), 0.001
                )
            message = orjson.dumps(
                {
                    "type": kind,
                    "seq": sent,
                    "at": dt.datetime.now(dt.UTC).isoformat(),
                    "p": phase,
                    "data": data,
                }
            ).decode()
            broadcast(targets, message)
            sent += 1
            messages += len(targets)
            if not rate:
                await asyncio.sleep(0)
        elapsed = time.monotonic() - started
        # Let the last messages drain before the client reports.
        await until(lambda: not self.buffered(list(self.conns)), 10, 0.01)
        return {
            "events": sent,
            "messages": messages,
            "sockets": {"agent": len(agents), "supervisor": len(supervisors)},
            "seconds": round(elapsed, 3),
            "sent_per_s": round(messages / elapsed, 1) if elapsed else None,
            "message_bytes": len(message),
        }


async def bare_main(port: int, compression: str | None) -> None:
    nofile = raise_nofile()
    server = BareServer()
    reader = await stdin_reader()
    async with serve(
        server.handler,
        "127.0.0.1",
        port,
        compression=compression,
        max_size=MAX_SIZE,
        ping_interval=None,
        backlog=4096,
    ):
        reply({"ok": True, "nofile": nofile})
        while True:
            line = await reader.readline()
            if not line:
                break
            cmd = json.loads(line)
            if cmd["cmd"] == "wait":
                await until(
                    lambda n=cmd["count"]: len(server.conns) >= n, cmd.get("timeout", 60), 0.05
                )
                reply({"connected": len(server.conns)})
            elif cmd["cmd"] == "run":
                reply(await server.run(cmd["phase"], cmd["rate"], cmd["seconds"], cmd["template"]))
            elif cmd["cmd"] == "exit":
                reply({"ok": True})
                break


def main(argv: list[str]) -> int:
    try:
        import uvloop

        runner: Callable[[Any], Any] = uvloop.run
    except ImportError:  # pragma: no cover
        runner = asyncio.run
    if argv[:1] == ["client"]:
        runner(client_main(json.loads(Path(argv[1]).read_text())))
    elif argv[:1] == ["bare"]:
        compression = None if argv[2] in ("none", "") else argv[2]
        runner(bare_main(int(argv[1]), compression))
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
