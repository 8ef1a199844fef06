"""Log lines: JSON when asked, and never a card number, whatever reaches a log.

The last test runs a real uvicorn process with its access log on and asks for
URLs holding card numbers: the log file is then scanned for any 13-19 digit
Luhn-valid run.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import unicodedata
from pathlib import Path
from urllib.parse import quote, unquote

import httpx
import websockets.sync.client

from app.logs import REDACTED, CardMaskingFormatter, JsonFormatter, mask_card_numbers
from app.pledges.cardguard import luhn_runs
from tests.procs import ROOT, free_port, server_env

CARD = "4111 1111 1111 1111"  # a test Visa number: passes the Luhn check
WS_TOKEN = "wsTokenValue-0123456789"
# The card number in request lines, written the ways the guard reads it.
CARD_URLS = [
    f"/calls/{CARD.replace(' ', '')}",
    f"/pledges?note={CARD.replace(' ', '-')}",
    f"/healthz?card={CARD.replace(' ', '%20')}",
    f"/healthz?card={quote(CARD.replace(' ', '/'), safe='')}",
    f"/healthz?card={quote(''.join(chr(0x660 + int(d)) for d in CARD if d != ' '))}",
    f"/healthz?card={quote(chr(0x200B).join(CARD.replace(' ', '')))}",
    f"/healthz?a={quote(CARD.replace(' ', ' - '))}&b=2",
]
# Every decimal digit of any script, as ASCII (to look for the number in any script).
_ANY_DIGIT = {c: str(unicodedata.digit(chr(c))) for c in range(0x660, 0x66A)}


def test_card_numbers_are_masked_and_other_numbers_kept() -> None:
    assert mask_card_numbers(f"note: {CARD} thanks") == f"note: {REDACTED} thanks"
    assert mask_card_numbers("4111-1111-1111-1111") == REDACTED
    assert (
        mask_card_numbers("5500000000000004 and 4012888888881881") == f"{REDACTED} and {REDACTED}"
    )
    kept = "call 12345 from +33123456789 at 2026-11-23, ref PL-7KQ4-2M, 2914177763170669"
    assert mask_card_numbers(kept) == kept  # phone, dates, a non-Luhn run


def test_a_traceback_holding_a_card_number_is_masked() -> None:
    formatter = CardMaskingFormatter(JsonFormatter())
    try:
        raise ValueError(f"bad value {CARD.replace(' ', '')}")
    except ValueError:
        record = logging.LogRecord(
            "app.test", logging.ERROR, __file__, 1, "failed for %s", (CARD,), sys.exc_info()
        )
    line = formatter.format(record)
    entry = json.loads(line)
    assert entry["level"] == "ERROR" and entry["logger"] == "app.test"
    assert entry["message"] == f"failed for {REDACTED}"
    assert "ValueError: bad value" in entry["exception"]
    assert not list(luhn_runs(line))
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?\+00:00$", entry["at"])


def test_a_server_never_writes_a_card_number_to_its_log() -> None:
    port = free_port()
    database = Path(tempfile.mkdtemp(prefix="pledgeline-logs-")) / "logs.db"
    env = server_env(
        f"sqlite+aiosqlite:///{database}",
        "logs-secret",
        {"log_format": "json", "directory_url": ""},
    )
    subprocess.run(
        [sys.executable, "-m", "app.cli", "migrate"], cwd=ROOT, env=env, check=True,
        capture_output=True,
    )  # fmt: skip
    log_path = database.with_suffix(".log")
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--factory", "app.main:create_app",
             "--port", str(port)],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.2)
        for url in CARD_URLS:
            httpx.get(f"http://127.0.0.1:{port}{url}", timeout=5)
        # The screens' handshake carries a one-minute token: never to be logged.
        with (
            contextlib.suppress(Exception),
            websockets.sync.client.connect(
                f"ws://127.0.0.1:{port}/ws/agent?token={WS_TOKEN}&last_seq=3", open_timeout=5
            ),
        ):
            pass
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(15)
    text = log_path.read_text(errors="replace")
    access = [json.loads(line) for line in text.splitlines() if '"uvicorn.access"' in line]
    assert len(access) >= 1 + len(CARD_URLS), text  # the readiness probe and the requests
    assert sum(REDACTED in entry["message"] for entry in access) == len(CARD_URLS), text
    assert not list(luhn_runs(text)), "a card number reached the log"
    assert "4111" not in unquote(text).translate(_ANY_DIGIT), "a card number reached the log"
    assert WS_TOKEN not in text and "token=[removed]" in text, text
