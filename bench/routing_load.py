"""The routing benchmark's load generator: several processes, closed or open loop.

One Python process cannot drive 150 lifecycles a second (five HTTP requests each,
plus the offer) without becoming the limit on a 2-core machine, so the callers run
in ``load_processes`` worker processes (``python -m bench.routing_load``), each with
its own event loop and keep-alive connections (``bench/http1.py``).

The offers are learnt as the telephony platform learns them, from the signed
command feed ``GET /telephony/commands``. Reading it from every worker would
multiply its cost on the servers, so one :class:`FeedFanout` in the parent reads
it every ``poll_ms`` and sends each ``bridge`` command (the offer: it names the
agent) to the worker whose call it is, over a Unix socket. Provider call ids are
``<run>w<worker>-<n>``: the worker's number is in the id.

Two ways to load (``mode``):

``closed``  ``concurrency`` callers in all, each running lifecycles back to back:
            the most calls a second the system completes (throughput).
``open``    calls arrive at ``rate`` a second whatever happens to the earlier ones
            (Poisson arrivals, or evenly spaced with ``arrivals=even``): the latency
            at a given offered load, the way real callers arrive.

Worker protocol: the plan is one JSON object on stdin; the worker connects to the
parent's socket and sends its number; the parent answers ``start <t_start>
<t_stop>`` (``time.monotonic()`` values: one clock for every process on Linux) once
every worker is connected, then offer lines ``<provider call id>\\t<state>\\t<agent
id>``. The worker prints one JSON object of results on stdout when its last call
has ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from bench.routing import (
    Lifecycle,
    LoadClient,
    OfferWatcher,
    RequestFailed,
    run_lifecycle,
)

ROOT = Path(__file__).resolve().parent.parent


def worker_of(provider_call_id: str) -> int | None:
    """The worker number in ``<run>w<worker>-<n>``, None for a call not of this run."""
    _, sep, rest = provider_call_id.partition("w")
    number, dash, _ = rest.partition("-")
    return int(number) if sep and dash and number.isdigit() else None


class FeedFanout(OfferWatcher):
    """Reads the command feed for every worker and sends each one its offers."""

    def __init__(self, client: LoadClient, campaign_id: int, *, interval: float) -> None:
        super().__init__(client, campaign_id, interval=interval)
        self.writers: dict[int, asyncio.StreamWriter] = {}
        self.forwarded = 0

    async def _run(self) -> None:
        while True:  # always: the waiters are in the workers
            try:
                await self._poll()
            except (RequestFailed, ValueError, KeyError):
                await asyncio.sleep(0.1)
            await asyncio.sleep(self.interval)

    def _resolve(self, provider_call_id: str, answer: dict[str, Any]) -> None:
        worker = worker_of(provider_call_id)
        writer = self.writers.get(worker) if worker is not None else None
        if writer is None or writer.is_closing():
            return
        self.forwarded += 1
        writer.write(f"{provider_call_id}\t{answer['state']}\t{answer['agent_id']}\n".encode())


class OfferInbox(OfferWatcher):
    """The worker's side: offers arrive from the parent; a silent waiter is looked up."""

    def __init__(self, client: LoadClient, reader: asyncio.StreamReader) -> None:
        # The fan-out loses nothing, so a long wait is a long queue, not a lost offer:
        # looking such calls up early would only add load to an overloaded server.
        super().__init__(client, 0, fallback_after=15.0)
        self.reader = reader

    async def _run(self) -> None:
        sweeper = asyncio.create_task(self._sweep())
        try:
            while line := await self.reader.readline():
                pid, state, agent = line.decode().rstrip("\n").split("\t")
                self._resolve(pid, {"state": state, "agent_id": int(agent)})
        finally:
            sweeper.cancel()

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(0.5)
            with contextlib.suppress(RequestFailed, ValueError, KeyError):
                await self._look_up_stale()


