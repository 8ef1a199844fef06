"""Asterisk's configuration as Pledgeline renders it (no Asterisk needed): the
seats' endpoints from the database, the templates' placeholders."""

from __future__ import annotations

import pytest

from app.telephony.asterisk import cli
from app.telephony.asterisk.config import (
    TEMPLATE_DIR,
    TEMPLATES,
    MissingValue,
    dial_string,
    endpoint_of,
    render,
)
from tests.conftest import Hotline, setup_campaign


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
