"""``pledgeline serve`` refuses the shipped secrets and short ones outside development."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from app.settings import MAKE_A_SECRET, SHIPPED_SECRETS, Settings, weak_secrets
from tests.procs import DEFAULT_SECRET as TELEPHONY_SECRET
from tests.procs import PAYMENT_WEBHOOK_SECRET, ROOT, SECRET_KEY, free_port

VARIABLES = {
    "telephony_secret": "PLEDGELINE_TELEPHONY_SECRET",
    "secret_key": "PLEDGELINE_SECRET_KEY",
    "payment_webhook_secret": "PLEDGELINE_PAYMENT_WEBHOOK_SECRET",
}
GOOD = {
    "telephony_secret": TELEPHONY_SECRET,
    "secret_key": SECRET_KEY,
    "payment_webhook_secret": PAYMENT_WEBHOOK_SECRET,
}


def test_the_shipped_defaults_are_each_named() -> None:
    weak = weak_secrets(Settings(_env_file=None))
    assert [w.variable for w in weak] == list(VARIABLES.values())
    assert all("shipped development default" in w.reason for w in weak)
    assert all(MAKE_A_SECRET in str(w) for w in weak)


@pytest.mark.parametrize("name", list(VARIABLES))
def test_a_secret_under_32_bytes_is_named(name: str) -> None:
    weak = weak_secrets(Settings(**{**GOOD, name: "x" * 31}))
    assert [(w.variable, w.reason) for w in weak] == [(VARIABLES[name], "is shorter than 32 bytes")]


def test_32_bytes_counted_in_utf8_are_enough() -> None:
    assert weak_secrets(Settings(**{**GOOD, "secret_key": "é" * 16})) == []
    assert weak_secrets(Settings(**GOOD)) == []


def test_development_allows_the_shipped_defaults() -> None:
    assert weak_secrets(Settings(env="development")) == []
    assert set(SHIPPED_SECRETS) == set(VARIABLES)


def _env(tmp_path: Path, **values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLEDGELINE_")}
    env["PLEDGELINE_DATABASE_URL"] = f"sqlite+aiosqlite:///{tmp_path / 'serve.db'}"
    env["PLEDGELINE_DIRECTORY_URL"] = ""
    env.update({f"PLEDGELINE_{k.upper()}": v for k, v in values.items()})
    return env


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_serve_refuses_to_start_with_the_shipped_secrets(tmp_path: Path) -> None:
    result = _cli("serve", "--port", str(free_port()), env=_env(tmp_path))
    assert result.returncode == 2, result.stdout + result.stderr
    for variable in VARIABLES.values():
        assert variable in result.stderr
    assert MAKE_A_SECRET in result.stderr
    assert "PLEDGELINE_ENV=development" in result.stderr


def test_serve_refuses_one_short_secret_and_names_only_it(tmp_path: Path) -> None:
    result = _cli(
        "serve", "--port", str(free_port()), env=_env(tmp_path, **{**GOOD, "secret_key": "short"})
    )
    assert result.returncode == 2
    assert "PLEDGELINE_SECRET_KEY is shorter than 32 bytes" in result.stderr
    assert "PLEDGELINE_TELEPHONY_SECRET" not in result.stderr


def test_serve_starts_with_real_secrets(tmp_path: Path) -> None:
    env = _env(tmp_path, **GOOD)
    assert _cli("migrate", env=env).returncode == 0
    port = free_port()
    log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, (tmp_path / "serve.log").read_text()
            time.sleep(0.1)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()
