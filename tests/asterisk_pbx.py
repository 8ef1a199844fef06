"""A real Asterisk for the telephony tests, configured from ``deploy/asterisk``.

``running_pbx`` renders the deployment templates into a temporary folder with free
ports (through the app's one renderer, ``app.telephony.asterisk.local``), starts
``asterisk -f -C <dir>/etc/asterisk.conf``, waits until ARI answers and stops it at
the end. ``sipp`` runs a SIPp scenario from ``tests/sipp`` as a process.

Asterisk is built by ``make asterisk`` into ``~/.cache/pledgeline/asterisk``
(``PLEDGELINE_ASTERISK`` elsewhere). Without it the tests skip, and fail under
``CI=true``.

This module does not import pytest.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import subprocess
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from app.telephony.asterisk.config import SeatPhone
from app.telephony.asterisk.local import (
    DEBIAN_SOUNDS,
    DemoCaller,
    Ports,
    asterisk_prefix,
    command,
    prepare,
)

SIPP_DIR = Path(__file__).resolve().parent / "sipp"
ARI_USER = "pledgeline"
ARI_PASSWORD = "test-ari-Wm4qT8zK2pLx6vRb"
ARI_APP = "pledgeline"
TRUNK = "trunk"


def asterisk_problem() -> str | None:
    """Why the telephony tests cannot run here, or None."""
    if not (asterisk_prefix() / "sbin" / "asterisk").is_file():
        return f"no Asterisk in {asterisk_prefix()} (make asterisk builds it)"
    if shutil.which("sipp") is None:
        return "no SIPp (Debian's sip-tester: make telephony-packages)"
    if not (DEBIAN_SOUNDS / "sounds" / "fr").is_dir() or not (DEBIAN_SOUNDS / "moh").is_dir():
        return "no prompts or music on hold (make telephony-packages)"
    return None


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Pbx:
    root: Path
    http_port: int
    sip_port: int
    process: subprocess.Popen[bytes]
    prefix: Path

    async def stop(self) -> None:
        self.process.terminate()
        try:
            await asyncio.to_thread(self.process.wait, 15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    async def crash_and_restart(self) -> None:
        """Asterisk killed (every call on it gone, no event told) and started again
        on the same ports."""
        self.process.kill()
        await asyncio.to_thread(self.process.wait)
        self.process = _spawn_asterisk(self.prefix, self.root / "etc", self.root / "asterisk.out")
        await _wait_for_ari(self)

    @property
    def ari_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def settings(self) -> dict[str, object]:
        """The app's settings to drive this Asterisk."""
        return {
            "telephony_platform": "asterisk",
            "asterisk_ari_url": self.ari_url,
            "asterisk_ari_user": ARI_USER,
            "asterisk_ari_password": ARI_PASSWORD,
            "asterisk_ari_app": ARI_APP,
            "asterisk_trunk_endpoint": TRUNK,
        }

    def ari(self) -> httpx.AsyncClient:
        """A client of the test's own (not the adapter's), to look at Asterisk."""
        return httpx.AsyncClient(
            base_url=f"{self.ari_url}/ari", auth=(ARI_USER, ARI_PASSWORD), timeout=10.0
        )

    def log_text(self) -> str:
        path = self.root / "var" / "log" / "messages.log"
        return path.read_text(errors="replace") if path.exists() else ""


