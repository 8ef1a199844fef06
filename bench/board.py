"""Board benchmark: ten thousand tote-board viewers on one server process.

``pledgeline bench board --json [key=value ...]`` prints one JSON object.

What runs:

* one real uvicorn process (``tests/procs.py``) on a fresh database (PostgreSQL by
  default, dropped afterwards; ``db=sqlite`` for a temporary SQLite file), its
  open-files limit lifted (inherited from this process, ``raise_nofile``);
* ``clients`` load-client processes (``python -m bench.board_client``, started
  through ``bench.fanout.Child``) holding ``viewers`` connections between them on
  ``GET /board/stream`` (server-sent events), each waiting for its first frame
  (the current figures) before the next connects;
* one pledge a second (``rate``) posted by this process (``POST /pledges``, an
  admin's bearer token), for ``warmup`` then ``duration`` seconds.

Delivery is measured by the viewers: ``after_commit_ms`` is a frame's arrival
(``time.time()``) minus its ``updated_at`` (when the server wrote the
``totals.updated`` event, just before its commit); ``after_pledge_ack_ms`` is the
arrival minus the moment this process got the 201 of the pledge that made the
frame's count (the pledge committed then). Server RSS is sampled all along.

Options (``key=value``): ``viewers`` (10000), ``clients`` (4), ``rate`` pledges/s
(1), ``duration`` measured seconds (30), ``warmup`` seconds (5), ``db`` (pg or
sqlite), ``concurrency`` (connections being opened at once per client, 64),
``connect_timeout`` (300 s), ``pg_url`` (admin URL), ``keep`` (a directory: the
server and client logs are copied there), ``ceiling_s`` (seconds of the raw
ceiling: the same viewers on a bare broadcast server, one push a second, 10).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil

from bench.fanout import Child, _machine_busy
from bench.fanout_client import raise_nofile
from bench.stats import cpu_seconds, percentiles
from tests import procs

TARGETS = {"viewers": 10_000, "delivery_p99_ms": 500}


@dataclass
class Options:
    viewers: int
    clients: int
    rate: float
    duration: float
    warmup: float
    kind: str
    concurrency: int
    connect_timeout: float
    admin_url: str
    keep: Path | None
    ceiling_s: float

    @classmethod
    def parse(cls, options: dict[str, str]) -> Options:
        known = {
            "viewers", "clients", "rate", "duration", "warmup", "db", "concurrency",
            "connect_timeout", "pg_url", "keep", "ceiling_s",
        }  # fmt: skip
        unknown = set(options) - known
        if unknown:
            raise ValueError(f"unknown options {sorted(unknown)}; known: {sorted(known)}")
        keep = options.get("keep")
        return cls(
            viewers=int(options.get("viewers", "10000")),
            clients=max(1, int(options.get("clients", "4"))),
            rate=float(options.get("rate", "1")),
            duration=float(options.get("duration", "30")),
            warmup=float(options.get("warmup", "5")),
            kind="sqlite" if options.get("db", "pg").startswith("sqlite") else "postgresql",
            concurrency=int(options.get("concurrency", "64")),
            connect_timeout=float(options.get("connect_timeout", "300")),
            admin_url=options.get("pg_url", procs.PG_ADMIN_URL),
            keep=Path(keep) if keep else None,
            ceiling_s=float(options.get("ceiling_s", "10")),
        )


_T0 = time.monotonic()


def say(message: str) -> None:
    """Progress on stderr (stdout carries the one JSON object)."""
    print(f"[board {time.monotonic() - _T0:6.1f}s] {message}", file=sys.stderr, flush=True)


@contextlib.asynccontextmanager
async def _database(o: Options, tmp: Path) -> AsyncIterator[str]:
    if o.kind == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp}/board.db"
        await procs.migrate(url)
        yield url
        return
    problem = await procs.pg_unreachable(o.admin_url)
    if problem:
        raise RuntimeError(f"PostgreSQL at {o.admin_url} unreachable: {problem}")
    async with procs.fresh_pg_database("pledgeline_board", o.admin_url) as url:
        yield url


class RssSampler:
    """The server's resident memory, sampled every quarter second (max kept)."""

    def __init__(self, pid: int) -> None:
        self.process = psutil.Process(pid)
        self.max = 0
        self._task: asyncio.Task[None] | None = None

    def now(self) -> int:
        rss: int = self.process.memory_info().rss
        self.max = max(self.max, rss)
        return rss

    def start(self) -> None:
        self._task = asyncio.create_task(self._sample())

    async def _sample(self) -> None:
        while True:
            with contextlib.suppress(psutil.Error):
                self.now()
            await asyncio.sleep(0.25)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


