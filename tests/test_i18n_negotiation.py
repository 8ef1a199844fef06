"""Which language a reply is in (app/i18n/negotiation.py)."""

from __future__ import annotations

import pytest

from app.i18n.negotiation import negotiate, parse_accept_language, supported


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, []),
        ("", []),
        ("en", ["en"]),
        ("en-GB,en;q=0.9", ["en"]),
        ("de-DE,de;q=0.9,en;q=0.8,fr;q=0.7", ["en", "fr"]),
        ("fr;q=0.5, en;q=0.9", ["en", "fr"]),
        ("en;q=0, fr", ["fr"]),  # q=0: not acceptable
        ("fr-CA;q=0.8, en-US;q=0.8", ["fr", "en"]),  # a tie keeps the header's order
        ("*", []),
        ("en;q=abc, fr;q=0.1", ["fr"]),
    ],
)
def test_accept_language_by_quality(header: str | None, expected: list[str]) -> None:
    assert parse_accept_language(header) == expected


def test_user_setting_beats_accept_language_beats_campaign_beats_french() -> None:
    assert negotiate("en", "fr", "fr") == "en"
    assert negotiate("fr", "en", "en") == "fr"
    assert negotiate(None, "en-GB", "fr") == "en"
    assert negotiate(None, "de", "en") == "en"  # nothing the app has: the campaign's
    assert negotiate(None, None, "en") == "en"
    assert negotiate(None, None, None) == "fr"
    assert negotiate("de", "es", "it") == "fr"


def test_supported_tags() -> None:
    assert supported("fr_FR") == "fr"
    assert supported("EN-us") == "en"
    assert supported("de") is None
    assert supported(None) is None
