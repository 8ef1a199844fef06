"""The signing scheme itself, at its edges: the exact bytes signed and the window.

The clock is passed in (``now``), so the boundaries are exact and nothing waits. The
endpoints that use it are tested over HTTP in tests/test_telephony_webhook.py and
tests/test_pledges.py.
"""

from __future__ import annotations

import hashlib
import hmac

import pytest

from app import signing
from app.errors import Unauthorized

SECRET = "a-shared-secret"
PAYLOAD = b'{"type":"call.hangup","event_id":"e-1","call_id":"c-1"}'
SIGNED_AT = 1_765_000_000


def _refusal(headers: dict[str, str], now: float) -> tuple[str, str | None]:
    with pytest.raises(Unauthorized) as caught:
        signing.verify(SECRET, PAYLOAD, headers, now=now)
    return caught.value.code, caught.value.field


def test_the_signed_string_is_the_timestamp_a_dot_and_the_payload() -> None:
    """What docs/telephony.md tells a platform to compute, computed independently."""
    headers = signing.signed_headers(SECRET, PAYLOAD, now=SIGNED_AT + 0.9)
    expected = hmac.new(
        SECRET.encode(), f"{SIGNED_AT}.".encode() + PAYLOAD, hashlib.sha256
    ).hexdigest()
    assert headers == {
        signing.TIMESTAMP_HEADER: str(SIGNED_AT),
        signing.HEADER: f"sha256={expected}",
    }


@pytest.mark.parametrize("offset", [0, 300, -300, 299.9])
def test_inside_the_window_either_way_is_accepted(offset: float) -> None:
    headers = signing.signed_headers(SECRET, PAYLOAD, now=SIGNED_AT)
    signing.verify(SECRET, PAYLOAD, headers, now=SIGNED_AT + offset)


@pytest.mark.parametrize("offset", [300.5, 301, -301, 86_400])
def test_beyond_the_window_either_way_is_stale(offset: float) -> None:
    headers = signing.signed_headers(SECRET, PAYLOAD, now=SIGNED_AT)
    code, field = _refusal(headers, now=SIGNED_AT + offset)
    assert (code, field) == ("stale_signature", signing.TIMESTAMP_HEADER)


def test_the_window_can_be_narrowed() -> None:
    headers = signing.signed_headers(SECRET, PAYLOAD, now=SIGNED_AT)
    signing.verify(SECRET, PAYLOAD, headers, now=SIGNED_AT + 30, window_seconds=30)
    with pytest.raises(Unauthorized) as caught:
        signing.verify(SECRET, PAYLOAD, headers, now=SIGNED_AT + 31, window_seconds=30)
    assert caught.value.code == "stale_signature"


def test_a_wrong_signature_is_said_so_before_the_window() -> None:
    """A stale forgery is a forgery: ``stale_signature`` only describes genuine ones."""
    headers = signing.signed_headers("another-secret", PAYLOAD, now=SIGNED_AT)
    code, field = _refusal(headers, now=SIGNED_AT + 3600)
    assert (code, field) == ("bad_signature", signing.HEADER)


def test_each_part_of_the_message_is_covered() -> None:
    headers = signing.signed_headers(SECRET, PAYLOAD, now=SIGNED_AT)
    moved = {**headers, signing.TIMESTAMP_HEADER: str(SIGNED_AT + 1)}
    assert _refusal(moved, now=SIGNED_AT) == ("bad_signature", signing.HEADER)
    with pytest.raises(Unauthorized) as caught:
        signing.verify(SECRET, PAYLOAD + b" ", headers, now=SIGNED_AT)
    assert caught.value.code == "bad_signature"
    # Spaces around header values are not part of the signature.
    padded = {k: f" {v} " for k, v in headers.items()}
    signing.verify(SECRET, PAYLOAD, padded, now=SIGNED_AT)