async def _bare_ceiling(
    o: Options, clients: list[Child], shares: list[int], tmp: Path, size: int
) -> dict[str, Any]:
    """The same viewers on a bare broadcast server: one push a second for ``ceiling_s``."""
    port = procs.free_port()
    bare = await Child.start(["bare", str(port)], tmp / "bare.log", "bench.board_client")
    try:
        connected = await asyncio.gather(
            *(
                client.ask(
                    timeout=o.connect_timeout + 60,
                    cmd="connect",
                    host="127.0.0.1",
                    port=port,
                    path="/",
                    viewers=share,
                    concurrency=o.concurrency,
                    first_frame_timeout=o.connect_timeout,
                )
                for client, share in zip(clients, shares, strict=True)
            )
        )
        with_first = sum(c["with_first_frame"] for c in connected)
        say(f"bare server: {with_first} viewers; pushing for {o.ceiling_s:.0f}s")
        await asyncio.gather(*(c.ask(cmd="measure") for c in clients))
        cpu_start, t0 = cpu_seconds([bare.pid]), time.monotonic()
        pushes = int(o.ceiling_s)
        for n in range(pushes):
            await asyncio.sleep(max(0.0, t0 + n - time.monotonic()))
            await bare.ask(cmd="push", count=n + 1, size=size)
        await asyncio.sleep(2)
        cpu = cpu_seconds([bare.pid]) - cpu_start
        reports = await asyncio.gather(*(c.ask(cmd="report", acks={}) for c in clients))
        await asyncio.gather(*(c.ask(cmd="close") for c in clients))
    finally:
        await bare.stop()
    delivered = [x for r in reports for x in r["after_commit_ms"]]
    return {
        "viewers": with_first,
        "pushes": pushes,
        "frame_bytes": size,
        "delivery_after_push_ms": percentiles(delivered, (50, 90, 99)),
        "server_cpu_us_per_frame_sent": round(cpu * 1e6 / len(delivered), 1) if delivered else None,
        "definition": "a bare asyncio server (python -m bench.board_client bare) writing one "
        "pre-encoded chunk per push to every socket; delivery = viewer receipt - push time",
    }


def _keep_logs(tmp: Path, keep: Path) -> None:
    keep.mkdir(parents=True, exist_ok=True)
    for path in tmp.glob("*.log"):
        shutil.copy(path, keep / path.name)


def _mib(value: int) -> float:
    return round(value / 2**20, 1)


async def _post_pledges(
    http: httpx.AsyncClient, o: Options, campaign_id: int, measure: asyncio.Event
) -> dict[str, Any]:
    """One pledge every 1/rate seconds (open loop); the 201's time by the count it made."""
    acks: dict[str, float] = {}
    statuses: Counter[str] = Counter()
    latency: list[float] = []
    count = 0
    period = 1.0 / o.rate
    start = time.monotonic()
    total = int((o.warmup + o.duration) * o.rate)
    for n in range(total):
        due = start + n * period
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        if n == int(o.warmup * o.rate):
            measure.set()
        sent = time.monotonic()
        r = await http.post(
            "/pledges",
            json={
                "campaign_id": campaign_id,
                "first_name": f"Donor{n}",
                "last_name": "Bench",
                "city": "Lyon",
                "postcode": "69001",
                "email": f"donor{n}@example.org",
                "amount_minor": 2500 + n,
                "consent_board": n % 3 == 0,
            },
            headers={"Idempotency-Key": uuid.uuid4().hex},
        )
        statuses[str(r.status_code)] += 1
        if r.status_code == 201:
            count += 1
            acks[str(count)] = time.time()
            latency.append((time.monotonic() - sent) * 1000)
    return {"acks": acks, "status": dict(statuses), "post_ms": percentiles(latency, (50, 99))}


