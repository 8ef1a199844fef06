"""HMAC-SHA256 signatures of webhook messages, timestamped, shared by every signed exchange.

The telephony platform signs its events and its polls of the command feed, we sign
the commands we push to it, the payment provider signs its notifications: the same
scheme, each with its own secret. Nothing here knows who signs what.

A message carries two headers: :data:`TIMESTAMP_HEADER`, the signing time in whole
UNIX seconds, and :data:`HEADER`, ``sha256=`` and the hex HMAC of
``<timestamp>.<payload>``. The timestamp is inside the signed bytes, so it cannot be
changed without the secret; a receiver refuses one further than the window from its
own clock, so a captured request cannot be replayed later (as Stripe and Slack do).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping

from app.errors import Unauthorized

HEADER = "X-Pledgeline-Signature"
TIMESTAMP_HEADER = "X-Pledgeline-Timestamp"
# How far a signing time may be from the receiver's clock, either way. Five minutes,
# as Stripe and Slack: room for clock skew and retries, too short to keep a capture.
WINDOW_SECONDS = 300
# Twelve digits reach the year 33658: longer is garbled, not a time.
_MAX_TIMESTAMP_DIGITS = 12


def sign(secret: str, timestamp: int, payload: bytes) -> str:
    """The :data:`HEADER` value for ``payload`` signed at ``timestamp``."""
    signed = str(timestamp).encode() + b"." + payload
    return "sha256=" + hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def signed_headers(secret: str, payload: bytes, now: float | None = None) -> dict[str, str]:
    """The headers that sign ``payload`` at ``now`` (default: the current time).

    Every sender (the app, the benchmarks, the tests) signs through this, so there is
    one way to do it; ``now`` lets a test sign as of another time.
    """
    timestamp = int(time.time() if now is None else now)
    return {TIMESTAMP_HEADER: str(timestamp), HEADER: sign(secret, timestamp, payload)}


def _timestamp(value: str | None) -> int:
    text = (value or "").strip()
    if not (text.isascii() and text.isdigit() and len(text) <= _MAX_TIMESTAMP_DIGITS):
        raise Unauthorized(
            "{header} must be the signing time in whole UNIX seconds",
            field=TIMESTAMP_HEADER,
            code="bad_timestamp",
            header=TIMESTAMP_HEADER,
        )
    return int(text)


def _signature_matches(expected: str, given: str) -> bool:
    try:
        given_bytes = given.strip().encode("ascii")
    except UnicodeEncodeError:  # compare_digest refuses non-ASCII str; never a match
        return False
    return hmac.compare_digest(expected.encode(), given_bytes)


def verify(
    secret: str,
    payload: bytes,
    headers: Mapping[str, str],
    *,
    window_seconds: int = WINDOW_SECONDS,
    now: float | None = None,
) -> None:
    """Accept ``payload`` with these request headers, or raise 401 :class:`Unauthorized`.

    ``bad_signature``: the signature is missing or wrong (a timestamp changed after
    signing lands here). ``bad_timestamp``: a signature but no timestamp, or not whole
    seconds. ``stale_signature``: rightly signed, but further than ``window_seconds``
    from now: a replay, or a clock that is off. The signature is checked before the
    window, so ``stale_signature`` is only ever said of a genuine message.
    """
    given = headers.get(HEADER)
    if not given:
        raise Unauthorized("missing signature", field=HEADER, code="bad_signature")
    timestamp = _timestamp(headers.get(TIMESTAMP_HEADER))
    if not _signature_matches(sign(secret, timestamp, payload), given):
        raise Unauthorized("wrong signature", field=HEADER, code="bad_signature")
    skew = (time.time() if now is None else now) - timestamp
    if abs(skew) > window_seconds:
        when = f"{int(skew)} s ago" if skew > 0 else f"{int(-skew)} s ahead of our clock"
        raise Unauthorized(
            "signed {when}; a signature is good for {window_seconds} s either way "
            "(a replayed request, or a clock that is off)",
            field=TIMESTAMP_HEADER,
            code="stale_signature",
            when=when,
            window_seconds=window_seconds,
        )
