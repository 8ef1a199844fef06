"""HMAC-SHA256 signatures shared with the telephony platform."""

from __future__ import annotations

import hashlib
import hmac

HEADER = "X-Pledgeline-Signature"


def sign(secret: str, payload: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), payload, hashlib.sha256).hexdigest()


def verify(secret: str, payload: bytes, signature: str | None) -> bool:
    if not signature:
        return False
    try:
        given = signature.strip().encode("ascii")
    except UnicodeEncodeError:  # compare_digest refuses non-ASCII str; never a match
        return False
    return hmac.compare_digest(sign(secret, payload).encode(), given)
