"""Exactly-once answers for requests carrying an ``Idempotency-Key``.

A new pledge carries its key in its own row (``pledges.idem_scope``, ``idem_key``,
``idem_request``: scope, key digest, request hash; unique on scope and key), so
the pledge insert is the claim (``service.save_new``, ``ON CONFLICT DO NOTHING``)
and the first answer is rebuilt from the pledge and its ``created`` audit row
(``find_pledge``). Keys claimed before that (migration 0022) are rows of
``idempotency_keys`` with their stored answer (``find``). So:

* the same key with the same body gets the first answer back, with nothing done
  again;
* the same key with a different body is refused (409);
* concurrent requests with one key: on SQLite the single writer serialises them
  and the later ones find the row; on PostgreSQL the later ones wait on the
  unique index until the first commits, insert nothing, and then read the
  first answer. If the first request fails, nothing was committed, the key
  stays free and a retry does the work.

Only a digest of the key is stored (a key is free text, and free text never
reaches the database unchecked).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.acd.models import Campaign
from app.db import UnitOfWork, utcnow
from app.errors import Conflict, Invalid
from app.pledges.models import IdempotencyRecord, Pledge, PledgeAudit
from app.pledges.service import first_answer

HEADER = "Idempotency-Key"
_KEY = re.compile(r"^[\x21-\x7e]{8,200}$")
# The key as the OpenAPI document describes it (checked by ``key_digest``, after the
# caller's rights, so a volunteer with no right to save hears that first).
KEY_SCHEMA = {"pattern": _KEY.pattern, "minLength": 8, "maxLength": 200}


@dataclass(frozen=True)
class Stored:
    status_code: int
    body: dict[str, Any]


def key_digest(key: str) -> str:
    if not _KEY.match(key):
        raise Invalid("8 to 200 visible ASCII characters, such as a UUID", field=HEADER)
    return hashlib.sha256(key.encode()).hexdigest()


def request_hash(method: str, path: str, body: dict[str, Any]) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(f"{method} {path}\n{canonical}".encode()).hexdigest()


def _reused() -> Conflict:
    return Conflict(
        "this Idempotency-Key was used for a different request",
        field=HEADER,
        code="idempotency_key_reused",
    )


def _answer(record: IdempotencyRecord, digest: str) -> Stored:
    if record.request_hash != digest:
        raise _reused()
    return Stored(record.status_code, dict(record.response))


async def find_pledge(
    session: AsyncSession, scope: str, key_sha: str, digest: str
) -> Stored | None:
    """The first answer of the pledge saved with this key (or the legacy record's)."""
    pledge = await session.scalar(
        select(Pledge).where(Pledge.idem_scope == scope, Pledge.idem_key == key_sha)
    )
    if pledge is None:
        return await find(session, scope, key_sha, digest)
    if pledge.idem_request != digest:
        raise _reused()
    created = await session.scalar(
        select(PledgeAudit.after)
        .where(PledgeAudit.pledge_id == pledge.id, PledgeAudit.action == "created")
        .order_by(PledgeAudit.id)
        .limit(1)
    )
    campaign = await session.get(Campaign, pledge.campaign_id)
    assert campaign is not None
    return Stored(201, first_answer(pledge, dict(created or {}), campaign))


async def find(session: AsyncSession, scope: str, key_sha: str, digest: str) -> Stored | None:
    record = await session.scalar(
        select(IdempotencyRecord).where(
            IdempotencyRecord.scope == scope, IdempotencyRecord.key == key_sha
        )
    )
    return _answer(record, digest) if record is not None else None


async def claim(
    uow: UnitOfWork, scope: str, key_sha: str, digest: str
) -> IdempotencyRecord | Stored:
    """The stored answer of an earlier request, or a fresh claim to fill with ours.

    The claim is flushed at once so a concurrent request with the same key waits
    (PostgreSQL) or fails on the unique index before doing any work.
    """
    prior = await find(uow.session, scope, key_sha, digest)
    if prior is not None:
        return prior
    record = IdempotencyRecord(
        scope=scope,
        key=key_sha,
        request_hash=digest,
        status_code=0,
        response={},
        created_at=utcnow(),
    )
    uow.session.add(record)
    await uow.session.flush()
    return record


def complete(record: IdempotencyRecord, status_code: int, body: dict[str, Any]) -> None:
    record.status_code = status_code
    record.response = body
