"""The SIP benchmark: real calls (SIP and RTP) through Asterisk and Pledgeline.

``pledgeline bench sip --json [rates=5,10,20] [step_seconds=20] [talk_seconds=10]
[ring_ms=0] [seats=N] [database=postgresql|sqlite] [rtp=on|off] [profile=DIR]``

What runs, all real processes on this machine:

- Asterisk 22 configured from ``deploy/asterisk`` (``tests/asterisk_pbx.py``), one
  PJSIP endpoint per volunteer's seat, every seat's contact the one SIPp answering
  for all of them (``seats.xml``: rings ``ring_ms``, answers, streams RTP, takes
  the BYE);
- Pledgeline: one uvicorn process, platform ``asterisk``, on a fresh PostgreSQL
  database (or SQLite) built by the migrations; ``seats`` volunteers logged in at
  their seats and ready, wrap-up 0 s;
- callers: one SIPp per step of rate (``caller.xml``) placing ``rate`` calls a
  second for ``step_seconds``, each streaming RTP (a raw mu-law file made here)
  and hanging up ``talk_seconds`` after Asterisk answered, so about ``rate x
  talk_seconds`` calls are bridged at once at the end of a step.

Each step is drained (every call ended) before the next. Per step:

``offered_per_s`` / ``completed_per_s``  calls SIPp placed / calls that reached a
    volunteer, over SIPp's own window of placing them (its statistics, each second);
``max_bridged``  the most calls connected to a volunteer at one time (the app's
    call rows: volunteer answered to hang-up);
``setup_ms``  the call's arrival in Pledgeline (Asterisk's StasisStart) to the
    volunteer's answer, less ``ring_ms``: queueing, the ACD's offer, the ``bridge``
    command, Asterisk's originate and the seat's SIP answer (p50/p99, call rows);
``invite_to_answer_ms``  the caller's INVITE to Asterisk's 200 OK (SIPp's own
    timer): Asterisk, the Stasis entry and Pledgeline's ``answer`` command;
``lost``  calls that never reached a volunteer (there are always more seats than
    calls at once, so a volunteer was free) plus calls SIPp counts as failed;
``cpu_s``  CPU seconds of Asterisk, the app, PostgreSQL's backends and the SIPps
    during the step (from /proc), with the machine's load average.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import datetime as dt
import os
import resource
import socket
import subprocess
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench.routing import _database, _token, bounded, fetch
from bench.stats import cpu_seconds, percentiles
from tests import procs

SERVICE = "+33800000001"
BENCH_SECRET = "bench-sip-telephony-Kq7vR2nW9pLx4tZb"

CALLER_XML = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="Pledgeline bench caller">
  <send retrans="500">
    <![CDATA[
      INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: "Caller" <sip:06[call_number]@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: <sip:caller@[local_ip]:[local_port];transport=[transport]>
      Max-Forwards: 70
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=caller 53655765 2353687637 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 0
      a=rtpmap:0 PCMU/8000
      a=sendrecv
    ]]>
  </send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="183" optional="true"/>
  <recv response="200" rtd="true" rrs="true"/>
  <send>
    <![CDATA[
      ACK [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: "Caller" <sip:06[call_number]@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 1 ACK
      [routes]
      Contact: <sip:caller@[local_ip]:[local_port];transport=[transport]>
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
  {rtp}
  <pause milliseconds="{talk_ms}"/>
  <send retrans="500">
    <![CDATA[
      BYE [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: "Caller" <sip:06[call_number]@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 2 BYE
      [routes]
      Contact: <sip:caller@[local_ip]:[local_port];transport=[transport]>
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
  <recv response="200"/>
</scenario>
"""

SEATS_XML = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="Pledgeline bench seats">
  <recv request="INVITE" crlf="true"/>
  <send>
    <![CDATA[
      SIP/2.0 180 Ringing
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:[local_ip]:[local_port];transport=[transport]>
      Content-Length: 0

    ]]>
  </send>
  {ring}
  <send retrans="500">
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      [last_Record-Route:]
      Contact: <sip:[local_ip]:[local_port];transport=[transport]>
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=seat 53655765 2353687637 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 0
      a=rtpmap:0 PCMU/8000
      a=sendrecv
    ]]>
  </send>
  <recv request="ACK" crlf="true"/>
  {rtp}
  <recv request="BYE"/>
  <send>
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0

    ]]>
  </send>
