"""``GET /metrics``: the Prometheus exposition, who may read it, and that its figures
move with what happens (the app and the built-in directory as a real process); with
several workers, that a scrape adds up the figures of all of them."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from app.cti.directory_server import DirectoryProcess
from app.metrics_multiprocess import ENV, prepare_multiprocess_dir
from app.signing import signed_headers
from tests.conftest import IN_CI, Hotline, setup_campaign, wait_for
from tests.procs import (
    DEFAULT_SECRET,
    ROOT,
    ServerProcess,
    bearer_token,
    bootstrap_admin,
    free_port,
    fresh_pg_database,
    pg_unreachable,
    server_env,
    stop_server,
)

TOKEN = "scraper-token-0123456789"
PLEDGELINE = Path(sys.executable).with_name("pledgeline")


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of one sample of the exposition, or None."""
    wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
    pattern = (
        "^" + re.escape(name) + (r"\{" + re.escape(wanted) + r"\}" if labels else "") + r" (\S+)$"
    )
    match = re.search(pattern, text, re.MULTILINE)
    return float(match.group(1)) if match else None


def sum_of(text: str, name: str) -> float:
    """The sum of a family's samples over all their labels."""
    pattern = "^" + re.escape(name) + r"(?:\{[^}]*\})? (\S+)$"
    return sum(float(v) for v in re.findall(pattern, text, re.MULTILINE))


