"""Shared set-up for the receipt tests: an organisation, paid pledges, PDFs read back."""

from __future__ import annotations

import io
import re
import uuid
from typing import Any

from pypdf import PdfReader

from app.auth.service import Role
from tests.conftest import Hotline, setup_campaign
from tests.pledge_helpers import user_headers

ORGANISATION = {
    "name": "Les Amis du Téléthon de Lyon",
    "address": "3 place Bellecour",
    "postcode": "69002",
    "city": "Lyon",
    "purpose": "Soutien à la recherche sur les maladies rares et aide aux familles",
    "siren": "123 456 789",
    "rna": "W691234567",
    "legal_status": "Association reconnue d'utilité publique",
    "tax_articles": ["200", "238 bis"],
    "signatory_name": "Hélène Martin",
    "signatory_title": "Trésorière",
    "signature_place": "Lyon",
}


async def receipts_campaign(hotline: Hotline, **organisation: Any) -> dict[str, Any]:
    """A campaign whose receipts the organisation above issues, and an organiser's headers."""
    # A dialled number of its own: a test may make several campaigns.
    number = f"+3380{uuid.uuid4().int % 10**7:07d}"
    setup = await setup_campaign(hotline, agents=0, campaign={"dialled_numbers": [number]})
    organiser = await user_headers(hotline, Role.ORGANISER)
    r = await hotline.http.post(
        "/receipts/organisations",
        json={**ORGANISATION, "name": f"{ORGANISATION['name']} {uuid.uuid4().hex[:4]}"}
        | organisation,
        headers=organiser,
    )
    assert r.status_code == 201, r.text
    org = r.json()
    r = await hotline.http.put(
        f"/receipts/campaigns/{setup['campaign_id']}",
        json={"organisation_id": org["id"]},
        headers=organiser,
    )
    assert r.status_code == 200, r.text
    return {**setup, "organisation": org, "organiser": organiser}


async def paid_pledge(
    hotline: Hotline,
    campaign_id: int,
    organiser: dict[str, str],
    *,
    paid_minor: int | None = None,
    received_at: str | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """A pledge saved by the admin and paid (in full unless ``paid_minor``) by the organiser."""
    body = {
        "campaign_id": campaign_id,
        "first_name": "Chloé",
        "last_name": "Lefèvre",
        "address": "12 rue de l'Église",
        "postcode": "69003",
        "city": "Lyon",
        "email": "chloe@example.org",
        "amount_minor": 5000,
        "consent_tax_receipt": True,
        **fields,
    }
    r = await hotline.http.post(
        "/pledges", json=body, headers={"Idempotency-Key": str(uuid.uuid4())}
    )
    assert r.status_code == 201, r.text
    pledge: dict[str, Any] = r.json()
    amount = pledge["amount_minor"] if paid_minor is None else paid_minor
    if amount:
        payment: dict[str, Any] = {"amount_minor": amount}
        if received_at is not None:
            payment["received_at"] = received_at
        r = await hotline.http.post(
            f"/pledges/{pledge['reference']}/payments", json=payment, headers=organiser
        )
        assert r.status_code == 200, r.text
        pledge = r.json()
    return pledge


def pdf_text(body: bytes) -> str:
    """The PDF's text, one space between words (line breaks as spaces)."""
    reader = PdfReader(io.BytesIO(body))
    text = " ".join(page.extract_text() for page in reader.pages)
    return re.sub(r"\s+", " ", text)