@contextlib.asynccontextmanager
async def running_pbx(
    root: Path,
    phones: Iterable[SeatPhone] = (),
    demo_caller: DemoCaller | None = None,
    *,
    rtp_ports: int = 200,
    trunk_contact: str = "sip:127.0.0.1:5060",
    trunk_dtmf_mode: str = "info",
) -> AsyncIterator[Pbx]:
    """``rtp_ports``: the size of the RTP port range (two ports a channel: RTP, RTCP);
    ``trunk_contact``: where the trunk's outgoing calls go (callbacks, transfers);
    ``trunk_dtmf_mode``: SIP INFO by default, the keys the tests' SIPp callers press;
    the benchmark's callers press none and take the deployment's RFC 4733."""
    prefix = asterisk_prefix()
    # Asterisk wants an even start; the range stays below the last port.
    rtp = min(free_port(socket.SOCK_DGRAM), 65535 - rtp_ports) & ~1
    http_port, sip_port = free_port(), free_port(socket.SOCK_DGRAM)
    config = prepare(
        root,
        ports=Ports(
            http=http_port, sip=sip_port, sip_tls=free_port(), rtp_start=rtp, rtp_ports=rtp_ports
        ),
        ari_user=ARI_USER,
        ari_password=ARI_PASSWORD,
        ari_app=ARI_APP,
        trunk_endpoint=TRUNK,
        trunk_contact=trunk_contact,
        trunk_dtmf_mode=trunk_dtmf_mode,
        phones=phones,
        demo_caller=demo_caller,
        prefix=prefix,
    )
    etc = config.parent
    process = _spawn_asterisk(prefix, etc, root / "asterisk.out")
    pbx = Pbx(root, http_port, sip_port, process, prefix)
    try:
        await _wait_for_ari(pbx)
        yield pbx
    finally:
        await pbx.stop()


def _spawn_asterisk(prefix: Path, etc: Path, out: Path) -> subprocess.Popen[bytes]:
    """Asterisk in the foreground (``-f``), its own console output to ``out``."""
    with out.open("wb") as log:
        return subprocess.Popen(
            command(etc / "asterisk.conf", prefix),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


async def _wait_for_ari(pbx: Pbx, attempts: int = 300) -> None:
    async with pbx.ari() as ari:
        for _ in range(attempts):
            if pbx.process.poll() is not None:
                raise RuntimeError(f"Asterisk exited: {(pbx.root / 'asterisk.out').read_text()}")
            with contextlib.suppress(httpx.HTTPError):
                if (await ari.get("/asterisk/info")).status_code == 200:
                    return
            await asyncio.sleep(0.1)
    raise RuntimeError("ARI never answered")


def silence(root: Path) -> Path:
    """One second of mu-law silence, streamed in a loop as the parties' RTP."""
    path = root / "silence.ulaw"
    if not path.exists():  # never rewritten under a SIPp reading it
        scratch = root / "silence.ulaw.new"
        scratch.write_bytes(b"\xff" * 8000)
        scratch.rename(path)
    return path


@dataclass
class Sipp:
    """A SIPp process running one scenario of ``tests/sipp`` for one call."""

    name: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    async def finished(self) -> int:
        """Its exit status once the scenario is over (0: played to its end)."""
        return await asyncio.to_thread(self.process.wait)

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def start_sipp(
    root: Path,
    scenario: str,
    *,
    port: int,
    pbx: Pbx | None = None,
    service: str | None = None,
    caller: str = "0612345678",
    extra: Sequence[str] = (),
) -> Sipp:
    """A caller (``pbx`` and ``service``: the number dialled) or a seat waiting for
    Asterisk's INVITE on ``port``. ``-timeout`` only keeps a broken run from hanging."""
    log = root / f"sipp-{scenario}-{port}.log"
    command = ["sipp", "-sf", str(SIPP_DIR / f"{scenario}.xml"), "-i", "127.0.0.1"]
    command += ["-p", str(port), "-mp", str(free_port(socket.SOCK_DGRAM) & ~1), "-m", "1"]
    silence(root)  # the scenarios stream it from their working folder
    command += ["-key", "caller", caller]
    command += ["-nostdin", "-timeout", "120", "-timeout_error", "-trace_err"]
    command += ["-error_file", str(root / f"sipp-{scenario}-{port}.errors")]
    command += extra
    if service is not None:
        command += ["-s", service]
    if pbx is not None:
        command.append(f"127.0.0.1:{pbx.sip_port}")
    out = log.open("wb")
    process = subprocess.Popen(
        command, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, cwd=root
    )
    out.close()
    return Sipp(scenario, port, process, log)
