"""CTI benchmark: screen-pop overhead, look-up throughput, and a timing-out directory.

``pledgeline bench cti --json [key=value ...]`` starts the built-in directory as a
separate process (``python -m app.cti.directory_server --faults``) and a database of
its own (a SQLite file by default; ``db=postgresql`` for a fresh PostgreSQL
database), seeded with a campaign and ``past_calls`` earlier calls, then measures
in this process with one :class:`app.cti.service.CallerLookup`:

1. **Cache-hit overhead** (``hits`` samples, one at a time, numbers already cached):
   ``hit_assembly_ms`` is the directory client's cache hit plus the screen-pop
   assembly, no database (``CallerLookup.build``); ``hit_with_records_ms`` is
   ``CallerLookup.prepare``: one read transaction that loads the call and runs the
   own-records query (earlier calls from the number) while the directory look-up
   runs, then the assembly: everything but the write; ``hit_full_lookup_ms`` is
   all of ``CallerLookup.lookup``, i.e. also the transaction that stores the pop
   and its event (informational: mostly the database write).
2. **Throughput** (``lookups`` look-ups per run, closed loop with ``concurrency``
   workers, one run per value of ``concurrency``; ``miss_share`` of them, 20 % by
   default, for numbers never seen, which go to the directory over HTTP, the rest
   cache hits): ``throughput`` lists, per run, look-ups per second (directory
   look-up + assembly), the requests that reached the directory, the statuses,
   the directory latency of the misses, and the CPU per look-up of this process
   and of the directory, with ``cpu_bound_lookups_per_second`` = 1000 / the
   larger of the two (what a free core would allow: this figure does not depend
   on what else the machine runs). ``lookups_per_second`` repeats the last run.
   ``full_lookups_per_second`` is the whole ``lookup`` (with the database write),
   ``full_lookups`` of them, 16 at a time, informational.
3. **Directory timing out** (the directory answers after 3 x the budget), ``slow``
   look-ups one at a time, then ``slow_concurrent`` at once (more than the
   connection pool: waiting for a connection counts in the budget too):
   ``timeout_pop_ms`` / ``timeout_concurrent_pop_ms`` from the start of
   ``lookup`` to the assembled pop (``prepare``, given the caller number as the
   call path gives it, so the directory look-up starts before the database
   read), ``timeout_stored_ms`` / ``timeout_concurrent_stored_ms`` to the pop
   stored and ``call.cti_ready`` emitted; ``timeout_over_budget_ms`` is the
   one-at-a-time pop p99 minus the budget, ``timeout_concurrent_over_budget_ms``
   the same for the burst (where the database reads queue for connections).
   These say when the volunteer's screen gets "directory unavailable".
4. **Offer latency on the real call path** (``bench/cti_offer.py``): the app in
   this process with one ready volunteer, ``offer_calls`` calls one after another
   through the telephony webhook, with no directory, a healthy one and one timing
   out; ``offer_latency`` per mode (``call.received`` → ``call.offered``, server
   clocks) and ``offer_added_ms`` = timing-out minus no-directory (p50, p99).

Options: ``db`` (sqlite | postgresql), ``hits`` (5000), ``lookups`` (20000),
``full_lookups`` (2000), ``concurrency`` (``8,32``), ``miss_share`` (0.2),
``budget_ms`` (300), ``slow`` (20), ``slow_concurrent`` (100), ``past_calls``
(5000), ``warm_numbers`` (1000), ``offer_calls`` (100), ``pg_url`` (admin URL for
``db=postgresql``).
The machine's load average at start and end is reported: on a shared machine
the wall-clock figures move with it, the CPU figures much less.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime as dt
import os
import random
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import psutil

from app.acd.call_records import CALL_RECORDS
from app.acd.models import Call, Campaign, Queue
from app.cti.directory_server import DirectoryProcess
from app.cti.screenpop import CallHistory
from app.cti.service import CallerLookup
from app.db import Database, make_engine, utcnow
from app.migrate import upgrade_async
from app.phone_numbers import CallerNumber
from app.settings import Settings
from bench.cti_offer import WARMUP_CALLS, measure_mode, settings_for
from bench.stats import percentiles as summary
from tests import procs


@dataclass
class Options:
    db: str = "sqlite"
    hits: int = 5000
    lookups: int = 20000
    full_lookups: int = 2000
    concurrency: str = "8,32"
    miss_share: float = 0.2
    budget_ms: int = 300
    slow: int = 20
    slow_concurrent: int = 100
    past_calls: int = 5000
    warm_numbers: int = 1000
    offer_calls: int = 100
    pg_url: str = procs.PG_ADMIN_URL

    def concurrency_list(self) -> list[int]:
        return [int(c) for c in str(self.concurrency).split(",") if c.strip()]

    @classmethod
    def parse(cls, options: dict[str, str]) -> Options:
        o = cls()
        for key, raw in options.items():
            if not hasattr(o, key):
                raise SystemExit(f"unknown option {key!r}")
            current = getattr(o, key)
            setattr(o, key, type(current)(raw))
        return o


def percentiles(samples: list[float]) -> dict[str, Any]:
    return summary(samples, (50, 99), digits=3)


def number_pool(start: int, count: int) -> list[str]:
    """Valid French numbers, fixed lines and mobiles alternately."""
    return [f"+33{'16'[i % 2]}{(start + i):08d}" for i in range(count)]


@contextlib.asynccontextmanager
async def bench_database(o: Options) -> AsyncIterator[str]:
    if o.db == "postgresql":
        async with procs.fresh_pg_database("pledgeline_bench_cti", o.pg_url) as url:
            yield url
        return
    with tempfile.TemporaryDirectory(prefix="pledgeline-bench-cti-") as folder:
        url = f"sqlite+aiosqlite:///{folder}/bench.db"
        await upgrade_async(url)
        yield url


async def seed(db: Database, o: Options, warm: list[str]) -> tuple[int, list[int]]:
    """A campaign, its queue, ``past_calls`` ended calls from the warm numbers, and one
    live call per warm number (the ones looked up); returns (campaign id, live call ids)."""
    rng = random.Random(7)
    now = utcnow()
    async with db.unit_of_work() as uow:
        campaign = Campaign(name="Bench CTI", dialled_numbers=["+33800000001"])
        uow.session.add(campaign)
        await uow.session.flush()
        uow.session.add(Queue(campaign_id=campaign.id, name="pledges"))
        for i in range(o.past_calls):
            uow.session.add(
                Call(
                    campaign_id=campaign.id,
                    provider_call_id=f"past-{i}",
                    caller_number=rng.choice(warm),
                    dialled="+33800000001",
                    state="completed",
                    received_at=now - dt.timedelta(minutes=rng.randint(10, 3 * 24 * 60)),
                    tags=[],
                    context={},
                )
            )
        live = [
            Call(
                campaign_id=campaign.id,
                provider_call_id=f"live-{i}",
                caller_number=number,
                dialled="+33800000001",
                state="completed",
                received_at=now,
                tags=[],
                context={},
            )
            for i, number in enumerate(warm)
        ]
        uow.session.add_all(live)
        await uow.session.flush()
        return campaign.id, [call.id for call in live]


async def timed(samples: int, step: Callable[[int], Awaitable[Any]]) -> list[float]:
    out = []
    for i in range(samples):
        started = time.perf_counter()
        await step(i)
        out.append((time.perf_counter() - started) * 1000)
    return out


async def closed_loop(total: int, concurrency: int, step: Callable[[int], Awaitable[Any]]) -> float:
    """Run ``step(0..total-1)`` with ``concurrency`` workers; returns steps per second."""
    counter = iter(range(total))

    async def worker() -> None:
        for i in counter:
            await step(i)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return total / (time.perf_counter() - started)


async def server_lookups(base_url: str) -> int:
    async with httpx.AsyncClient(base_url=base_url) as http:
        count: int = (await http.get("/_stats")).json()["lookups"]
        return count


async def _run(o: Options) -> dict[str, Any]:
    warm = number_pool(0, o.warm_numbers)
    directory = DirectoryProcess(faults=True)
    await asyncio.to_thread(directory.start)
    try:
        async with bench_database(o) as url:
            settings = Settings(
                database_url=url,
                directory_url=directory.base_url,
                directory_budget_ms=o.budget_ms,
                # The throughput run asks for every fresh number once: keep them all.
                directory_cache_size=o.warm_numbers + o.lookups + 1000,
                # The timeout runs must reach the directory, not a breaker answer.
                directory_breaker_failures=10**9,
            )
            db = Database(make_engine(url))
            service = CallerLookup(settings, CALL_RECORDS)
            await service.start()
            try:
                figures = await _measure(o, db, service, directory, warm)
            finally:
                await service.stop()
                await db.dispose()
            await _offer_phase(o, settings, directory, figures)
            return figures
    finally:
        await asyncio.to_thread(directory.stop)


async def throughput(
    service: CallerLookup,
    directory: DirectoryProcess,
    sequence: list[str],
    concurrency: int,
    history: CallHistory,
) -> dict[str, Any]:
    """Look-up + assembly of every number in ``sequence``, ``concurrency`` at a time."""
    statuses: collections.Counter[str] = collections.Counter()
    latencies: list[float] = []
    before = await server_lookups(directory.base_url)

    async def step(i: int) -> None:
        number = sequence[i]
        result = await service.directory.lookup(number)
        if not result.cached:
            latencies.append(result.latency_ms)
        pop = await service.build(number, None, history, None, result)
        statuses[pop["status"]] += 1

    cpu_before, server_before = time.process_time(), _server_cpu(directory)
    per_second = await closed_loop(len(sequence), concurrency, step)
    client_cpu = (time.process_time() - cpu_before) * 1000 / len(sequence)
    server_cpu = (_server_cpu(directory) - server_before) * 1000 / len(sequence)
    requests = await server_lookups(directory.base_url) - before
    return {
        "concurrency": concurrency,
        "lookups": len(sequence),
        "lookups_per_second": round(per_second, 1),
        "directory_requests": requests,
        "miss_share_measured": round(requests / len(sequence), 3),
        "statuses": dict(sorted(statuses.items())),
        "directory_latency_ms": percentiles(latencies) if latencies else None,
        "cpu_ms_per_lookup": {"client": round(client_cpu, 3), "directory": round(server_cpu, 3)},
        # What that CPU allows with a core for this process (the directory needs far less).
        "cpu_bound_lookups_per_second": round(1000 / max(client_cpu, server_cpu), 1),
    }


def _server_cpu(directory: DirectoryProcess) -> float:
    assert directory.proc is not None
    times = psutil.Process(directory.proc.pid).cpu_times()
    return float(times.user + times.system)


async def _measure(
    o: Options, db: Database, service: CallerLookup, directory: DirectoryProcess, warm: list[str]
) -> dict[str, Any]:
    base_url = directory.base_url
    _campaign_id, live_ids = await seed(db, o, warm)
    async with db.read() as session:
        live_calls = [await session.get(Call, call_id) for call_id in live_ids]
    calls = [c for c in live_calls if c is not None]
    history = CallHistory(2, utcnow())
    # Warm the cache (and the connections).
    for number in warm:
        await service.directory.lookup(number)
    figures: dict[str, Any] = {
        "db": o.db,
        "budget_ms": o.budget_ms,
        "cpu_count": os.cpu_count(),
        "past_calls": o.past_calls,
        "warm_numbers": len(warm),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }

    # 1. Cache-hit overhead.
    n_warm = len(warm)

    async def assembly(i: int) -> None:
        await service.build(warm[i % n_warm], None, history)

    async def with_records(i: int) -> None:
        await service.prepare(db, calls[i % n_warm].id)

    async def full(i: int) -> None:
        await service.lookup(db, calls[i % n_warm].id)

    await timed(500, assembly)  # warm-up
    before = await server_lookups(base_url)
    figures["hit_assembly_ms"] = percentiles(await timed(o.hits, assembly))
    await timed(200, with_records)
    figures["hit_with_records_ms"] = percentiles(await timed(o.hits, with_records))
    figures["hit_full_lookup_ms"] = percentiles(await timed(min(o.hits, 2000), full))
    figures["hit_requests_to_directory"] = await server_lookups(base_url) - before

    # 2. Throughput with a share of misses, at each concurrency asked for.
    every = max(1, round(1 / o.miss_share)) if o.miss_share > 0 else 0
    runs = []
    for n, concurrency in enumerate(o.concurrency_list()):
        fresh = iter(number_pool(10_000_000 + n * (o.lookups + 1), o.lookups + 1))
        sequence = [
            next(fresh) if every and i % every == 0 else warm[(i * 7919) % n_warm]
            for i in range(o.lookups)
        ]
        runs.append(await throughput(service, directory, sequence, concurrency, history))
    figures["throughput"] = runs
    headline = runs[-1]
    figures["lookups_per_second"] = headline["lookups_per_second"]
    figures["cpu_bound_lookups_per_second"] = headline["cpu_bound_lookups_per_second"]

    async def full_step(i: int) -> None:
        await service.lookup(db, calls[i % n_warm].id)

    figures["full_lookups_per_second"] = round(await closed_loop(o.full_lookups, 16, full_step), 1)

    # 3. The directory slower than the budget.
    await directory.set_faults(mode="slow", delay_ms=o.budget_ms * 3)
    slow_numbers = iter(number_pool(20_000_000, o.slow + o.slow_concurrent))
    slow_calls: list[Call] = []
    async with db.unit_of_work() as uow:
        for i in range(o.slow + o.slow_concurrent):
            call = Call(
                campaign_id=calls[0].campaign_id,
                provider_call_id=f"slow-{i}",
                caller_number=next(slow_numbers),
                dialled="+33800000001",
                state="completed",
                received_at=utcnow(),
                tags=[],
                context={},
            )
            uow.session.add(call)
            slow_calls.append(call)
    statuses: list[str] = []

    async def slow_step(i: int) -> tuple[float, float]:
        """(ms until the pop is assembled, ms until it is stored and announced)."""
        started = time.perf_counter()
        call = slow_calls[i]
        # As the call path does: the number normalised at arrival goes with the call id.
        pop = await service.prepare(db, call.id, CallerNumber(call.caller_number, None))
        ready = time.perf_counter()
        await service.store(db, slow_calls[i].id, pop)
        statuses.append(pop["status"])
        return (ready - started) * 1000, (time.perf_counter() - started) * 1000

    sequential = [await slow_step(i) for i in range(o.slow)]
    concurrent = await asyncio.gather(*(slow_step(o.slow + i) for i in range(o.slow_concurrent)))
    figures["timeout_pop_ms"] = percentiles([a for a, _ in sequential])
    figures["timeout_stored_ms"] = percentiles([b for _, b in sequential])
    figures["timeout_concurrent_pop_ms"] = percentiles([a for a, _ in concurrent])
    figures["timeout_concurrent_stored_ms"] = percentiles([b for _, b in concurrent])
    figures["timeout_statuses"] = {s: statuses.count(s) for s in sorted(set(statuses))}
    figures["timeout_over_budget_ms"] = round(figures["timeout_pop_ms"]["p99"] - o.budget_ms, 3)
    figures["timeout_concurrent_over_budget_ms"] = round(
        figures["timeout_concurrent_pop_ms"]["p99"] - o.budget_ms, 3
    )
    await directory.set_faults()

    figures["metrics"] = service.metrics()["directory"]
    return figures


async def _offer_phase(
    o: Options, settings: Settings, directory: DirectoryProcess, figures: dict[str, Any]
) -> None:
    """Offer latency through the real call path: no directory, healthy, timing out."""
    fresh = iter(range(10**6, 10**7, 10**4))
    modes: dict[str, Any] = {}
    for mode, url, fault in (
        ("no_directory", "", {}),
        ("healthy", directory.base_url, {}),
        ("timing_out", directory.base_url, {"mode": "slow", "delay_ms": 3 * o.budget_ms}),
    ):
        await directory.set_faults(**fault)
        numbers = number_pool(next(fresh), o.offer_calls + WARMUP_CALLS)  # never cached
        modes[mode] = await measure_mode(settings_for(settings, url), mode, o.offer_calls, numbers)
    await directory.set_faults()
    figures["offer_latency"] = modes
    figures["offer_added_ms"] = {
        q: round(modes["timing_out"]["offer_ms"][q] - modes["no_directory"]["offer_ms"][q], 2)
        for q in ("p50", "p99")
    }
    figures["targets"] = {
        "hit_assembly_p99_le_2ms": figures["hit_assembly_ms"]["p99"] <= 2.0,
        "hit_with_records_p99_le_2ms": figures["hit_with_records_ms"]["p99"] <= 2.0,
        "lookups_per_second_ge_1000": figures["lookups_per_second"] >= 1000,
        "timeout_adds_le_50ms_to_offer": figures["offer_added_ms"]["p99"] <= 50,
        "timeout_pop_within_budget_plus_50ms": figures["timeout_over_budget_ms"] <= 50,
    }
    figures["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]


def run(options: dict[str, str]) -> dict[str, Any]:
    parsed = Options.parse(options)
    try:
        import uvloop
    except ImportError:  # pragma: no cover
        return asyncio.run(_run(parsed))
    return uvloop.run(_run(parsed))
