"""Receipts by e-mail, through a real SMTP server (aiosmtpd) started by the test."""

from __future__ import annotations

import email
import socket
from collections.abc import Awaitable, Callable, Iterator
from email.message import EmailMessage
from email.policy import default
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from tests.conftest import Hotline
from tests.receipt_helpers import paid_pledge, pdf_text, receipts_campaign


class Inbox:
    """An aiosmtpd handler keeping every message it is given."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], EmailMessage]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=default)
        assert isinstance(message, EmailMessage)
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), message))
        return "250 Message accepted"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def smtp() -> Iterator[tuple[Controller, Inbox]]:
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=_free_port())
    controller.start()
    try:
        yield controller, inbox
    finally:
        if controller._thread is not None:  # stopped by the test already otherwise
            controller.stop()


def _attachment(message: EmailMessage) -> tuple[str, bytes]:
    parts = list(message.iter_attachments())
    assert len(parts) == 1
    body = parts[0].get_content()
    assert isinstance(body, bytes)
    return str(parts[0].get_filename()), body


async def test_receipts_are_emailed_and_a_resend_is_a_duplicata(
    hotline_factory: Callable[..., Awaitable[Hotline]], smtp: tuple[Controller, Inbox]
) -> None:
    controller, inbox = smtp
    hotline = await hotline_factory(
        smtp_host="127.0.0.1", smtp_port=controller.port, receipts_mail_from="recus@amis.example"
    )
    setup = await receipts_campaign(hotline)
    campaign_id, organiser = setup["campaign_id"], setup["organiser"]
    await paid_pledge(hotline, campaign_id, organiser, email="chloe@example.org")
    await paid_pledge(
        hotline, campaign_id, organiser, email="", phone="0612345678", first_name="Sans-Adresse"
    )

    r = await hotline.http.post(
        "/receipts/issue", json={"campaign_id": campaign_id, "send": True}, headers=organiser
    )
    assert r.status_code == 200, r.text
    summary = r.json()
    assert (summary["issued"], summary["sent"], summary["without_email"]) == (2, 1, 1)
    number = summary["numbers"][0]
    assert len(inbox.messages) == 1
    sender, recipients, message = inbox.messages[0]
    assert sender == "recus@amis.example" and recipients == ["chloe@example.org"]
    assert message["Subject"] == f"Votre reçu fiscal n° {number}"
    name, pdf = _attachment(message)
    assert name == f"recu-fiscal-{number}.pdf"
    text = pdf_text(pdf)
    assert f"Numéro d'ordre du reçu : {number}" in text and "DUPLICATA" not in text
    assert "Prénoms : Chloé" in text

    listed = (
        await hotline.http.get(f"/receipts?campaign_id={campaign_id}", headers=organiser)
    ).json()
    sent = next(x for x in listed if x["number"] == number)
    assert sent["sent_to"] == "chloe@example.org" and sent["copies"] == 1
    # A batch again sends nothing twice (the receipt without an address waits for a download).
    r = await hotline.http.post(
        "/receipts/issue", json={"campaign_id": campaign_id, "send": True}, headers=organiser
    )
    assert (r.json()["issued"], r.json()["sent"], r.json()["without_email"]) == (0, 0, 1)
    assert len(inbox.messages) == 1

    # Sent again (to the accountant this time): the same number, marked duplicata.
    r = await hotline.http.post(
        f"/receipts/{sent['id']}/send", json={"to": "compta@example.org"}, headers=organiser
    )
    assert r.status_code == 200, r.text
    assert r.json()["sent_to"] == "compta@example.org" and r.json()["copies"] == 2
    _, recipients, message = inbox.messages[1]
    assert recipients == ["compta@example.org"]
    assert message["Subject"] == f"Votre reçu fiscal n° {number} (duplicata)"
    text = pdf_text(_attachment(message)[1])
    assert "DUPLICATA" in text and f"Numéro d'ordre du reçu : {number}" in text

    # The server goes away: a 502, and the copy that did not leave is not counted.
    controller.stop()
    r = await hotline.http.post(f"/receipts/{sent['id']}/send", json={}, headers=organiser)
    assert r.status_code == 502 and r.json()["code"] == "smtp_failed", r.text
    copies = await hotline.sql("SELECT copies FROM receipts WHERE id = :id", id=sent["id"])
    assert copies == [(2,)]


async def test_without_an_smtp_server_receipts_are_downloaded(hotline: Hotline) -> None:
    setup = await receipts_campaign(hotline)
    campaign_id, organiser = setup["campaign_id"], setup["organiser"]
    await paid_pledge(hotline, campaign_id, organiser)
    await hotline.http.post("/receipts/issue", json={"campaign_id": campaign_id}, headers=organiser)
    listed = (
        await hotline.http.get(f"/receipts?campaign_id={campaign_id}", headers=organiser)
    ).json()
    r = await hotline.http.post(f"/receipts/{listed[0]['id']}/send", json={}, headers=organiser)
    assert r.status_code == 409 and r.json()["code"] == "smtp_not_configured"
    # A batch that would e-mail is refused before it issues anything.
    await paid_pledge(hotline, campaign_id, organiser, first_name="Jean")
    r = await hotline.http.post(
        "/receipts/issue", json={"campaign_id": campaign_id, "send": True}, headers=organiser
    )
    assert r.status_code == 409 and r.json()["code"] == "smtp_not_configured"
    assert await hotline.sql("SELECT count(*) FROM receipts") == [(1,)]
    r = await hotline.http.get(f"/receipts/{listed[0]['id']}/pdf", headers=organiser)
    assert r.status_code == 200 and "DUPLICATA" not in pdf_text(r.content)