# --- the worker process ------------------------------------------------------------------


async def _arrivals(plan: dict[str, Any], launch: Any, report: dict[str, Any]) -> None:
    """Open loop: ``launch()`` at the plan's rate from t_start to t_stop."""
    rate = plan["rate"]
    rng = random.Random(plan["seed"])
    poisson = plan["arrivals"] == "poisson"
    due = plan["t_start"]
    lags: list[float] = []
    skipped = 0
    while True:
        due += rng.expovariate(rate) if poisson else 1.0 / rate
        if due >= plan["t_stop"]:
            break
        wait = due - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        lags.append((time.monotonic() - due) * 1000)
        if not launch():
            skipped += 1
    report["arrival_lag_ms"] = lags
    report["arrivals_skipped"] = skipped


async def _worker(plan: dict[str, Any]) -> dict[str, Any]:
    reader, writer = await asyncio.open_unix_connection(plan["socket"])
    writer.write(f"{plan['index']}\n".encode())
    await writer.drain()
    _, t_start, t_stop = (await reader.readline()).decode().split()
    plan = {**plan, "t_start": float(t_start), "t_stop": float(t_stop)}
    client = LoadClient(
        plan["base_urls"],
        plan["secret"],
        connections=plan["connections"],
        token=plan["token"],
        transport="raw",
    )
    inbox = OfferInbox(client, reader)
    inbox.start()
    lives: list[Lifecycle] = []
    workers, index = plan["workers"], plan["index"]
    counter = itertools.count()
    in_flight: set[asyncio.Task[None]] = set()
    report: dict[str, Any] = {}

    async def one() -> None:
        n = next(counter) * workers + index  # unique over the workers: caller numbers too
        try:
            life = await run_lifecycle(
                client, inbox, n, prefix=plan["prefix"], offer_timeout=plan["offer_timeout"]
            )
        except (RequestFailed, KeyError, ValueError, TimeoutError) as exc:
            life = Lifecycle(n, "", time.monotonic(), outcome=f"failed:{exc!r}")
        lives.append(life)

    def launch() -> bool:
        if len(in_flight) >= plan["max_in_flight"]:
            return False
        task = asyncio.create_task(one())
        in_flight.add(task)
        task.add_done_callback(in_flight.discard)
        return True

    async def caller() -> None:
        while time.monotonic() < plan["t_stop"]:
            await one()

    await asyncio.sleep(max(0.0, plan["t_start"] - time.monotonic()))
    if plan["mode"] == "open":
        await _arrivals(plan, launch, report)
        while in_flight:
            await asyncio.gather(*list(in_flight))
    else:
        await asyncio.gather(*(caller() for _ in range(plan["concurrency"])))
    await inbox.stop()
    writer.close()
    await client.aclose()
    return {
        "index": index,
        "lives": [
            [life.n, life.started, life.offer_seen, life.ended, life.outcome, life.agent_id]
            for life in lives
        ],
        "tally": dict(client.tally),
        "per_server": client.per_server,
        "unexpected": len(client.unexpected),
        "unexpected_sample": client.unexpected[:5],
        "fallbacks": inbox.fallbacks,
        "connections_opened": sum(c.opened for c in client.clients),
        **report,
    }


def main() -> int:
    plan = orjson.loads(sys.stdin.buffer.read())
    try:
        import uvloop

        result = uvloop.run(_worker(plan))
    except ImportError:  # pragma: no cover
        result = asyncio.run(_worker(plan))
    sys.stdout.buffer.write(orjson.dumps(result))
    sys.stdout.flush()
    return 0


# --- the parent's side -----------------------------------------------------------------------


@dataclass
class LoadPlan:
    base_urls: list[str]
    secret: str
    token: str | None
    prefix: str
    mode: str  # closed | open
    processes: int
    concurrency: int  # closed loop: callers in all
    rate: float  # open loop: calls a second in all
    arrivals: str  # poisson | even
    seconds: float  # warm-up + measured window
    connections: int  # per server and worker
    offer_timeout: float = 60.0
    max_in_flight: int = 4000  # open loop, in all: beyond it an arrival is skipped (counted)
    seed: int = 20261206