</scenario>
"""

RTP_STREAM = '<nop><action><exec rtp_stream="voice.ulaw,-1,0"/></action></nop>'


@dataclass
class Options:
    rates: list[float]
    step_seconds: float
    talk_seconds: float
    ring_ms: int
    seats: int
    kind: str
    admin_url: str
    root: Path
    rtp: bool
    profile: Path | None  # py-spy (raw stacks) of the app over each step, into this folder

    @classmethod
    def parse(cls, options: dict[str, str]) -> Options:
        rates = [float(r) for r in options.get("rates", "5,10,20").split(",") if r.strip()]
        talk = float(options.get("talk_seconds", "10"))
        # More seats than calls at once: a call that waits had a volunteer free.
        seats = int(options.get("seats", str(int(max(rates) * talk * 1.2) + 10)))
        kind = options.get("database", "postgresql")
        if kind not in ("postgresql", "sqlite"):
            raise ValueError(f"database is postgresql or sqlite, not {kind!r}")
        return cls(
            rates=rates,
            step_seconds=float(options.get("step_seconds", "20")),
            talk_seconds=talk,
            ring_ms=int(options.get("ring_ms", "0")),
            seats=seats,
            kind=kind,
            admin_url=options.get("pg_url", procs.PG_ADMIN_URL),
            root=Path(options.get("app_root", str(procs.ROOT))).resolve(),
            rtp=options.get("rtp", "on") != "off",
            profile=Path(options["profile"]).resolve() if options.get("profile") else None,
        )


def _udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _write_scenarios(folder: Path, o: Options) -> None:
    """The two scenarios and the voice they stream: one second of a 400 Hz mu-law tone
    (any bytes would do for Asterisk's mixing; a tone is what a call would carry)."""
    folder.mkdir(parents=True, exist_ok=True)
    rtp = RTP_STREAM if o.rtp else ""
    ring = f'<pause milliseconds="{o.ring_ms}"/>' if o.ring_ms > 0 else ""
    (folder / "caller.xml").write_text(
        CALLER_XML.replace("{rtp}", rtp).replace("{talk_ms}", str(int(o.talk_seconds * 1000)))
    )
    (folder / "seats.xml").write_text(SEATS_XML.replace("{rtp}", rtp).replace("{ring}", ring))
    (folder / "voice.ulaw").write_bytes(bytes(_ulaw_tone()))


def _ulaw_tone(hz: int = 400, seconds: int = 1, level: float = 0.3) -> list[int]:
    import math

    out = []
    for n in range(8000 * seconds):
        sample = int(level * 32767 * math.sin(2 * math.pi * hz * n / 8000))
        out.append(_ulaw(sample))
    return out


def _ulaw(sample: int) -> int:
    """G.711 mu-law of a 16-bit sample."""
    sign = 0x80 if sample < 0 else 0
    magnitude = min(abs(sample), 32635) + 0x84
    exponent = max(0, magnitude.bit_length() - 8)
    mantissa = (magnitude >> (exponent + 3)) & 0x0F
    return ~(sign | (exponent << 4) | mantissa) & 0xFF


def _sipp(folder: Path, name: str, args: list[str]) -> subprocess.Popen[bytes]:
    command = ["sipp", "-sf", str(folder / f"{name}.xml"), "-i", "127.0.0.1"]
    command += ["-mp", str(_udp_port() & ~1), "-nostdin", "-trace_err", "-trace_stat", "-fd", "1"]
    command += ["-error_file", str(folder / f"{name}.errors"), *args]
    out = (folder / f"{name}.out").open("ab")
    proc = subprocess.Popen(
        command, cwd=folder, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
    )
    out.close()
    return proc


def _last_stats(folder: Path, name: str, pid: int) -> dict[str, str]:
    """SIPp's last statistics line (``-trace_stat``): counters since it started."""
    path = folder / f"{name}_{pid}_.csv"
    if not path.exists():
        return {}
    rows = list(csv.DictReader(path.open(), delimiter=";"))
    return rows[-1] if rows else {}


def _placing_seconds(folder: Path, name: str, pid: int, calls: int) -> float:
    """From SIPp's first call to its last (its statistics lines, one a second)."""
    path = folder / f"{name}_{pid}_.csv"
    first = last = None
    if path.exists():
        for row in csv.DictReader(path.open(), delimiter=";"):
            created = int(row.get("TotalCallCreated") or 0)
            # "2026-12-07<TAB>03:14:01.932275<TAB>1796613241.932275": the epoch last.
            elapsed = float(str(row.get("CurrentTime") or "0").split("\t")[-1])
            if created > 0 and first is None:
                first = elapsed
            if created >= calls and last is None:
                last = elapsed
    if first is None or last is None:
        return 1.0
    return max(1.0, last - first + 1.0)


def _rtts(folder: Path, name: str, pid: int) -> list[float]:
    """Each call's response time (ms) from SIPp's ``-trace_rtt`` file."""
    path = folder / f"{name}_{pid}_rtt.csv"
    if not path.exists():
        return []
    values = []
    for row in csv.reader(path.open(), delimiter=";"):
        with contextlib.suppress(ValueError, IndexError):
            values.append(float(row[1]))
    return values


def _time(value: Any) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    return dt.datetime.fromisoformat(str(value)).replace(tzinfo=dt.UTC)


def max_overlap(intervals: list[tuple[dt.datetime, dt.datetime]]) -> int:
    """The most intervals open at one time (an end before a start at the same time)."""
    edges = sorted([(a, 1) for a, _ in intervals] + [(b, -1) for _, b in intervals])
    most = current = 0
    for _, step in edges:
        current += step
        most = max(most, current)
    return most


async def _setup(base_url: str, token: str | None, seats: int) -> int:
    """A campaign on ``SERVICE``, its queue (wrap-up 0 s) and ``seats`` volunteers
    logged in at seats ``desk-<n>`` and ready. The campaign's id."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=30.0) as http:

        async def post(path: str, body: Any) -> dict[str, Any]:
            r = await http.post(path, json=body)
            if r.status_code not in (200, 201):
                raise RuntimeError(f"POST {path}: {r.status_code} {r.text}")
            answer: dict[str, Any] = r.json()
            return answer

        campaign = await post("/campaigns", {"name": "Telethon SIP", "dialled_numbers": [SERVICE]})
        cid = campaign["id"]
        await post(
            "/queues",
            {
                "campaign_id": cid,
                "name": "pledges",
                "required_skill": "pledges",
                "wrapup_seconds": 0,
            },
        )

        async def volunteer(n: int) -> None:
            seat = await post(
                "/seats", {"campaign_id": cid, "name": f"desk-{n}", "address": f"PJSIP/desk-{n}"}
            )
            agent = await post(
                "/agents",
                {
                    "campaign_id": cid,
                    "login": f"desk{n}",
                    "display_name": f"Desk {n}",
                    "skills": {"pledges": 1},
                },
            )
            await post(f"/agents/{agent['id']}/login", {"seat_id": seat["id"]})
            await post(f"/agents/{agent['id']}/ready", None)

        await bounded(8, (volunteer(n) for n in range(seats)))
        return int(cid)


async def _wait_app_registered(pbx: Any, timeout: float = 30.0) -> None:
    """The app's events websocket is connected once Asterisk lists its application."""
    deadline = time.monotonic() + timeout
    async with pbx.ari() as ari:
        while time.monotonic() < deadline:
            r = await ari.get("/applications")
            if r.status_code == 200 and any(a["name"] == "pledgeline" for a in r.json()):
                return
            await asyncio.sleep(0.2)
    raise RuntimeError("the app never connected to ARI")


async def _calls_since(url: str, since: dt.datetime) -> list[tuple[Any, ...]]:
    stamp = since.strftime("%Y-%m-%d %H:%M:%S.%f")
    return await fetch(
        url,
        "SELECT received_at, answered_at, hangup_at, ended_at, state, agent_id, end_reason "
        f"FROM calls WHERE received_at >= '{stamp}' ORDER BY received_at",
    )


async def _drained(url: str, since: dt.datetime, expected: int, timeout: float) -> None:
    """Every call of the step has ended (or ``timeout``)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = await _calls_since(url, since)
        if len(rows) >= expected and all(r[3] is not None or r[4] == "ended" for r in rows):
            return
        await asyncio.sleep(0.5)


def _postgres_backends(database: str | None) -> dict[int, float]:
    """CPU seconds so far of each PostgreSQL backend serving ``database`` (by title)."""
    import psutil

    found: dict[int, float] = {}
    if database is None:
        return found
    for proc in psutil.process_iter(["name", "cmdline"]):
        title = " ".join(proc.info["cmdline"] or [])
        if (proc.info["name"] or "").startswith("postgres") and f" {database} " in f"{title} ":
            with contextlib.suppress(psutil.Error):
                times = proc.cpu_times()
                found[proc.pid] = times.user + times.system
    return found


@dataclass
class Cpu:
    asterisk: float
    app: float
    postgres: dict[int, float]  # per backend: one that exits takes its CPU with it
    sipp: float

    @classmethod
    def take(cls, asterisk: int, app: list[int], database: str | None, sipps: list[int]) -> Cpu:
        return cls(
            cpu_seconds([asterisk]),
            cpu_seconds(app),
            _postgres_backends(database),
            cpu_seconds(sipps),
        )

    def minus(self, other: Cpu) -> dict[str, float]:
        return {
            "asterisk": round(self.asterisk - other.asterisk, 2),
            "pledgeline": round(self.app - other.app, 2),
            # The backends alive at the step's end (the pool closes some: a lower bound).
            "postgres": round(
                sum(t - other.postgres.get(pid, 0.0) for pid, t in self.postgres.items()), 2
            ),
            "sipp": round(self.sipp - other.sipp, 2),
        }


async def _step(
    o: Options, rate: float, folder: Path, pbx: Any, url: str, pids: dict[str, Any], seats: Any
) -> dict[str, Any]:
    calls = max(1, round(rate * o.step_seconds))
    name = "caller"
    since = dt.datetime.now(dt.UTC) - dt.timedelta(milliseconds=1)
    before = Cpu.take(pids["asterisk"], pids["app"], pids["database"], [seats.pid])
    load_before = os.getloadavg()[0]
    t0 = time.monotonic()
    caller = _sipp(
        folder,
        name,
        [
            *("-p", str(_udp_port()), "-s", SERVICE),
            *("-r", f"{rate:g}", "-rp", "1000", "-m", str(calls), "-l", "100000"),
            *("-trace_rtt", "-rtt_freq", "1"),
            *("-timeout", str(int(o.step_seconds + o.talk_seconds + 120)), "-timeout_error"),
            f"127.0.0.1:{pbx.sip_port}",
        ],
    )
    spy = _profile(o, rate, pids["app"][0])
    await asyncio.to_thread(caller.wait)
    if spy is not None:
        await asyncio.to_thread(spy.wait)
    elapsed = time.monotonic() - t0
    await _drained(url, since, calls, timeout=30.0)
    after = Cpu.take(pids["asterisk"], pids["app"], pids["database"], [seats.pid, caller.pid])
    stats = _last_stats(folder, name, caller.pid)
    rows = await _calls_since(url, since)
    window = _placing_seconds(folder, name, caller.pid, calls)
    answered = [r for r in rows if r[1] is not None]
    setup = [(_time(r[1]) - _time(r[0])).total_seconds() * 1000 - o.ring_ms for r in answered]
    bridged = [(_time(r[1]), _time(r[2] or r[3] or dt.datetime.now(dt.UTC))) for r in answered]
    created = int(stats.get("TotalCallCreated", calls) or calls)
    ok = int(stats.get("SuccessfulCall(C)", 0) or 0)
    failed = int(stats.get("FailedCall(C)", 0) or 0)
    reasons: dict[str, int] = {}
    for r in rows:
        if r[1] is None:
            key = str(r[6] or r[4])
            reasons[key] = reasons.get(key, 0) + 1
    return {
        "rate": rate,
        "calls": calls,
        "offered_per_s": round(created / window, 2),
        "completed_per_s": round(len(answered) / window, 2),
        "sipp_successful": ok,
        "sipp_failed": failed,
        "call_rows": len(rows),
        "reached_volunteer": len(answered),
        "lost": max(created - len(answered), failed),
        "lost_reasons": reasons,
        "max_bridged": max_overlap(bridged),
        "setup_ms": percentiles(setup, (50, 99)),
        "invite_to_answer_ms": percentiles(_rtts(folder, name, caller.pid), (50, 99)),
        "step_wall_s": round(elapsed, 1),
        "cpu_s": after.minus(before),
        "load_avg_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }


def _profile(o: Options, rate: float, pid: int) -> subprocess.Popen[bytes] | None:
    """``py-spy record`` of the app over the step's arrivals (``profile=DIR``)."""
    if o.profile is None:
        return None
    o.profile.mkdir(parents=True, exist_ok=True)
    command = ["py-spy", "record", "--pid", str(pid), "--duration", str(round(o.step_seconds))]
    command += ["--rate", "100", "--nonblocking", "--format", "raw"]
    command += ["-o", str(o.profile / f"app-{rate:g}.txt")]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@contextlib.asynccontextmanager
async def _seats_sipp(folder: Path, port: int) -> AsyncIterator[subprocess.Popen[bytes]]:
    seats = _sipp(folder, "seats", ["-p", str(port), "-l", "100000"])
    try:
        yield seats
    finally:
        seats.terminate()
        try:
            await asyncio.to_thread(seats.wait, 10)
        except subprocess.TimeoutExpired:
            seats.kill()
            seats.wait()


async def _run(o: Options) -> dict[str, Any]:
    from app.telephony.asterisk.config import SeatPhone
    from tests.asterisk_pbx import asterisk_problem, running_pbx

    problem = asterisk_problem()
    if problem is not None:
        raise RuntimeError(problem)
    if o.kind == "postgresql":
        unreachable = await procs.pg_unreachable(o.admin_url)
        if unreachable:
            raise RuntimeError(f"PostgreSQL at {o.admin_url} unreachable: {unreachable}")
    # Asterisk and SIPp open sockets per call (SIP, RTP, RTCP): as many as allowed.
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    most = int(max(o.rates) * o.talk_seconds * 1.5) + 20
    async with _database(o.kind, o.admin_url, o.root) as (url, tmp):
        folder = tmp / "sipp"
        _write_scenarios(folder, o)
        seats_port = _udp_port()
        phones = [
            SeatPhone(f"desk-{n}", contact=f"sip:desk-{n}@127.0.0.1:{seats_port}")
            for n in range(o.seats)
        ]
        async with (
            running_pbx(
                tmp / "pbx",
                phones,
                rtp_ports=max(200, 4 * 2 * most),
                # As deployed (deploy/asterisk/pjsip_trunk.conf): RFC 4733 keys on
                # both sides let Asterisk relay a bridged call's RTP natively.
                trunk_dtmf_mode="rfc4733",
            ) as pbx,
            _seats_sipp(folder, seats_port) as seats,
        ):
            server = await procs.start_server(
                url,
                secret=BENCH_SECRET,
                settings=pbx.settings(),
                log_dir=tmp / "logs",
                root=o.root,
            )
            try:
                await _wait_app_registered(pbx)
                t_setup = time.monotonic()
                await _setup(server.base_url, await _token(url, o.root, server.base_url), o.seats)
                setup_s = time.monotonic() - t_setup
                pids = {
                    "asterisk": pbx.process.pid,
                    "app": server.python_pids(),
                    "database": url.rsplit("/", 1)[1] if o.kind == "postgresql" else None,
                }
                steps = []
                for rate in o.rates:
                    steps.append(await _step(o, rate, folder, pbx, url, pids, seats))
                errors = server.errors()
            finally:
                await procs.stop_server(server)
    return {
        "benchmark": "sip",
        "database": o.kind,
        "seats": o.seats,
        "talk_seconds": o.talk_seconds,
        "step_seconds": o.step_seconds,
        "ring_ms": o.ring_ms,
        "rtp": o.rtp,
        "cpus": os.cpu_count(),
        "setup_volunteers_s": round(setup_s, 1),
        "steps": steps,
        "server_errors": len(errors),
        "server_error_sample": errors[:2],
    }


def run(options: dict[str, str]) -> dict[str, Any]:
    return asyncio.run(_run(Options.parse(options)))
