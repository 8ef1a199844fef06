"""Caller numbers to E.164 (``app.phone_numbers.normalise``): French forms first."""

from __future__ import annotations

import pytest

from app.phone_numbers import CallerNumber, normalise

PARIS = "+33123456789"


@pytest.mark.parametrize(
    "raw",
    [
        "01 23 45 67 89",
        "0123456789",
        "01.23.45.67.89",
        "01-23-45-67-89",
        "+33 1 23 45 67 89",
        "+33123456789",
        "+33 (0)1 23 45 67 89",
        "0033123456789",
        "0033 1 23 45 67 89",
        "00 33 1 23 45 67 89",
        "  01 23 45 67 89  ",
        "tel:+33123456789",
    ],
)
def test_french_forms_of_one_number(raw: str) -> None:
    assert normalise(raw, "FR") == CallerNumber(PARIS, None)


@pytest.mark.parametrize(
    ("raw", "e164"),
    [
        ("06 12 34 56 78", "+33612345678"),
        ("07 81 23 45 67", "+33781234567"),
        ("09 12 34 56 78", "+33912345678"),
        ("0800 123 456", "+33800123456"),
    ],
)
def test_mobiles_voip_and_freephone(raw: str, e164: str) -> None:
    assert normalise(raw, "FR") == CallerNumber(e164, None)


def test_foreign_numbers_keep_their_country() -> None:
    assert normalise("+44 20 7946 0018", "FR") == CallerNumber("+442079460018", None)
    assert normalise("0044 20 7946 0018", "FR") == CallerNumber("+442079460018", None)
    # The campaign's region decides how a national number is read.
    assert normalise("020 7946 0018", "GB") == CallerNumber("+442079460018", None)
    assert normalise("+262 262 12 34 56", "FR") == CallerNumber("+262262123456", None)


@pytest.mark.parametrize(
    "raw",
    [None, "", "   ", "anonymous", "Anonymous", "withheld", "WITHHELD", "private", "restricted",
     "unknown", "unavailable", " anonymous "],
)  # fmt: skip
def test_withheld(raw: str | None) -> None:
    assert normalise(raw, "FR") == CallerNumber(None, "withheld")


@pytest.mark.parametrize(
    "raw",
    ["12345", "abc", "+33 1 23", "01 23 45 67 8", "+33123456789999", "01 23 45 67 89 00",
     "+999 123456"],
)  # fmt: skip
def test_invalid(raw: str) -> None:
    assert normalise(raw, "FR") == CallerNumber(None, "invalid")


def test_a_number_valid_elsewhere_is_invalid_in_the_wrong_region() -> None:
    # A Belgian-format mobile read as French does not exist.
    assert normalise("0623456789", "BE") == CallerNumber(None, "invalid")


@pytest.mark.parametrize(
    ("raw", "e164"),
    [
        ("0262 21 34 56", "+262262213456"),  # Réunion, fixed
        ("0692 12 34 56", "+262692123456"),  # Réunion, mobile
        ("0590 12 34 56", "+590590123456"),  # Guadeloupe
        ("0696 12 34 56", "+596696123456"),  # Martinique, mobile
        ("0594 12 34 56", "+594594123456"),  # French Guiana
    ],
)
def test_overseas_france_in_national_form(raw: str, e164: str) -> None:
    # Dialled with the same leading 0 as metropolitan numbers, valid in their own region.
    assert normalise(raw, "FR") == CallerNumber(e164, None)
