"""The built-in reverse directory: sample French subscribers for the demo and the tests.

It speaks the contract of docs/directory.md. Nothing is stored: whether a number
is listed, and who answers it, is derived from a hash of (seed, number), so any
valid number gets the same answer every time for one seed, including the random
numbers the simulator dials from. About 70 % of fixed lines (01-05), 30 % of
VoIP "box" numbers (09) and 40 % of mobiles (06/07) are listed; a fixed line
gets an address in its own region. Half the listed subscribers have an e-mail.
A few numbers are pinned (``PINNED``) so demos and tests can count on them.

Run it with ``pledgeline directory serve [--port 8100] [--seed N]`` or
``python -m app.cti.directory_server``. With ``--faults`` it also answers
``POST /_faults`` to make it slow or broken on purpose (tests, benchmarks):

    {"mode": "none" | "slow" | "http500" | "malformed" | "wrong_content_type",
     "delay_ms": 0, "remaining": null}

``delay_ms`` delays every answer (``slow`` is a delay with a normal answer);
``remaining`` applies the fault to that many look-ups, then back to ``none``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import hmac
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import phonenumbers
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

DEFAULT_PORT = 8100
DEFAULT_SEED = 1
FAULT_MODES = ("none", "slow", "http500", "malformed", "wrong_content_type")

FIRST_NAMES = (
    "Marie", "Jean", "Pierre", "Michel", "Nathalie", "Isabelle", "Sylvie", "Catherine",
    "Philippe", "Alain", "Françoise", "Nicolas", "Christophe", "Sandrine", "Stéphane",
    "Valérie", "Julien", "Céline", "Camille", "Léa", "Manon", "Thomas", "Hugo", "Chloé",
    "Émilie", "Sébastien", "Aurélie", "Laurent", "Monique", "Bernard", "Jacqueline",
    "Élodie", "Mathieu", "Inès", "Lucas", "Anne", "Hélène", "Gérard", "Odile", "Yannick",
)  # fmt: skip
LAST_NAMES = (
    "Martin", "Bernard", "Dubois", "Thomas", "Robert", "Richard", "Petit", "Durand",
    "Leroy", "Moreau", "Simon", "Laurent", "Lefebvre", "Michel", "Garcia", "David",
    "Bertrand", "Roux", "Vincent", "Fournier", "Morel", "Girard", "André", "Lefèvre",
    "Mercier", "Dupont", "Lambert", "Bonnet", "François", "Martinez", "Legrand", "Garnier",
    "Faure", "Rousseau", "Blanc", "Guérin", "Muller", "Henry", "Roussel", "Perrin",
    "Morin", "Clément", "Gauthier", "Dumont", "Lopez", "Fontaine", "Chevalier", "Robin",
    "Le Gall", "Kervella",
)  # fmt: skip
STREETS = (
    "rue de la République", "rue Victor Hugo", "avenue Jean Jaurès", "rue Pasteur",
    "boulevard Gambetta", "rue du Général de Gaulle", "place de la Mairie",
    "rue des Écoles", "chemin des Vignes", "allée des Tilleuls", "rue Jules Ferry",
    "impasse des Lilas", "rue de la Gare", "avenue de la Libération", "rue Voltaire",
    "rue du Moulin", "rue Émile Zola", "rue Nationale", "route de la Forêt",
    "rue Saint-Martin",
)  # fmt: skip
EXTRA_LINES = ("Bâtiment B", "Résidence les Pins", "Appartement 12", "Escalier C, 3e étage")
# (postcode, city) by the region of a French fixed line: 01 Île-de-France, 02 north-west,
# 03 north-east, 04 south-east, 05 south-west.
PLACES: dict[str, tuple[tuple[str, str], ...]] = {
    "1": (
        ("75011", "Paris"), ("75015", "Paris"), ("75018", "Paris"),
        ("92100", "Boulogne-Billancourt"), ("93100", "Montreuil"), ("94300", "Vincennes"),
        ("78000", "Versailles"), ("91300", "Massy"), ("95000", "Cergy"),
    ),
    "2": (
        ("35000", "Rennes"), ("44000", "Nantes"), ("14000", "Caen"), ("76000", "Rouen"),
        ("29200", "Brest"), ("49000", "Angers"), ("37000", "Tours"), ("45000", "Orléans"),
    ),
    "3": (
        ("59000", "Lille"), ("67000", "Strasbourg"), ("54000", "Nancy"), ("51100", "Reims"),
        ("21000", "Dijon"), ("25000", "Besançon"), ("57000", "Metz"), ("80000", "Amiens"),
    ),
    "4": (
        ("13001", "Marseille"), ("69003", "Lyon"), ("06000", "Nice"), ("38000", "Grenoble"),
        ("34000", "Montpellier"), ("83000", "Toulon"), ("42000", "Saint-Étienne"),
        ("63000", "Clermont-Ferrand"),
    ),
    "5": (
        ("33000", "Bordeaux"), ("31000", "Toulouse"), ("64000", "Pau"), ("87000", "Limoges"),
        ("66000", "Perpignan"), ("17000", "La Rochelle"), ("86000", "Poitiers"),
        ("40000", "Mont-de-Marsan"),
    ),
}  # fmt: skip
ALL_PLACES = tuple(place for places in PLACES.values() for place in places)
EMAIL_DOMAINS = ("orange.fr", "free.fr", "gmail.com", "laposte.net", "sfr.fr", "wanadoo.fr")
# Share of numbers listed, by the first digit after +33.
LISTED_SHARE = {"1": 0.7, "2": 0.7, "3": 0.7, "4": 0.7, "5": 0.7, "6": 0.4, "7": 0.4, "9": 0.3}

# Numbers with a fixed answer whatever the seed (None: unlisted).
PINNED: dict[str, dict[str, Any] | None] = {
    "+33123456789": {
        "name": {"first": "Marie", "last": "Dupont"},
        "address": {"lines": ["12 rue de Rivoli"], "postcode": "75004", "city": "Paris"},
        "email": "marie.dupont@example.org",
    },
    "+33561234567": {
        "name": {"first": "Jean", "last": "Martin"},
        "address": {
            "lines": ["3 allée des Tilleuls", "Bâtiment B"],
            "postcode": "31000",
            "city": "Toulouse",
        },
    },
    "+33612345678": None,
}


def _ascii(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if c.isascii() and (c.isalnum() or c in ".-")).lower()


def entry_for(e164: str, seed: int = DEFAULT_SEED) -> dict[str, Any] | None:
    """The subscriber behind an E.164 number, or None when unlisted (deterministic)."""
    if e164 in PINNED:
        pinned = PINNED[e164]
        return None if pinned is None else {"number": e164, "found": True, **pinned}
    if not e164.startswith("+33") or len(e164) != 12:
        return None
    kind = e164[3]
    digest = hashlib.blake2b(f"{seed}:{e164}".encode(), digest_size=16).digest()
    rng = random.Random(int.from_bytes(digest, "big"))
    if rng.random() >= LISTED_SHARE.get(kind, 0.0):
        return None
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    postcode, city = rng.choice(PLACES.get(kind, ALL_PLACES))
    lines = [f"{rng.randint(1, 150)} {rng.choice(STREETS)}"]
    if rng.random() < 0.15:
        lines.append(rng.choice(EXTRA_LINES))
    entry: dict[str, Any] = {
        "number": e164,
        "found": True,
        "name": {"first": first, "last": last},
        "address": {"lines": lines, "postcode": postcode, "city": city},
    }
    if rng.random() < 0.5:
        local = f"{_ascii(first)}.{_ascii(last).replace(' ', '')}"
        if rng.random() < 0.3:
            local += str(rng.randint(1, 99))
        entry["email"] = f"{local}@{rng.choice(EMAIL_DOMAINS)}"
    return entry


def normalise_query(raw: str) -> str | None:
    try:
        parsed = phonenumbers.parse(raw.strip(), "FR")
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(parsed):
        return None
    e164: str = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    return e164


@dataclass
class Faults:
    mode: str = "none"
    delay_ms: float = 0.0
    remaining: int | None = None

    def take(self) -> tuple[str, float]:
        """The fault for the next look-up (and count it down)."""
        mode, delay = self.mode, self.delay_ms
        if self.remaining is not None and (mode != "none" or delay):
            self.remaining -= 1
            if self.remaining <= 0:
                self.mode, self.delay_ms, self.remaining = "none", 0.0, None
        return mode, delay

    def as_dict(self) -> dict[str, Any]:
        return {"mode": self.mode, "delay_ms": self.delay_ms, "remaining": self.remaining}


def _error(status: int, code: str, message: str, **headers: str) -> JSONResponse:
    return JSONResponse({"error": code, "message": message}, status, headers=headers or None)


def create_app(
    *, seed: int = DEFAULT_SEED, token: str | None = None, faults: bool = False
) -> Starlette:
    """The directory as an ASGI app."""
    normalise_query("+33123456789")  # load the numbering metadata now, not on the first call
    state = Faults()
    counts = {"lookups": 0, "found": 0, "not_found": 0, "faulted": 0}

    def authorised(request: Request) -> bool:
        if not token:
            return True
        given = request.headers.get("authorization", "")
        return hmac.compare_digest(given.encode(), f"Bearer {token}".encode())

    async def lookup(request: Request) -> Response:
        if not authorised(request):
            return _error(
                401,
                "unauthorized",
                "bearer token missing or wrong",
                **{"WWW-Authenticate": "Bearer"},
            )
        counts["lookups"] += 1
        raw = request.query_params.get("number")
        if not raw:
            return _error(400, "number_missing", "give ?number=+33...")
        e164 = normalise_query(raw)
        if e164 is None:
            return _error(400, "invalid_number", "not a valid phone number")
        mode, delay_ms = state.take() if faults else ("none", 0.0)
        if delay_ms > 0:
            await asyncio.sleep(delay_ms / 1000)
        if mode != "none" and mode != "slow":
            counts["faulted"] += 1
        if mode == "http500":
            return _error(500, "internal", "fault injected")
        if mode == "malformed":
            body = '{"number": "' + e164 + '", "found": tr'
            return Response(body, 200, media_type="application/json")
        if mode == "wrong_content_type":
            html = "<html><body>Service unavailable</body></html>"
            return Response(html, 200, media_type="text/html")
        entry = entry_for(e164, seed)
        if entry is None:
            counts["not_found"] += 1
            return JSONResponse({"number": e164, "found": False}, 404)
        counts["found"] += 1
        return JSONResponse(entry)

    async def set_faults(request: Request) -> Response:
        if not authorised(request):
            return _error(401, "unauthorized", "bearer token missing or wrong")
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "bad_json", "body is not JSON")
        if not isinstance(body, dict):
            return _error(400, "bad_json", "body is not an object")
        mode = body.get("mode", "none")
        if mode not in FAULT_MODES:
            return _error(400, "bad_mode", f"mode is one of {', '.join(FAULT_MODES)}")
        try:
            delay_ms = float(body.get("delay_ms", 0) or 0)
            remaining = body.get("remaining")
            remaining = None if remaining is None else int(remaining)
        except (TypeError, ValueError):
            return _error(400, "bad_number", "delay_ms and remaining are numbers")
        state.mode, state.delay_ms, state.remaining = mode, max(0.0, delay_ms), remaining
        return JSONResponse(state.as_dict())

    async def get_faults(_: Request) -> Response:
        return JSONResponse(state.as_dict())

    async def stats(_: Request) -> Response:
        return JSONResponse({**counts, "seed": seed, "faults_enabled": faults})

    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "ok", "service": "pledgeline-directory", "pid": os.getpid()})

    routes = [
        Route("/lookup", lookup, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/_stats", stats, methods=["GET"]),
    ]
    if faults:
        routes += [
            Route("/_faults", set_faults, methods=["POST"]),
            Route("/_faults", get_faults, methods=["GET"]),
        ]
    return Starlette(routes=routes)


def serve(
    *,
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    seed: int = DEFAULT_SEED,
    token: str | None = None,
    faults: bool = False,
    log_level: str = "warning",
    exit_with_parent: bool = False,
) -> int:
    """Run the directory in the foreground until interrupted.

    ``exit_with_parent``: stop when the process that started this one is gone (a
    test run killed before its clean-up would otherwise leave it running).
    """
    import uvicorn

    if exit_with_parent:
        _watch_parent()

    print(
        f"Pledgeline sample directory on http://{host}:{port} (seed {seed}"
        + (", fault injection on" if faults else "")
        + (", bearer token required" if token else "")
        + ")",
        flush=True,
    )
    from app.logs import configure_logging

    config = uvicorn.Config(
        create_app(seed=seed, token=token, faults=faults),
        host=host,
        port=port,
        log_level=log_level,
        # One line per request at info level (off at the default, warning); the
        # numbers looked up in it are masked like in every log of ours.
        access_log=True,
        lifespan="off",
        timeout_keep_alive=30,
    )
    configure_logging(log_level)  # after uvicorn set up its handlers: they get masked too
    server = uvicorn.Server(config)
    server.run()
    return 0 if server.started else 3  # did not start (the port taken, say)


def _watch_parent(interval: float = 1.0) -> None:
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(interval)
        os.kill(os.getpid(), signal.SIGTERM)  # uvicorn shuts down as on Ctrl-C

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


class EmbeddedDirectory:
    """The directory in a background thread of this process (the demo's one-command mode).

    A thread with its own event loop: it neither shares the app's loop nor takes over
    the process's signal handlers (uvicorn only installs them in the main thread).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = DEFAULT_PORT,
        seed: int = DEFAULT_SEED,
        token: str | None = None,
    ) -> None:
        import uvicorn

        config = uvicorn.Config(
            create_app(seed=seed, token=token),
            host=host,
            port=port,
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_keep_alive=30,
        )
        self.server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self.server.run, name="directory", daemon=True)

    def start(self, timeout: float = 5.0) -> bool:
        """Start serving; False if it did not come up (port taken, say)."""
        self._thread.start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.server.started:
                return True
            if not self._thread.is_alive():
                return False
            time.sleep(0.02)
        return False

    def stop(self, timeout: float = 5.0) -> None:
        self.server.should_exit = True
        with contextlib.suppress(RuntimeError):
            self._thread.join(timeout)


