"""Shared set-up for the reconciliation tests: pledges, sources and export files."""

from __future__ import annotations

import uuid
from typing import Any

from tests.conftest import Hotline, setup_campaign

# A French bank's export: account lines before the header, ';', decimal comma, cp1252.
BANK_SOURCE = {
    "kind": "bank",
    "delimiter": ";",
    "decimal_separator": ",",
    "encoding": "cp1252",
    "date_format": "%d/%m/%Y",
    "currency": "EUR",
    "columns": {
        "date": "Date opération",
        "credit": "Crédit",
        "reference": "Libellé",
        "payer": "Émetteur",
    },
}
# A payment provider's export: UTF-8 (with a BOM from Excel), ',', ISO times, ids.
PROVIDER_SOURCE = {
    "kind": "provider",
    "delimiter": ",",
    "decimal_separator": ".",
    "encoding": "utf-8",
    "date_format": "iso",
    "currency": "EUR",
    "columns": {
        "date": "Created (UTC)",
        "amount": "Amount",
        "reference": "Description",
        "payer": "Customer Name",
        "transaction_id": "id",
    },
}


def bank_file(rows: list[tuple[str, str, str, str]]) -> bytes:
    """(date, credit, label, payer) rows as the bank writes them (cp1252, CRLF)."""
    lines = [
        "Compte courant n° 00012345678;;;;",
        "Solde au 05/12/2026;12 345,67 €;;;",
        ";;;;",
        "Date opération;Débit;Crédit;Libellé;Émetteur",
    ]
    for date, credit, label, payer in rows:
        lines.append(f"{date};;{credit};{label};{payer}")
    return ("\r\n".join(lines) + "\r\n").encode("cp1252")


def provider_file(rows: list[tuple[str, str, str, str, str]]) -> bytes:
    """(id, created, amount, description, customer) rows, UTF-8 with a BOM."""
    lines = ["id,Created (UTC),Amount,Currency,Description,Customer Name"]
    for txn, created, amount, description, customer in rows:
        lines.append(f'{txn},{created},{amount},eur,"{description}","{customer}"')
    return b"\xef\xbb\xbf" + ("\n".join(lines) + "\n").encode()


async def campaign(hotline: Hotline) -> int:
    setup = await setup_campaign(hotline, agents=0)
    campaign_id: int = setup["campaign_id"]
    return campaign_id


async def pledge(hotline: Hotline, campaign_id: int, **fields: Any) -> dict[str, Any]:
    body = {
        "campaign_id": campaign_id,
        "first_name": "Marie",
        "last_name": "Curie",
        "email": "donor@example.org",
        "amount_minor": 2500,
        **fields,
    }
    r = await hotline.http.post(
        "/pledges", json=body, headers={"Idempotency-Key": uuid.uuid4().hex}
    )
    assert r.status_code == 201, r.text
    result: dict[str, Any] = r.json()
    return result


async def save_source(hotline: Hotline, name: str, body: dict[str, Any]) -> dict[str, Any]:
    r = await hotline.http.put(f"/payments/sources/{name}", json=body)
    assert r.status_code == 200, r.text
    result: dict[str, Any] = r.json()
    return result


async def upload(
    hotline: Hotline,
    source: str,
    campaign_id: int,
    data: bytes,
    *,
    filename: str = "export.csv",
    headers: dict[str, str] | None = None,
) -> Any:
    return await hotline.http.post(
        "/payments/imports",
        params={"source": source, "campaign_id": campaign_id, "filename": filename},
        content=data,
        headers={"Content-Type": "text/csv", **(headers or {})},
    )


async def get_pledge(hotline: Hotline, reference: str) -> dict[str, Any]:
    r = await hotline.http.get(f"/pledges/{reference}")
    assert r.status_code == 200, r.text
    result: dict[str, Any] = r.json()
    return result


async def lines(hotline: Hotline, campaign_id: int, view: str) -> list[dict[str, Any]]:
    r = await hotline.http.get("/payments/lines", params={"campaign_id": campaign_id, "view": view})
    assert r.status_code == 200, r.text
    result: list[dict[str, Any]] = r.json()
    return result


async def counts(hotline: Hotline) -> tuple[int, int, int]:
    """(payments, imported lines, imports) in the database."""
    payments = (await hotline.sql("SELECT count(*) FROM pledge_payments"))[0][0]
    imported = (await hotline.sql("SELECT count(*) FROM payment_lines"))[0][0]
    batches = (await hotline.sql("SELECT count(*) FROM payment_imports"))[0][0]
    return int(payments), int(imported), int(batches)
