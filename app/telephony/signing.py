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
    return hmac.compare_digest(sign(secret, payload), signature.strip())
