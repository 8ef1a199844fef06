"""The card-number guard: the pure checks, then the real API with card data injected
in every field, followed by a scan of every table, the captured logs and the
exports for any Luhn-valid run of 13 to 19 digits. None may be found.

The scan has its own Luhn check and run finder (not the guard's), so a defect in
the guard's detection cannot hide itself.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import re
import unicodedata
from typing import Any

import openpyxl
import pytest
from sqlalchemy import Text, cast, select

from app import signing
from app.db import Base
from app.pledges.cardguard import check_fields, looks_like_card_data, luhn_valid
from app.pledges.schemas import TEXT_FIELDS
from tests.conftest import Hotline
from tests.pledge_helpers import key, pledge_body, pledge_setup

# Well-known test card numbers, typed the ways people type them.
CARDS = [
    "4111111111111111",
    "4111 1111 1111 1111",
    "5500-0000-0000-0004",
    "3782 822463 10005",
    "6011.1111.1111.1117",
    "4012888888881881",
    "4111 1111 1111 1111 123",  # with its security code
    "".join(chr(0xFF10 + int(d)) for d in "4111111111111111"),  # full-width digits
]
NOT_CARDS = [
    "06 12 34 56 78",
    "+33 6 12 34 56 78",
    "75011",
    "12 rue de la Paix",
    "2500",
    "4111 1111 1111 1112",  # Luhn-invalid
    "Called at 20:15 on 2026-11-23",
    "thank you card wanted",
    "0612345678 or 0698765432",
]


# --- the pure checks ---------------------------------------------------------------


def _luhn(digits: str) -> bool:
    """Independent Luhn check (the scan's own)."""
    checksum = 0
    for i, d in enumerate(int(c) for c in reversed(digits)):
        checksum += d if i % 2 == 0 else (d * 2 // 10 + d * 2 % 10)
    return checksum % 10 == 0


# Identifiers are random digits and letters, not typed text: a long all-digit
# stretch in one is chance (a SHA-256 digest in a DEBUG log once held a Luhn-valid
# 14-digit run). UUIDs, and hexadecimal tokens of 16+ characters whose letters and
# digits alternate (two stretches of each at least), are removed before scanning,
# as the guard does; a number typed next to a word ("Visa4111...") is still read.
_UUID = re.compile(r"(?<![0-9A-Za-z])[0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}")
_HEX_TOKEN = re.compile(r"(?<![0-9A-Za-z])[0-9a-fA-F]{16,}(?![0-9A-Za-z])")


def _identifier_removed(match: re.Match[str]) -> str:
    token = match.group()
    letters = len(re.findall(r"[a-fA-F]+", token))
    digits = len(re.findall(r"[0-9]+", token))
    return " " if letters >= 2 and digits >= 2 else token


_DECIMAL = re.compile(r"[0-9]+\.[0-9]+")


def card_runs(text_value: str) -> list[str]:
    """Luhn-valid runs of 13-19 digits (spaces, dashes, dots between): whole runs, and
    any stretch of consecutive digit groups within a longer run. Deterministic: the
    digits of identifiers (digests, UUIDs) are not read."""
    text_value = unicodedata.normalize("NFKC", text_value)  # full-width digits too
    text_value = _HEX_TOKEN.sub(_identifier_removed, _UUID.sub(" ", text_value))
    found = []
    for run in re.findall(r"[0-9](?:[ \t\-.]{0,2}[0-9])*", text_value):
        if _DECIMAL.fullmatch(run):
            # A decimal number (a queue position's epoch seconds such as
            # 1796565097.945511 in a driver's DEBUG log) is not a typed card: one
            # in ten such values passes Luhn, and the test would fail by chance.
            continue
        groups = re.findall(r"[0-9]+", run)
        for i in range(len(groups)):
            for j in range(i + 1, len(groups) + 1):
                digits = "".join(groups[i:j])
                if 13 <= len(digits) <= 19 and _luhn(digits):
                    found.append(digits)
    return found


def test_the_scan_reads_typed_cards_but_not_decimal_numbers() -> None:
    assert card_runs("card 4111 1111 1111 1111 ok") == ["4111111111111111"]
    assert card_runs("6011.1111.1111.1117") == ["6011111111111117"]
    # 1796565097.945511 passes Luhn as 16 digits; it is a float, not a card.
    assert _luhn("1796565097945511")
    assert card_runs("(1, 1796565097.945511, 2)") == []


def test_luhn_agrees_with_known_numbers() -> None:
    for number in ("4111111111111111", "5500000000000004", "378282246310005", "79927398713"):
        assert luhn_valid(number) and _luhn(number)
    for number in ("4111111111111112", "79927398710"):
        assert not luhn_valid(number) and not _luhn(number)


@pytest.mark.parametrize("value", CARDS)
def test_card_numbers_are_recognised(value: str) -> None:
    assert looks_like_card_data(value)
    assert looks_like_card_data(f"Donor said {value} please")


@pytest.mark.parametrize("value", NOT_CARDS)
def test_ordinary_values_pass(value: str) -> None:
    assert not looks_like_card_data(value)


@pytest.mark.parametrize(
    "value",
    [
        "CVV 123",
        "cvc: 4567",
        "carte bleue, cryptogramme 321",
        "Visa exp 12/28",
        "security code 999",
    ],
)
def test_security_codes_next_to_card_words_are_recognised(value: str) -> None:
    assert looks_like_card_data(value)


def test_refusal_names_the_field_never_the_value() -> None:
    with pytest.raises(Exception) as caught:
        check_fields({"city": "Paris", "note": "4111 1111 1111 1111"})
    error: Any = caught.value
    assert (error.status_code, error.code, error.field) == (422, "card_number", "note")
    assert "4111" not in error.message


# --- the API, then the scans -------------------------------------------------------


async def scan_database(hotline: Hotline) -> list[str]:
    """Card-like runs in any text or JSON column of any table."""
    # Hex digests are random digits and letters, not typed text: a long all-digit
    # stretch in one is chance (and they are never shown). Token hashes also.
    # Every column named for a digest (``*_sha256``, ``*_hash``) is one, and the
    # idempotency key is stored as its SHA-256 too.
    digests = {("idempotency_keys", "key")}
    hits: list[str] = []
    async with hotline.db.read() as session:
        for table in Base.metadata.sorted_tables:
            for column in table.columns:
                if (table.name, column.name) in digests or column.name.endswith(
                    ("sha256", "_hash")
                ):
                    continue
                try:
                    python_type = column.type.python_type
                except NotImplementedError:
                    python_type = None
                if python_type in (int, float, bool) or column.name.endswith("_at"):
                    continue
                rows = await session.execute(select(cast(column, Text)).where(column.is_not(None)))
                for (value,) in rows:
                    for run in card_runs(str(value)):
                        hits.append(f"{table.name}.{column.name}: {run}")
    return hits


async def test_card_data_in_any_field_is_refused_and_never_kept(
    hotline: Hotline, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    setup = await pledge_setup(hotline)
    headers = {**setup["agent_headers"]}
    fields = [*TEXT_FIELDS, "currency"]
    for field in fields:
        for card in (CARDS[1], CARDS[6]):
            r = await hotline.http.post(
                "/pledges",
                json=pledge_body(setup["call_id"], **{field: card}),
                headers={**headers, **key()},
            )
            assert r.status_code == 422, (field, r.text)
            body = r.json()
            assert (body["code"], body["field"]) == ("card_number", field), body
            assert not card_runs(r.text) and card not in r.text
    # A security code next to card wording, in the note.
    r = await hotline.http.post(
        "/pledges",
        json=pledge_body(setup["call_id"], note="her visa card, cvv 123"),
        headers={**headers, **key()},
    )
    assert (r.status_code, r.json()["field"]) == (422, "note")
    # The Idempotency-Key itself is only kept as a digest.
    r = await hotline.http.post(
        "/pledges",
        json=pledge_body(setup["call_id"]),
        headers={**headers, "Idempotency-Key": "4111-1111-1111-1111"},
    )
    assert r.status_code == 201, r.text
    ref = r.json()["reference"]
    # Corrections go through the same guard.
    for field in TEXT_FIELDS:
        r = await hotline.http.patch(f"/pledges/{ref}", json={field: CARDS[0]}, headers=headers)
        assert r.status_code == 422, (field, r.text)
        assert (r.json()["code"], r.json()["field"]) == ("card_number", field)
    # Fields the schema does not have (a card field) are refused by name.
    r = await hotline.http.post(
        "/pledges",
        json={**pledge_body(setup["call_id"]), "card_number": CARDS[0]},
        headers={**headers, **key()},
    )
    assert (r.status_code, r.json()["field"]) == (422, "card_number")
    assert CARDS[0] not in r.text

    assert await scan_database(hotline) == []
    assert [m for m in caplog.messages if card_runs(m)] == []
    assert card_runs(caplog.text) == []

    csv_export = await hotline.http.get(
        "/pledges/export.csv", params={"campaign_id": setup["campaign_id"]}
    )
    if csv_export.status_code != 404:  # the exports module is another helper's
        assert csv_export.status_code == 200, csv_export.text
        rows = list(csv.reader(io.StringIO(csv_export.text)))
        assert len(rows) >= 2
        assert [c for row in rows for c in row if card_runs(c)] == []
    xlsx_export = await hotline.http.get(
        "/pledges/export.xlsx", params={"campaign_id": setup["campaign_id"]}
    )
    if xlsx_export.status_code != 404:
        book = openpyxl.load_workbook(io.BytesIO(xlsx_export.content), read_only=True)
        cells = [
            str(c)
            for sheet in book.worksheets
            for row in sheet.iter_rows(values_only=True)
            for c in row
            if c is not None
        ]
        assert cells and [c for c in cells if card_runs(c)] == []


async def test_the_schema_has_no_card_fields(hotline: Hotline) -> None:
    words = re.compile(r"card|^pan$|cvv|cvc|expiry|expiration|security_code", re.IGNORECASE)
    # Named so, but no card data: how long a callback request lives (docs/surge.md); a
    # practice call's score, and how many times a card number was typed in it and
    # refused (a count: the number is never stored; docs/roster.md#practice-calls).
    not_cards = {
        "queues.callback_expiry_seconds",
        "practice_calls.scorecard",
        "practice_calls.card_attempts",
    }
    columns = [f"{t.name}.{c.name}" for t in Base.metadata.sorted_tables for c in t.columns]
    assert [c for c in columns if words.search(c.split(".")[1]) and c not in not_cards] == []
    spec = (await hotline.http.get("/openapi.json")).json()
    for name in ("PledgeIn", "PledgePatch", "PledgeOut"):
        props = spec["components"]["schemas"][name]["properties"]
        assert [p for p in props if words.search(p)] == [], name
    assert "card" not in str(spec["components"]["schemas"]["PledgeIn"]["properties"]["channel"])


async def test_payment_ids_that_look_like_cards_are_refused(hotline: Hotline) -> None:
    setup = await pledge_setup(hotline)
    r = await hotline.http.post(
        "/pledges", json=pledge_body(setup["call_id"]), headers={**setup["agent_headers"], **key()}
    )
    ref = r.json()["reference"]
    r = await hotline.http.post(
        f"/pledges/{ref}/payments",
        json={"amount_minor": 100, "provider_payment_id": "4111111111111111"},
    )
    assert (r.status_code, r.json()["code"], r.json()["field"]) == (
        422,
        "card_number",
        "provider_payment_id",
    )
    body = json.dumps(
        {
            "payment_id": "4111-1111-1111-1111",
            "reference": ref,
            "amount_minor": 100,
            "currency": "EUR",
        }
    ).encode()
    secret = hotline.settings.payment_webhook_secret
    r = await hotline.http.post(
        "/payments/webhook",
        content=body,
        headers={"Content-Type": "application/json", **signing.signed_headers(secret, body)},
    )
    assert (r.status_code, r.json()["field"]) == (422, "payment_id")
    assert "4111" not in r.text
    assert await scan_database(hotline) == []
    rows = await hotline.sql("SELECT count(*) FROM pledge_payments")
    assert rows[0][0] == 0
