"""Log lines: JSON when asked, and never a card number, whatever reaches a log.

The last test runs a real uvicorn process with its access log on and asks for
URLs holding card numbers: the log file is then scanned for any 13-19 digit
Luhn-valid run.
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from app.logs import REDACTED, CardMaskingFormatter, JsonFormatter, mask_card_numbers
from app.pledges.cardguard import luhn_runs
from tests.procs import ROOT, free_port, server_env

CARD = "4111 1111 1111 1111"  # a test Visa number: passes the Luhn check


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
        for url in (
            f"/calls/{CARD.replace(' ', '')}",
            f"/pledges?note={CARD.replace(' ', '-')}",
            f"/healthz?card={CARD.replace(' ', '%20')}",
        ):
            httpx.get(f"http://127.0.0.1:{port}{url}", timeout=5)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(15)
    text = log_path.read_text(errors="replace")
    access = [json.loads(line) for line in text.splitlines() if '"uvicorn.access"' in line]
    assert len(access) >= 4, text  # the readiness probe and the three requests, as JSON
    assert sum(REDACTED in entry["message"] for entry in access) == 3, text
    decoded = text.replace("%20", " ")
    assert not list(luhn_runs(decoded)), "a card number reached the log"