async def _run(o: Options) -> dict[str, Any]:
    nofile = raise_nofile()  # the server inherits it
    load_at_start = [round(x, 2) for x in os.getloadavg()]
    t_begin = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="pledgeline-board-") as tmp_name:
        tmp = Path(tmp_name)
        async with _database(o, tmp) as url:
            server = await procs.start_server(url, log_dir=tmp)
            clients: list[Child] = []
            rss = RssSampler(server.pid)
            try:
                rss_start = rss.now()
                rss.start()
                admin = await procs.bootstrap_admin(url)
                assert admin is not None
                token = await procs.bearer_token(server.base_url, *admin)
                headers = {"Authorization": f"Bearer {token}"}
                async with httpx.AsyncClient(
                    base_url=server.base_url, headers=headers, timeout=30
                ) as http:
                    r = await http.post(
                        "/campaigns",
                        json={"name": "Board bench", "dialled_numbers": [], "goal_minor": 10**9},
                    )
                    r.raise_for_status()
                    campaign_id = r.json()["id"]
                    clients = list(
                        await asyncio.gather(
                            *(
                                Child.start([], tmp / f"client-{i}.log", "bench.board_client")
                                for i in range(o.clients)
                            )
                        )
                    )
                    say(f"{o.clients} clients up; connecting {o.viewers} viewers")
                    shares = [o.viewers // o.clients] * o.clients
                    shares[0] += o.viewers - sum(shares)
                    port = server.base_url.rsplit(":", 1)[1]
                    t_connect = time.monotonic()
                    connected = await asyncio.gather(
                        *(
                            client.ask(
                                timeout=o.connect_timeout + 60,
                                cmd="connect",
                                host="127.0.0.1",
                                port=port,
                                path=f"/board/stream?campaign_id={campaign_id}",
                                viewers=share,
                                concurrency=o.concurrency,
                                first_frame_timeout=o.connect_timeout,
                            )
                            for client, share in zip(clients, shares, strict=True)
                        )
                    )
                    connect_s = time.monotonic() - t_connect
                    rss_connected = rss.now()
                    with_first = sum(c["with_first_frame"] for c in connected)
                    say(f"{with_first} viewers showing figures after {connect_s:.1f}s")
                    measure = asyncio.Event()
                    cpu_marks: dict[str, float] = {}

                    async def start_window() -> None:
                        await measure.wait()
                        await asyncio.gather(*(c.ask(cmd="measure") for c in clients))
                        cpu_marks["start"] = cpu_seconds([server.pid])
                        cpu_marks["clients_start"] = cpu_seconds([c.pid for c in clients])
                        cpu_marks["machine_start"] = _machine_busy()
                        cpu_marks["t0"] = time.monotonic()

                    window = asyncio.create_task(start_window())
                    posted = await _post_pledges(http, o, campaign_id, measure)
                    await window
                    # The last figure reaches every viewer: the second it may wait, and slack.
                    await asyncio.sleep(3)
                    cpu_marks["stop"] = cpu_seconds([server.pid])
                    cpu_marks["clients_stop"] = cpu_seconds([c.pid for c in clients])
                    cpu_marks["machine_stop"] = _machine_busy()
                    cpu_marks["t1"] = time.monotonic()
                    final = (
                        await http.get("/board/totals", params={"campaign_id": campaign_id})
                    ).json()
                reports = await asyncio.gather(
                    *(c.ask(cmd="report", acks=posted["acks"], timeout=600) for c in clients)
                )
                rss_end = rss.now()
                await asyncio.gather(*(c.ask(cmd="close") for c in clients))
                await procs.stop_server(server)
                frame_size = len(json.dumps(final))
                bare = await _bare_ceiling(o, clients, shares, tmp, frame_size)
            finally:
                await rss.stop()
                for client in clients:
                    await client.stop()
                await procs.stop_server(server)
                if o.keep is not None:
                    await asyncio.to_thread(_keep_logs, tmp, o.keep)
            server_errors = server.errors()
    after_commit = [x for r in reports for x in r["after_commit_ms"]]
    after_pledge = [x for r in reports for x in r["after_pledge_ack_ms"]]
    last_counts: Counter[str] = Counter()
    frames_per_viewer: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    for report in reports:
        last_counts.update(report["last_counts"])
        frames_per_viewer.update(report["frames_per_viewer"])
        errors.update(report["errors"])
    window_s = cpu_marks["t1"] - cpu_marks["t0"]
    server_cpu = cpu_marks["stop"] - cpu_marks["start"]
    clients_cpu = cpu_marks["clients_stop"] - cpu_marks["clients_start"]
    machine_cpu = cpu_marks["machine_stop"] - cpu_marks["machine_start"]
    commit = percentiles(after_commit, (50, 90, 99))
    p99 = commit.get("p99")
    messages = sum(r["messages"] for r in reports)
    everyone_final = last_counts.get(str(final["count"]), 0)
    bare_p99 = bare["delivery_after_push_ms"].get("p99")
    return {
        "benchmark": "board",
        "date": dt.date.today().isoformat(),
        "database": o.kind,
        "viewers": o.viewers,
        "client_processes": o.clients,
        "server_processes": 1,
        "rate_pledges_per_s": o.rate,
        "duration_s": o.duration,
        "warmup_s": o.warmup,
        "nofile": nofile,
        "connect": {
            "seconds": round(connect_s, 1),
            "with_first_frame": with_first,
            "errors": dict(Counter({k: v for c in connected for k, v in c["errors"].items()})),
        },
        "delivery_after_commit_ms": {
            **commit,
            "definition": "viewer receipt (time.time()) - the frame's updated_at (the "
            "totals.updated event's time, written just before its commit)",
        },
        "delivery_after_pledge_ack_ms": {
            **percentiles(after_pledge, (50, 90, 99)),
            "definition": "viewer receipt - the bench's receipt of the 201 of the pledge "
            "that made the frame's count (includes the up-to-1 s coalescing wait)",
        },
        "messages_received_in_window": messages,
        "messages_per_viewer_in_window": dict(frames_per_viewer),
        "pledges_posted": posted["status"],
        "post_pledge_ms": posted["post_ms"],
        "final_count": final["count"],
        "viewers_showing_final_count": everyone_final,
        "viewers_open_at_end": sum(r["open"] for r in reports),
        "viewer_errors": dict(errors),
        "server_rss_mib": {
            "start": _mib(rss_start),
            "viewers_connected": _mib(rss_connected),
            "end": _mib(rss_end),
            "max": _mib(rss.max),
            "per_viewer_kib": round((rss_connected - rss_start) / max(1, with_first) / 1024, 1),
        },
        "cpu_cores_in_window": {
            "server": round(server_cpu / window_s, 2),
            "load_clients": round(clients_cpu / window_s, 2),
            "machine": round(machine_cpu / window_s, 2),
            "other_processes": round(
                max(0.0, machine_cpu - server_cpu - clients_cpu) / window_s, 2
            ),
        },
        "server_cpu_us_per_frame_sent": round(server_cpu * 1e6 / messages, 1) if messages else None,
        "server_log_errors": len(server_errors),
        "server_log_errors_sample": [e[:400] for e in server_errors[:3]],
        "raw_ceiling": bare,
        "ratio": {
            "app_delivery_p99_over_bare_p99": round(p99 / bare_p99, 1)
            if p99 and bare_p99
            else None,
            "app_server_cpu_per_frame_over_bare": round(
                server_cpu / messages / bare["server_cpu_us_per_frame_sent"] * 1e6, 1
            )
            if messages and bare["server_cpu_us_per_frame_sent"]
            else None,
        },
        "targets": {
            "viewers_10000": o.viewers >= TARGETS["viewers"] and with_first >= TARGETS["viewers"],
            "delivery_p99_le_500ms": bool(p99 is not None and p99 <= TARGETS["delivery_p99_ms"]),
            "every_viewer_shows_final_count": everyone_final == o.viewers,
        },
        "total_run_s": round(time.monotonic() - t_begin, 1),
        "machine": {"cpus": os.cpu_count(), "load_average_at_start": load_at_start},
    }


def run(options: dict[str, str]) -> dict[str, Any]:
    parsed = Options.parse(options)
    try:
        import uvloop
    except ImportError:  # pragma: no cover
        return asyncio.run(_run(parsed))
    return uvloop.run(_run(parsed))
