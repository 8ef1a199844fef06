"""HMAC-SHA256 signatures of webhook bodies, shared by every signed exchange.

The telephony platform signs its events and the command feed, we sign the commands
we push to it, the payment provider signs its notifications: the same scheme
(``sha256=`` and the hex digest of the raw bytes, in :data:`HEADER`), each with its
own secret. Nothing here knows who signs what.
"""

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
