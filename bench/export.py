"""Export benchmark: a million pledges of one campaign as CSV and XLSX, time and peak RSS.

``pledgeline bench export --json [key=value ...]``:

1. a database of its own (PostgreSQL: ``pledgeline_bench_export_<hex>``, dropped
   afterwards; SQLite: a file in a temporary directory), migrated; a campaign with
   20 volunteers, then ``rows`` pledges bulk-loaded (``bench/pledges.py``'s
   seeding: ``COPY`` on PostgreSQL, ``executemany`` on SQLite). ``url=`` uses an
   existing database instead and keeps it, seeding it only if it has no campaign
   of that many bench pledges yet (to measure again without loading again);
2. ``runs`` rounds; in each, every writer once, one after the other, each in a
   process of its own: wall seconds, its CPU (``wait4``), its peak RSS (its own
   ``VmHWM`` at exit, see ``bench/pledges.py``), the file's size; the file is read
   back and its rows counted. The writers:

   * ``csv``: ``pledgeline export --format csv``;
   * ``xlsx``: ``pledgeline export --format xlsx`` (the project's own zip writer,
     ``XlsxEncoder``);
   * ``xlsx_xlsxwriter``: the same rows through xlsxwriter in constant-memory mode
     (``bench/export_xlsxwriter.py``);

   ``before=DIR`` runs ``pledgeline export`` of another source tree as well (a
   checkout of an earlier commit), in the same rounds: ``before_csv``,
   ``before_xlsx``. Rounds interleave the writers, so a busy moment of the shared
   machine falls on all of them alike;
3. the median of each figure over the rounds, and every round's figures.

Options: ``db`` (postgresql, default, or sqlite), ``rows`` (1000000), ``runs`` (3),
``formats`` (csv,xlsx,xlsx_xlsxwriter), ``before`` (a source tree), ``url``,
``pg_url`` (admin URL).
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import os
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from bench.pledges import SECRET, seed_pledges
from tests import procs

ROOT = Path(__file__).resolve().parent.parent
WRITERS = ("csv", "xlsx", "xlsx_xlsxwriter")
CAMPAIGN = "Export bench {rows}"

# Runs a command (``app.cli`` or the xlsxwriter candidate) and then reports the
# process's own peak RSS (VmHWM: see bench/pledges.py for why not getrusage).
_MEASURED = (
    "import runpy, sys\n"
    "module, sys.argv = sys.argv[1], sys.argv[1:]\n"
    "code = 0\n"
    "try:\n"
    "    runpy.run_module(module, run_name='__main__')\n"
    "except SystemExit as exit:\n"
    "    code = exit.code or 0\n"
    "with open('/proc/self/status') as status:\n"
    "    peak = next(line for line in status if line.startswith('VmHWM:'))\n"
    "print('PEAK_RSS_KB', peak.split()[1], file=sys.stderr)\n"
    "sys.exit(code)\n"
)


@dataclass
class Options:
    kind: str
    rows: int
    runs: int
    writers: tuple[str, ...]
    before: Path | None
    url: str | None
    admin_url: str

    @classmethod
    def parse(cls, options: dict[str, str]) -> Options:
        known = {"db", "rows", "runs", "formats", "before", "url", "pg_url"}
        unknown = set(options) - known
        if unknown:
            raise ValueError(f"unknown options {sorted(unknown)}; known: {sorted(known)}")
        url = options.get("url") or None
        kind = options.get("db", "sqlite" if url and url.startswith("sqlite") else "postgresql")
        writers = tuple(w for w in options.get("formats", ",".join(WRITERS)).split(",") if w)
        if not set(writers) <= set(WRITERS):
            raise ValueError(f"formats: some of {', '.join(WRITERS)}")
        before = Path(options["before"]).resolve() if options.get("before") else None
        if before is not None and not (before / "app" / "cli.py").exists():
            raise ValueError(f"before={before}: not a Pledgeline source tree")
        return cls(
            kind="sqlite" if kind.startswith("sqlite") else "postgresql",
            rows=int(options.get("rows", "1000000")),
            runs=int(options.get("runs", "3")),
            writers=writers,
            before=before,
            url=url,
            admin_url=options.get("pg_url", procs.PG_ADMIN_URL),
        )


@contextlib.asynccontextmanager
async def _database(o: Options) -> AsyncIterator[tuple[str, Path]]:
    with tempfile.TemporaryDirectory(prefix="pledgeline-bench-export-") as tmp:
        if o.url:
            yield o.url, Path(tmp)
        elif o.kind == "sqlite":
            url = f"sqlite+aiosqlite:///{tmp}/bench.db"
            await procs.migrate(url)
            yield url, Path(tmp)
        else:
            async with procs.fresh_pg_database("pledgeline_bench_export", o.admin_url) as url:
                yield url, Path(tmp)


async def _campaign(url: str, rows: int) -> tuple[int, float | None]:
    """The bench campaign with its ``rows`` pledges: found, or made and seeded (then
    with the seconds the loading took)."""
    import app.models  # noqa: F401 - every table, so foreign keys resolve
    from app.acd.models import Agent, Campaign
    from app.db import Database, make_engine
    from app.pledges.models import Pledge

    db = Database(make_engine(url, pool_size=2))
    name = CAMPAIGN.format(rows=rows)
    try:
        async with db.read() as session:
            found = (
                await session.execute(
                    select(Campaign.id, func.count(Pledge.id))
                    .outerjoin(Pledge, Pledge.campaign_id == Campaign.id)
                    .where(Campaign.name == name)
                    .group_by(Campaign.id)
                )
            ).first()
        if found is not None and found[1] == rows:
            return int(found[0]), None
        if found is not None:
            raise RuntimeError(f"campaign {name!r} has {found[1]} pledges, not {rows}")
        async with db.unit_of_work() as uow:
            campaign = Campaign(name=name, dialled_numbers=[])
            uow.session.add(campaign)
            await uow.session.flush()
            agents = [
                Agent(
                    campaign_id=campaign.id,
                    login=f"export-{n}",
                    display_name=f"Volunteer {n:02d}",
                    partner_org="Lions Club" if n % 2 else "Rotary",
                )
                for n in range(20)
            ]
            uow.session.add_all(agents)
            await uow.session.flush()
            campaign_id, agent_ids = campaign.id, [a.id for a in agents]
    finally:
        await db.dispose()
    seconds = await seed_pledges(url, campaign_id, agent_ids, rows)
    return campaign_id, seconds


def export_command(writer: str, campaign_id: int, out: Path) -> list[str]:
    if writer == "xlsx_xlsxwriter":
        return ["bench.export_xlsxwriter", "--campaign-id", str(campaign_id), "--out", str(out)]
    fmt = writer.removeprefix("before_")
    return [
        "app.cli",
        "--lang",
        "en",
        "export",
        "--campaign-id",
        str(campaign_id),
        "--format",
        fmt,
        "--out",
        str(out),
        "--quiet",
    ]


def measure_export(url: str, root: Path, command: list[str], out: Path) -> dict[str, Any]:
    env = procs.server_env(url, SECRET, {}, root)
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-c", _MEASURED, *command],
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    _, status, usage = os.wait4(proc.pid, 0)  # this child's own CPU time
    seconds = time.monotonic() - started
    code = os.waitstatus_to_exitcode(status)
    errors = proc.stderr.read().decode() if proc.stderr else ""
    if code != 0 or "PEAK_RSS_KB" not in errors:
        raise RuntimeError(f"{' '.join(command)} failed ({code}): {errors[-2000:]}")
    peak_kb = int(errors.rsplit("PEAK_RSS_KB", 1)[1].split()[0])
    return {
        "seconds": round(seconds, 2),
        "peak_rss_mb": round(peak_kb / 1024, 1),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
        "file_mb": round(out.stat().st_size / 1e6, 1),
    }


def count_rows(path: Path) -> int:
    """The data rows of an export file (its header not counted)."""
    if path.suffix == ".csv":
        with path.open(newline="", encoding="utf-8-sig") as file:
            return sum(1 for _ in csv.reader(file)) - 1
    with zipfile.ZipFile(path) as archive, archive.open("xl/worksheets/sheet1.xml") as sheet:
        rows, tail = 0, b""
        while chunk := sheet.read(1 << 20):
            # "<row>" (ours) or "<row r=..." (xlsxwriter); a tag cut between reads counts once.
            rows += (tail + chunk).count(b"<row") - tail.count(b"<row")
            tail = chunk[-4:]
        return rows - 1


def _median(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    keys = ("seconds", "peak_rss_mb", "cpu_s", "file_mb")
    return {key: round(statistics.median(r[key] for r in rounds), 2) for key in keys}


async def _run(o: Options) -> dict[str, Any]:
    if o.kind == "postgresql" and not o.url:
        problem = await procs.pg_unreachable(o.admin_url)
        if problem:
            raise RuntimeError(f"PostgreSQL at {o.admin_url} unreachable: {problem}")
    writers: list[tuple[str, Path]] = [(w, ROOT) for w in o.writers]
    if o.before is not None:
        writers += [(f"before_{w}", o.before) for w in o.writers if w in ("csv", "xlsx")]
    figures: dict[str, Any] = {
        "benchmark": "export",
        "date": time.strftime("%Y-%m-%d", time.gmtime()),
        "db": o.kind,
        "rows": o.rows,
        "runs": o.runs,
        "before": str(o.before) if o.before else None,
    }
    rounds: dict[str, list[dict[str, Any]]] = {w: [] for w, _ in writers}
    async with _database(o) as (url, tmp):
        campaign_id, seed_seconds = await _campaign(url, o.rows)
        figures["seed_seconds"] = round(seed_seconds, 1) if seed_seconds is not None else None
        load_before = os.getloadavg()
        for _ in range(o.runs):
            for writer, root in writers:
                suffix = "csv" if writer.endswith("csv") else "xlsx"
                out = tmp / f"export-{writer}.{suffix}"
                command = export_command(writer, campaign_id, out)
                result = await asyncio.to_thread(measure_export, url, root, command, out)
                result["rows_in_file"] = await asyncio.to_thread(count_rows, out)
                rounds[writer].append(result)
                out.unlink()
        figures["load_average"] = {
            "start": [round(x, 2) for x in load_before],
            "end": [round(x, 2) for x in os.getloadavg()],
        }
    figures["median"] = {w: _median(r) for w, r in rounds.items()}
    figures["all_rows_written"] = all(
        r["rows_in_file"] == o.rows for runs in rounds.values() for r in runs
    )
    figures["rounds"] = rounds
    figures["machine"] = {"cpus": os.cpu_count()}
    return figures


def run(options: dict[str, str]) -> dict[str, Any]:
    return asyncio.run(_run(Options.parse(options)))