class DirectoryProcess:
    """The directory as a separate process on a free port (tests and benchmarks)."""

    def __init__(
        self,
        *,
        port: int | None = None,
        seed: int = DEFAULT_SEED,
        token: str | None = None,
        faults: bool = True,
        log_level: str = "warning",
    ) -> None:
        self.port = port or _free_port()
        self.seed, self.token, self.faults = seed, token, faults
        self.log_level = log_level
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = os.path.join(
            tempfile.gettempdir(), f"pledgeline-directory-{os.getpid()}-{id(self)}.log"
        )

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def set_faults(self, **fault: Any) -> None:
        """Make it slow or broken on purpose (``POST /_faults``); no argument: healthy."""
        async with httpx.AsyncClient(base_url=self.base_url) as http:
            answer = await http.post("/_faults", json={"mode": "none", **fault})
            answer.raise_for_status()

    def start(self, timeout: float = 15.0) -> DirectoryProcess:
        """Start it and wait until it answers; a port taken meanwhile means another port."""
        for _attempt in range(3):
            if self._start_once(timeout):
                return self
            self.port = _free_port()
        raise RuntimeError(f"directory did not start:\n{self.log_text()[-2000:]}")

    def _start_once(self, timeout: float) -> bool:
        command = [
            sys.executable, "-m", "app.cti.directory_server",
            "--port", str(self.port), "--seed", str(self.seed), "--exit-with-parent",
        ]  # fmt: skip
        if self.faults:
            command.append("--faults")
        if self.token:
            command += ["--token", self.token]
        command += ["--log-level", self.log_level]
        env = {k: v for k, v in os.environ.items() if not k.startswith("PLEDGELINE_")}
        with open(self.log_path, "wb") as log:
            self.proc = proc = subprocess.Popen(
                command,
                cwd=Path(__file__).resolve().parents[2],  # this source tree's ``app``
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                return False  # most likely: the port was taken between probe and bind
            with contextlib.suppress(httpx.HTTPError, ValueError):
                answer = httpx.get(f"{self.base_url}/healthz", timeout=0.5)
                # Make sure it is our process answering, not another server on the port.
                if answer.status_code == 200 and answer.json().get("pid") == proc.pid:
                    return True
            time.sleep(0.05)
        self.stop(keep_log=True)
        return False

    def log_text(self) -> str:
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as log:
                return log.read()
        except FileNotFoundError:
            return ""

    def stop(self, grace: float = 5.0, *, keep_log: bool = False) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        if not keep_log:
            with contextlib.suppress(FileNotFoundError):
                os.remove(self.log_path)

    def __enter__(self) -> DirectoryProcess:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``pledgeline directory serve`` (also of ``python -m``)."""
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="sample data seed")
    parser.add_argument(
        "--token", help="bearer token to require (default: PLEDGELINE_DIRECTORY_TOKEN, if set)"
    )
    parser.add_argument(
        "--faults", action="store_true", help="enable POST /_faults (tests and benchmarks only)"
    )
    parser.add_argument("--log-level", default="warning")
    parser.add_argument(
        "--exit-with-parent", action="store_true", help="stop when the parent process ends"
    )


def run_from_args(args: argparse.Namespace) -> int:
    token = args.token
    if token is None:
        from app.settings import get_settings

        token = get_settings().directory_token
    return serve(
        host=args.host,
        port=args.port,
        seed=args.seed,
        token=token,
        faults=args.faults,
        log_level=args.log_level,
        exit_with_parent=getattr(args, "exit_with_parent", False),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m app.cti.directory_server", description="Pledgeline sample directory"
    )
    add_arguments(parser)
    return run_from_args(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
