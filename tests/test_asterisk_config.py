"""Asterisk's configuration as Pledgeline renders it (no Asterisk needed): the
seats' endpoints from the database, the templates' placeholders."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from app.telephony.asterisk import cli
from app.telephony.asterisk.config import (
    TEMPLATE_DIR,
    TEMPLATES,
    MissingValue,
    dial_string,
    endpoint_of,
    render,
    trunk_dial_string,
)
from tests.conftest import Hotline, setup_campaign

ROOT = Path(__file__).resolve().parent.parent


async def test_the_seats_become_registering_endpoints_with_stable_passwords(
    hotline: Hotline,
) -> None:
    ids = await setup_campaign(hotline, agents=0)
    for name, address in (("Desk 7", "PJSIP/desk-07"), ("Bare", "desk-08"), ("SIP", "sip:x@y")):
        r = await hotline.http.post(
            "/seats", json={"campaign_id": ids["campaign_id"], "name": name, "address": address}
        )
        assert r.status_code == 201, r.text
    text = await cli.seats_file(hotline.settings, ids["campaign_id"])
    assert "[desk-07](pledgeline-seat)" in text
    assert "[desk-08](pledgeline-seat)" in text
    assert "sip:x@y" not in text  # not a PJSIP endpoint: left to the operator
    password = cli.seat_password(hotline.settings.secret_key, "desk-07")
    assert f"password = {password}" in text
    # The same passwords the second time: the phones keep working.
    assert await cli.seats_file(hotline.settings, ids["campaign_id"]) == text


def test_every_placeholder_of_the_templates_is_filled_or_refused() -> None:
    with pytest.raises(MissingValue):
        render("bind = {{ sip_bind }}", {})
    assert render("exten => ${EXTEN} {{ a }}", {"a": 1}) == "exten => ${EXTEN} 1"
    for name in TEMPLATES:
        assert (TEMPLATE_DIR / name).is_file(), name


def test_seat_addresses_and_what_asterisk_dials() -> None:
    assert endpoint_of("PJSIP/desk-1") == "desk-1"
    assert endpoint_of("desk-1") == "desk-1"
    assert endpoint_of("SIP/desk-1") is None
    assert endpoint_of("sip:desk@host") is None
    assert dial_string("desk-1") == "PJSIP/desk-1"
    assert dial_string("PJSIP/desk-1") == "PJSIP/desk-1"
    assert dial_string("agent:12") == "PJSIP/agent-12"
    # A callback's number goes out through the operator's trunk; nothing else does.
    assert trunk_dial_string("+33612345678", "trunk") == "PJSIP/+33612345678@trunk"
    for number in ("", "+", "0612;x", "06 12", "6@evil", "PJSIP/desk-1"):
        with pytest.raises(ValueError):
            trunk_dial_string(number, "trunk")


def _run(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, env=env, capture_output=True, text=True, check=False)


async def test_asterisk_config_renders_a_folder_asterisk_runs_from(
    hotline: Hotline, tmp_path: Path
) -> None:
    """``pledgeline asterisk-config``, as a process: every template rendered with the
    settings' ARI user, the seats' phones, the demo caller's phone; the command to
    start Asterisk said."""
    ids = await setup_campaign(hotline, agents=0)
    r = await hotline.http.post(
        "/seats", json={"campaign_id": ids["campaign_id"], "name": "D", "address": "PJSIP/desk-3"}
    )
    assert r.status_code == 201, r.text
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLEDGELINE_")}
    env.update(
        PYTHONPATH=str(ROOT),
        PLEDGELINE_DATABASE_URL=hotline.settings.database_url,
        PLEDGELINE_SECRET_KEY=hotline.settings.secret_key,
        PLEDGELINE_ASTERISK_ARI_PASSWORD="ari-Pw7kLm2xQ9",
        PLEDGELINE_LANG="en",
    )
    out = tmp_path / "asterisk"
    pledgeline = "import sys; from app.cli import main; sys.exit(main())"
    command = [sys.executable, "-c", pledgeline, "asterisk-config", "--out", str(out)]
    done = await asyncio.to_thread(_run, [*command, "--http-port", "18123", "--demo-caller"], env)
    assert done.returncode == 0, done.stderr
    etc = out / "etc"
    assert {p.name for p in etc.iterdir()} == {*TEMPLATES, "pjsip_seats.conf", "pjsip_demo.conf"}
    assert "bindport = 18123" in (etc / "http.conf").read_text()
    assert "password = ari-Pw7kLm2xQ9" in (etc / "ari.conf").read_text()
    assert "[desk-3](pledgeline-seat)" in (etc / "pjsip_seats.conf").read_text()
    demo = (etc / "pjsip_demo.conf").read_text()
    password = cli.seat_password(hotline.settings.secret_key, "demo-caller")
    assert "context = pledgeline-inbound" in demo and f"password = {password}" in demo
    assert f"-C {etc / 'asterisk.conf'}" in done.stdout
    assert "{{" not in "".join(p.read_text() for p in etc.iterdir())

    # Without ARI's password: refused, said why.
    del env["PLEDGELINE_ASTERISK_ARI_PASSWORD"]
    refused = await asyncio.to_thread(_run, command, env)
    assert refused.returncode == 2
    assert "PLEDGELINE_ASTERISK_ARI_PASSWORD" in refused.stderr