async def fresh_connection(base_url: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
    """One request on a connection of its own (with several workers, any may take it)."""
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
        return await http.request(method, path, **kwargs)


async def scrape(base_url: str) -> httpx.Response:
    response = await fresh_connection(
        base_url, "GET", "/metrics", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert response.status_code == 200, response.text
    return response


def serve_with_workers(
    workers: int, port: int, env: dict[str, str], log_path: Path
) -> ServerProcess:
    """``pledgeline serve --workers N``, as an operator runs it (not yet ready on return)."""
    command = [str(PLEDGELINE), "serve", "--host", "127.0.0.1", "--port", str(port)]
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [*command, "--workers", str(workers)],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    return ServerProcess(port, proc, log_path)


async def wait_ready(server: ServerProcess, timeout: float = 60.0) -> None:
    async def ready() -> bool:
        assert server.proc.poll() is None, server.log_text()
        try:
            return (await fresh_connection(server.base_url, "GET", "/readyz")).status_code == 200
        except httpx.HTTPError:
            return False

    await wait_for(ready, timeout=timeout, interval=0.2)


async def test_figures_follow_calls_and_look_ups(
    hotline_factory: Callable[..., Awaitable[Hotline]], directory: DirectoryProcess
) -> None:
    hotline = await hotline_factory(
        directory_url=directory.base_url, directory_budget_ms=5000, metrics_token=TOKEN
    )
    await setup_campaign(hotline, agents=2)
    for n, caller in enumerate(["01 23 45 67 89", "anonymous"]):
        r = await hotline.incoming(f"metrics-{n}", caller)
        assert r.status_code == 200, r.text

    async def looked_up() -> str | None:
        text = (await hotline.http.get("/metrics")).text
        return text if sample(text, "pledgeline_screen_pops_total", status="found") else None

    text = await wait_for(looked_up)
    assert sample(text, "pledgeline_directory_lookups_total", outcome="hit") == 1
    assert sample(text, "pledgeline_directory_lookups_total", outcome="timeout") == 0
    assert sample(text, "pledgeline_directory_breaker_open") == 0
    assert sample(text, "pledgeline_directory_latency_ms_count") == 1
    assert sample(text, "pledgeline_directory_latency_ms_bucket", le="+Inf") == 1
    campaign = re.search(
        r'pledgeline_queue_calls_waiting\{campaign="([^"]+)",queue="pledges"\}', text
    )
    assert campaign is not None
    assert (
        sample(text, "pledgeline_queue_calls_waiting", campaign=campaign[1], queue="pledges") == 2
    )
    assert sample(text, "pledgeline_agents", campaign=campaign[1], state="paused") == 2
    assert sample(text, "pledgeline_pledges", campaign=campaign[1]) is None  # none yet

    setup = await hotline.http.get("/campaigns")
    [campaign_id] = [c["id"] for c in setup.json() if c["name"] == campaign[1]]
    for amount in (2500, 10000):
        r = await hotline.http.post(
            "/pledges",
            json={
                "campaign_id": campaign_id,
                "last_name": "Curie",
                "email": "marie@example.org",
                "amount_minor": amount,
            },
            headers={"Idempotency-Key": str(uuid.uuid4())},
        )
        assert r.status_code == 201, r.text
    text = (await hotline.http.get("/metrics")).text
    assert sample(text, "pledgeline_pledges", campaign=campaign[1]) == 2
    promised = {"campaign": campaign[1], "currency": "EUR", "kind": "promised"}
    assert sample(text, "pledgeline_pledged_minor", **promised) == 12500
    assert sample(text, "pledgeline_pledged_minor", **{**promised, "kind": "paid"}) == 0
    assert "# TYPE pledgeline_directory_latency_ms histogram" in text


async def test_only_admins_and_the_scraper_token(
    hotline_factory: Callable[..., Awaitable[Hotline]],
) -> None:
    hotline = await hotline_factory(metrics_token=TOKEN)
    admin = await hotline.http.get("/metrics")
    assert admin.status_code == 200
    assert admin.headers["content-type"].startswith("text/plain; version=0.0.4")
    # No directory configured: no look-up figures, the database gauges still.
    assert "pledgeline_directory_lookups_total" not in admin.text
    assert "# TYPE pledgeline_agents gauge" in admin.text

    transport = hotline.http._transport
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as anonymous:
        assert (await anonymous.get("/metrics")).status_code == 401
        wrong = await anonymous.get("/metrics", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        scraper = await anonymous.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
        assert scraper.status_code == 200
        assert scraper.text == admin.text


# --- several workers: prometheus_client's multiprocess mode ------------------------

# One "worker": real look-ups against the directory, then its figures into the files
# of PROMETHEUS_MULTIPROC_DIR (as a worker of `pledgeline serve --workers N` does).
WORKER = """
import asyncio, json, os, sys
from app.cti.service import CallerLookup
from app.metrics import caller_lookup_families
from app.acd.call_records import CALL_RECORDS
from app.metrics_multiprocess import FileWriter
from app.settings import Settings

async def main(url, numbers):
    lookup = CallerLookup(Settings(directory_url=url, directory_budget_ms=5000,
                                   directory_breaker_failures=1), CALL_RECORDS)
    await lookup.start()
    try:
        outcomes = [str((await lookup.directory.lookup(n)).status) for n in numbers]
    finally:
        await lookup.stop()
    FileWriter().write(caller_lookup_families(lookup.metrics()))
    print(json.dumps({"pid": os.getpid(), "outcomes": outcomes}))

asyncio.run(main(sys.argv[1], sys.argv[2:]))
"""


def run_worker(files: Path, directory_url: str, *numbers: str) -> dict[str, Any]:
    env = {**os.environ, ENV: str(files)}
    done = subprocess.run(
        [sys.executable, "-c", WORKER, directory_url, *numbers],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    answer: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return answer


def scrape_files(files: Path) -> str:
    """What /metrics shows of the workers' files (the collector it uses)."""
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(files))
    return generate_latest(registry).decode()


async def test_the_figures_of_several_workers_add_up(
    tmp_path: Path, directory: DirectoryProcess
) -> None:
    files = tmp_path / "prometheus"
    files.mkdir()
    first = run_worker(files, directory.base_url, "+33123456789", "+33612345678", "+33987654321")
    await directory.set_faults(mode="http500", remaining=1)
    try:
        second = run_worker(files, directory.base_url, "+33145454545")
    finally:
        await directory.set_faults()
    assert second["outcomes"] == ["error"]  # and its breaker (one failure allowed) opened

    text = scrape_files(files)
    found = first["outcomes"].count("found")
    assert sample(text, "pledgeline_directory_lookups_total", outcome="hit") == found
    assert sample(text, "pledgeline_directory_lookups_total", outcome="miss") == 3 - found
    assert sample(text, "pledgeline_directory_lookups_total", outcome="error") == 1
    assert sample(text, "pledgeline_directory_errors_total", kind="http_5xx") == 1
    assert sample(text, "pledgeline_directory_breaker_opens_total") == 1
    # Four requests went out, three answered and one refused: all in the histogram.
    assert sample(text, "pledgeline_directory_latency_ms_count") == 4
    assert sample(text, "pledgeline_directory_latency_ms_bucket", le="+Inf") == 4
    assert "# TYPE pledgeline_directory_latency_ms histogram" in text
    assert "# TYPE pledgeline_directory_lookups_total counter" in text
    # The breaker gauge is the largest among live workers: the second one's is open...
    assert sample(text, "pledgeline_directory_breaker_open") == 1
    # ...until that worker is known dead; its counters stay in the sums.
    mark_process_dead(second["pid"], path=str(files))
    text = scrape_files(files)
    assert sample(text, "pledgeline_directory_breaker_open") == 0
    assert sample(text, "pledgeline_directory_lookups_total", outcome="error") == 1


def test_serve_prepares_the_files_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Set first, so that monkeypatch records the variable as it was before the test
    # and puts that back at the end: prepare_multiprocess_dir sets it directly, and
    # a directory left named there would send every later app of this process to it.
    monkeypatch.setenv(ENV, "set-by-this-test")
    monkeypatch.delenv(ENV)
    created = prepare_multiprocess_dir()
    assert created is not None and created.is_dir()
    assert os.environ[ENV] == str(created)
    created.rmdir()

    given = tmp_path / "given"
    given.mkdir()
    (given / "counter_4242.db").write_bytes(b"from an earlier run")
    (given / "notes.txt").write_text("not ours")
    monkeypatch.setenv(ENV, str(given))
    assert prepare_multiprocess_dir() is None
    assert sorted(p.name for p in given.iterdir()) == ["notes.txt"]


async def test_pledgeline_serve_with_two_workers(
    tmp_path: Path, directory: DirectoryProcess
) -> None:
    problem = await pg_unreachable()
    if problem is not None:
        if IN_CI:
            pytest.fail(f"PostgreSQL unreachable in CI: {problem}")
        pytest.skip(f"PostgreSQL unreachable ({problem})")
    files = tmp_path / "prometheus"
    files.mkdir()
    (files / "gauge_livemax_4242.db").write_bytes(b"an earlier run's worker")
    numbers = [f"+336{n:08d}" for n in range(1, 9)]
    async with fresh_pg_database("pledgeline_metrics") as url:
        admin = await bootstrap_admin(url)
        assert admin is not None
        port = free_port()
        env = server_env(
            url,
            DEFAULT_SECRET,
            {
                "directory_url": directory.base_url,
                "directory_budget_ms": 5000,
                "metrics_token": TOKEN,
                "log_level": "warning",
            },
        )
        env[ENV] = str(files)
        server = serve_with_workers(2, port, env, tmp_path / "serve.log")
        try:
            await wait_ready(server)
            assert not (files / "gauge_livemax_4242.db").exists()
            token = await bearer_token(server.base_url, *admin)
            async with httpx.AsyncClient(
                base_url=server.base_url, headers={"Authorization": f"Bearer {token}"}
            ) as http:
                c = await http.post(
                    "/campaigns", json={"name": "Workers", "dialled_numbers": ["+33800000001"]}
                )
                assert c.status_code == 201, c.text
                q = await http.post("/queues", json={"campaign_id": c.json()["id"], "name": "q"})
                assert q.status_code == 201, q.text
            for n, number in enumerate(numbers):
                event = {
                    "event_id": f"workers-{n}",
                    "type": "call.incoming",
                    "call_id": f"workers-{n}",
                    "caller": number,
                    "dialled": "+33800000001",
                }
                body = json.dumps(event).encode()
                # A connection each: the calls reach whichever worker accepts it.
                r = await fresh_connection(
                    server.base_url,
                    "POST",
                    "/telephony/events",
                    content=body,
                    headers={
                        "Content-Type": "application/json",
                        **signed_headers(DEFAULT_SECRET, body),
                    },
                )
                assert r.status_code == 200, r.text

            async def all_popped() -> str | None:
                text = (await scrape(server.base_url)).text
                pops = sum_of(text, "pledgeline_screen_pops_total")
                return text if pops == len(numbers) else None

            await wait_for(all_popped, timeout=30)
            # Both workers write their files from the start, and whichever answers a
            # scrape shows the figures of both.
            pids = {p.name.split("_")[-1] for p in files.glob("counter_*.db")}
            assert len(pids) == 2, sorted(files.iterdir())
            for _ in range(6):
                text = (await scrape(server.base_url)).text
                looked_up = sum_of(text, "pledgeline_directory_lookups_total")
                assert looked_up == len(numbers)
                assert sample(text, "pledgeline_directory_latency_ms_count") == len(numbers)
                assert sample(
                    text, "pledgeline_queue_calls_waiting", campaign="Workers", queue="q"
                ) == len(numbers)
        finally:
            await stop_server(server)
        assert server.errors() == []
        # A worker that stopped took its gauges with it; its counters stay.
        assert list(files.glob("gauge_livemax_*.db")) == []
        assert len(list(files.glob("counter_*.db"))) == 2