@dataclass
class LoadRun:
    """What the workers did; ``t_start`` and ``t_stop`` are the load's monotonic bounds."""

    t_start: float
    t_stop: float
    lives: list[Lifecycle]
    workers: list[dict[str, Any]]
    worker_pids: list[int]


async def run_load(
    plan: LoadPlan, fanout: FeedFanout, socket_dir: Path, on_start: Any = None
) -> LoadRun:
    """Start the workers, start them together, feed them offers, collect their results.

    ``on_start(t_start, t_stop, worker_pids)``: a coroutine run alongside the load
    (the CPU and statistics marks of the caller).
    """
    socket_path = str(socket_dir / "offers.sock")
    connected: dict[int, asyncio.StreamWriter] = {}
    all_in = asyncio.Event()

    async def _accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        index = int((await reader.readline()).decode())
        connected[index] = writer
        if len(connected) == plan.processes:
            all_in.set()

    server = await asyncio.start_unix_server(_accept, socket_path)
    workers = []
    try:
        for index in range(plan.processes):
            share = {
                "index": index,
                "workers": plan.processes,
                "socket": socket_path,
                "base_urls": plan.base_urls,
                "secret": plan.secret,
                "token": plan.token,
                "prefix": f"{plan.prefix}w{index}",
                "mode": plan.mode,
                "concurrency": plan.concurrency // plan.processes
                + (1 if index < plan.concurrency % plan.processes else 0),
                "rate": plan.rate / plan.processes,
                "arrivals": plan.arrivals,
                "connections": plan.connections,
                "offer_timeout": plan.offer_timeout,
                "max_in_flight": max(1, plan.max_in_flight // plan.processes),
                "seed": plan.seed + index,
            }
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bench.routing_load",
                cwd=ROOT,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            assert proc.stdin is not None
            proc.stdin.write(orjson.dumps(share))
            proc.stdin.close()
            workers.append(proc)
        outputs = [asyncio.create_task(p.communicate()) for p in workers]
        waiting = asyncio.create_task(all_in.wait())
        done, _ = await asyncio.wait(
            [waiting, *outputs], timeout=60, return_when=asyncio.FIRST_COMPLETED
        )
        if waiting not in done:
            waiting.cancel()
            texts = [t.result()[1].decode(errors="replace")[-2000:] for t in outputs if t.done()]
            raise RuntimeError(f"load workers did not start: {texts}")
        t_start = time.monotonic() + 0.2
        t_stop = t_start + plan.seconds
        fanout.writers = connected
        for writer in connected.values():
            writer.write(f"start {t_start!r} {t_stop!r}\n".encode())
        fanout.start()
        marks = (
            asyncio.create_task(on_start(t_start, t_stop, [p.pid for p in workers]))
            if on_start is not None
            else None
        )
        results = await asyncio.gather(*outputs)
        if marks is not None:
            await marks
    finally:
        await fanout.stop()
        server.close()
        for proc in workers:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
    reports = []
    for proc, (out, err) in zip(workers, results, strict=True):
        if proc.returncode != 0 or not out:
            raise RuntimeError(f"load worker failed ({proc.returncode}):\n{err.decode()[-4000:]}")
        reports.append(orjson.loads(out))
    lives = [
        Lifecycle(
            n, "", started, offer_seen=offer_seen, ended=ended, outcome=outcome, agent_id=agent
        )
        for report in reports
        for n, started, offer_seen, ended, outcome, agent in report.pop("lives")
    ]
    return LoadRun(t_start, t_stop, lives, reports, [p.pid for p in workers])


if __name__ == "__main__":
    sys.exit(main())
