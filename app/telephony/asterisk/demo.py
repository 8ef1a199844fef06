"""The demo against a real Asterisk (``pledgeline demo --asterisk``, ``make
demo-asterisk``): an Asterisk on this machine rendered from the deployment templates,
with a demo caller's phone, started before the app and stopped after it.

Its secrets (the ARI password, the demo caller's password) are derived from the
server's secret key, so a softphone set up once keeps working from one demo to the
next.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from app.settings import Settings
from app.telephony.asterisk.cli import seat_password
from app.telephony.asterisk.local import DemoCaller, Ports, asterisk_prefix, command, prepare

DEMO_PORTS = Ports(http=8088, sip=5060, sip_tls=5061, rtp_start=10000)
DEMO_CALLER = "demo-caller"


class AsteriskDidNotStart(RuntimeError):
    pass


@dataclass(frozen=True)
class DemoAsterisk:
    root: Path
    ports: Ports
    ari_password: str
    caller: DemoCaller

    @property
    def ari_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.http}"

    def environment(self, settings: Settings) -> dict[str, str]:
        """The app's settings to drive this Asterisk, the softphone on."""
        return {
            "PLEDGELINE_TELEPHONY_PLATFORM": "asterisk",
            "PLEDGELINE_ASTERISK_ARI_URL": self.ari_url,
            "PLEDGELINE_ASTERISK_ARI_USER": settings.asterisk_ari_user,
            "PLEDGELINE_ASTERISK_ARI_PASSWORD": self.ari_password,
            "PLEDGELINE_ASTERISK_ARI_APP": settings.asterisk_ari_app,
            "PLEDGELINE_SOFTPHONE_WS_URL": f"ws://127.0.0.1:{self.ports.http}/ws",
            "PLEDGELINE_SIMULATE": "false",
        }


def demo_asterisk(root: Path, settings: Settings, ports: Ports = DEMO_PORTS) -> DemoAsterisk:
    """Render the demo's Asterisk folder in ``root``."""
    ari_password = seat_password(settings.secret_key, "ari")
    caller = DemoCaller(DEMO_CALLER, seat_password(settings.secret_key, DEMO_CALLER))
    prepare(
        root,
        ports=ports,
        ari_user=settings.asterisk_ari_user,
        ari_password=ari_password,
        ari_app=settings.asterisk_ari_app,
        trunk_endpoint=settings.asterisk_trunk_endpoint,
        demo_caller=caller,
    )
    return DemoAsterisk(root.resolve(), ports, ari_password, caller)


@contextlib.contextmanager
def running(demo: DemoAsterisk, settings: Settings, wait_seconds: float = 60.0) -> Iterator[None]:
    """Asterisk started on the demo's folder until ARI answers; stopped on the way out."""
    binary = asterisk_prefix() / "sbin" / "asterisk"
    if not binary.is_file():
        raise AsteriskDidNotStart(f"no Asterisk at {binary} (make asterisk builds it)")
    out = demo.root / "asterisk.out"
    with out.open("wb") as log:
        process = subprocess.Popen(
            command(demo.root / "etc" / "asterisk.conf"),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    # uvicorn raises a SIGTERM again once it has shut down: as an exception here, so
    # Asterisk is stopped below rather than left running.
    previous = signal.signal(signal.SIGTERM, _exit_on_signal)
    try:
        _wait_for_ari(demo, settings, process, out, wait_seconds)
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _exit_on_signal(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def _wait_for_ari(
    demo: DemoAsterisk,
    settings: Settings,
    process: subprocess.Popen[bytes],
    out: Path,
    wait_seconds: float,
) -> None:
    auth = (settings.asterisk_ari_user, demo.ari_password)
    deadline = time.monotonic() + wait_seconds
    with httpx.Client(base_url=f"{demo.ari_url}/ari", auth=auth, timeout=2.0) as ari:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                tail = out.read_text(errors="replace")[-2000:]
                raise AsteriskDidNotStart(f"Asterisk exited ({process.returncode}):\n{tail}")
            with contextlib.suppress(httpx.HTTPError):
                if ari.get("/asterisk/info").status_code == 200:
                    return
            time.sleep(0.2)
    raise AsteriskDidNotStart(f"ARI did not answer at {demo.ari_url} (see {out})")
