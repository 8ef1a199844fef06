"""Properties of the card guard (``app/cardguard.py``) and the log masking:

* every generated card number (Luhn-valid, 13-19 digits, any script, any
  separators, invisible characters anywhere, in text, with a security code) is
  refused in a body, and masked out of a log line;
* a number split across two adjacent fields is refused, naming both;
* ordinary values (phone numbers of every region in every format, postcodes,
  pledge references, dates, times, amounts, words) are never refused, alone, in
  a note, or side by side in the fields of a pledge form.

Bounded and derandomized: the same examples on every run.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings

from app.cardguard import find_card_data, luhn_runs, normalise
from app.logs import REDACTED, mask, mask_card_numbers
from tests.card_strategies import (
    card_in_text,
    ordinary_pledge,
    ordinary_text,
    ordinary_value,
    split_card,
    written_card,
)

PROPERTY = settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def digit_runs(text: str) -> str:
    """All the digits of ``text`` after normalisation, in order (for "is the number
    still there" checks: no separator or script can hide it)."""
    return "".join(c for c in normalise(text).text if c.isdigit())


@PROPERTY
@given(card_in_text())
def test_every_written_card_number_is_refused(case: tuple[str, str]) -> None:
    digits, text = case
    refused = find_card_data({"note": text})
    assert refused is not None, text
    assert (refused.status_code, refused.code, refused.field) == (422, "card_number", "note")
    assert digits not in refused.message and text not in refused.message


@PROPERTY
@given(card_in_text())
def test_every_written_card_number_is_masked_in_logs(case: tuple[str, str]) -> None:
    digits, text = case
    line = mask(f"INFO 2026-12-05 20:15:00,123 app.test: saving {text}")
    assert REDACTED in line
    assert digits not in digit_runs(line)
    assert list(luhn_runs(line)) == []


@PROPERTY
@given(written_card())
def test_percent_encoded_card_numbers_are_masked_in_request_lines(case: tuple[str, str]) -> None:
    digits, typed = case
    encoded = "".join(f"%{b:02X}" for b in typed.encode())
    line = mask(f'127.0.0.1:50312 - "GET /calls?note={encoded}&x=1 HTTP/1.1" 404')
    assert REDACTED in line
    assert digits not in digit_runs(line.replace("%", ""))


@PROPERTY
@given(split_card())
def test_a_number_split_across_two_fields_is_refused(case: tuple[str, str, str]) -> None:
    _, first, second = case
    refused = find_card_data({"first_name": first, "last_name": second, "city": "Paris"})
    assert refused is not None, (first, second)
    assert refused.code == "card_number"
    # Either part alone may already be one (a whole number in the first field).
    assert refused.field in ("first_name", "last_name", "first_name+last_name")


@PROPERTY
@given(ordinary_value())
def test_ordinary_values_are_never_refused(value: str) -> None:
    assert find_card_data({"note": value}) is None, value
    # The card masking leaves them (phone numbers are masked in logs too, by the
    # personal-data masking: tests/test_privacy_logs.py).
    assert mask_card_numbers(value) == value


@PROPERTY
@given(ordinary_text())
def test_ordinary_notes_are_never_refused(text: str) -> None:
    assert find_card_data({"note": text}) is None, text


@PROPERTY
@given(ordinary_pledge())
def test_ordinary_pledge_forms_are_never_refused(body: dict[str, Any]) -> None:
    assert find_card_data(body) is None, body


def test_known_writings() -> None:
    """The writings of the audit that found 161 of 345 variants getting through."""
    card = "4111111111111111"
    fours = "4111 1111 1111 1111"
    writings = [
        *(fours.replace(" ", sep) for sep in "/,_:-.;|"),
        fours.replace(" ", " - "),
        fours.replace(" ", " / "),
        "".join(chr(0x660 + int(d)) for d in card),  # Arabic-Indic
        "".join(chr(0x6F0 + int(d)) for d in card),  # Persian
        "".join(chr(0x966 + int(d)) for d in card),  # Devanagari
        "".join(chr(0xFF10 + int(d)) for d in card),  # full-width
        "".join(chr(0x1D7CE + int(d)) for d in card),  # mathematical bold
        *("\u200b\u200d\u00ad\u2060\ufeff"[i].join(card) for i in range(5)),
        "41 11 11 11 11 11 11 11",
        "4111 1111-1111 1111",
        "(4111) (1111) (1111) (1111)",
        "4111111111111111123",
        "Visa4111111111111111",
        "3782 822463 10005",
    ]
    for text in writings:
        assert find_card_data({"reason": text}) is not None, text
    assert find_card_data({"first_name": "4111 1111", "last_name": "1111 1111"}) is not None
    assert find_card_data({"address": "4111 1111 11", "city": "11 1111 1111"}) is not None


def test_what_a_refusal_names() -> None:
    body = {
        "name": "Spring",
        "time_slots": [{"name": "evening", "ends_at": "4111-1111-1111-1111"}],
        "skills": {"4111111111111111": 1},
    }
    refused = find_card_data(body)
    assert refused is not None and refused.field == "time_slots.0.ends_at"
    refused = find_card_data({"skills": {"4111111111111111": 1}})
    assert refused is not None and refused.field == "skills.<key>"
    refused = find_card_data({"max_length": 4111111111111111})  # a JSON number too
    assert refused is not None and refused.field == "max_length"
    source = "rules:\n  - name: a\n    note: ok\n  - name: b # 4111 1111 1111 1111\n"
    refused = find_card_data({"source": source})
    assert refused is not None and refused.field == "source" and "(line 4)" in refused.message


def test_identifiers_dates_and_phone_numbers_pass() -> None:
    for text in [
        "3f2a91370612345678abcdef4111111111111111deadbeef0123456789abcdef",  # a digest
        "550e8400-e29b-41d4-a716-446655440000",
        "evt-0438034002454ca39910161821721682",  # a UUID without dashes, one letter pair
        "CA3f2a91370612345678abcdef41111111",
        "2026-12-05 14:30:00.123456",
        "12/05/2026 75011",
        "+49 36767 37208045",
        "00 49 36767 37208045",
        "tel:+49-36767-37208045",
        "06 12 34 56 78, 06 98 76 54 32",
        "[75, 92, 93, 94, 95, 77, 78, 91]",
    ]:
        assert find_card_data({"note": text}) is None, text


def test_tokens_and_secrets_never_reach_a_log() -> None:
    line = mask('127.0.0.1:50312 - "WebSocket /ws/agent?token=eyJhbGci.OiJIUzI1&last_seq=4" 403')
    assert "eyJhbGci" not in line and "token=[removed]&last_seq=4" in line
    assert "s3cret" not in mask("Authorization: Bearer s3cret")
    assert "hunter2" not in mask('{"username": "a", "secret": "hunter2"}')
