"""Erasing a donor: every copy of their personal data removed or pseudonymised, in
one transaction with its event and its line in the privacy register.

First the places we know (pledges and their audit trail, calls, screen pops, the
calls' events and timers, blocklist entries, idempotent answers), then a search of
every text and JSON column of every table for what is left: the donor's numbers
in every usual spelling, their e-mails, their full name, and any row naming both
their first and last name (a row found so loses their first or last name
wherever it is in it). Amounts, statuses and times stay: totals and
statistics do not move. A caller number becomes a pseudonym drawn at random for
this erasure (counts per number stay right; nothing leads back to the number).

What the law requires us to keep is asked of the registered legal holds
(:func:`register_legal_hold`) before anything changes: the rows they name are left
as they are and the reason is recorded with the erasure.
"""

from __future__ import annotations

import collections
import json
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import JSON, Column, Table, Text, and_, cast, or_, select, update

from app.acd.models import Call, Timer
from app.auth.service import Principal
from app.cti.models import ScreenPop
from app.db import Base, UnitOfWork
from app.outbox import Event, emit
from app.pledges.models import IdempotencyRecord, Pledge
from app.privacy.models import PrivacyAction
from app.privacy.retention import scrub_pledge_audit
from app.privacy.scrub import (
    PERSONAL_KEYS,
    PLEDGE_PERSONAL_FIELDS,
    PSEUDONYM_PREFIX,
    json_escaped,
    phone_forms,
    scrub_json,
    scrub_text,
)
from app.privacy.subjects import Subject
from app.rules.models import NumberBlock

ERASED_EVENT = "privacy.erased"
# Our own register holds no personal data (and must keep its lines).
NOT_SEARCHED = {"privacy_actions"}


@dataclass(frozen=True)
class Kept:
    """Rows an erasure leaves as they are because the law requires them kept."""

    kind: str  # "tax_receipt"
    table: str
    ids: list[int]
    reason: str  # "Livre des procédures fiscales art. L102 B: receipts kept 6 years"


LegalHold = Callable[[UnitOfWork, Subject], Awaitable[list[Kept]]]
# Tax receipts (another package) register here: an issued receipt is kept for its
# legal period with the donor's name and address, and the erasure says so.
LEGAL_HOLDS: list[LegalHold] = []


def register_legal_hold(hold: LegalHold) -> None:
    if hold not in LEGAL_HOLDS:
        LEGAL_HOLDS.append(hold)


@dataclass
class Needles:
    """What is searched for: the donor's identifiers as they may be written."""

    text: list[str]  # any one of these in a value: it is theirs
    pairs: list[tuple[str, str]]  # both of these in one row: it is about them

    @classmethod
    def of(cls, subject: Subject) -> Needles:
        text: set[str] = set()
        for number in subject.numbers:
            if not number.startswith(PSEUDONYM_PREFIX):
                text |= phone_forms(number)
        text |= {raw.strip() for raw in subject.raw_phones if sum(map(str.isdigit, raw)) >= 6}
        text |= subject.emails
        pairs = []
        for first, last in subject.names:
            if first.strip() and last.strip():
                text |= {f"{first} {last}", f"{last} {first}"}
                if len(first.strip()) >= 2 and len(last.strip()) >= 2:
                    pairs.append((first.strip(), last.strip()))
        return cls(sorted(t for t in text if t), pairs)

    def for_linked_rows(self) -> list[str]:
        """A row already known to be theirs: a first or last name alone counts too."""
        return [*self.text, *(name for pair in self.pairs for name in pair)]


def _searchable(table: Table) -> list[Column[Any]]:
    columns = []
    for column in table.columns:
        if column.name.endswith(("sha256", "_hash")) or column.name == "key":
            continue  # digests: nothing typed is in them
        if isinstance(column.type, JSON):  # its python_type says only "object"
            columns.append(column)
            continue
        try:
            python_type = column.type.python_type
        except NotImplementedError:
            python_type = None
        if python_type is str:
            columns.append(column)
    return columns


def _written(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


async def _scrub_everywhere(
    uow: UnitOfWork, needles: Needles, skip: set[tuple[str, Any]]
) -> collections.Counter[str]:
    """Search every text and JSON column for the needles; scrub what is found."""
    changed: collections.Counter[str] = collections.Counter()
    patterns = sorted({p for n in needles.text for p in (n, json_escaped(n))})
    for table in Base.metadata.sorted_tables:
        if table.name in NOT_SEARCHED:
            continue
        keys = list(table.primary_key.columns)
        for column in _searchable(table):
            text = cast(column, Text)
            found: list[Any] = [text.icontains(p, autoescape=True) for p in patterns]
            for first, last in needles.pairs:
                for a, b in ((first, last), (json_escaped(first), json_escaped(last))):
                    found.append(
                        and_(text.icontains(a, autoescape=True), text.icontains(b, autoescape=True))
                    )
            if not found:
                continue
            rows = (await uow.session.execute(select(*keys, column).where(or_(*found)))).all()
            for row in rows:
                key, value = tuple(row[:-1]), row[-1]
                if (table.name, key if len(key) > 1 else key[0]) in skip:
                    continue
                written = _written(value).casefold()
                row_needles = list(needles.text)
                about_them = any(n.casefold() in written for n in needles.text)
                for first, last in needles.pairs:
                    # A row about them (their number, e-mail or both names in it):
                    # a first or last name alone in it is theirs too.
                    if about_them or (first.casefold() in written and last.casefold() in written):
                        row_needles += [first, last]
                new = (
                    scrub_text(value, row_needles)
                    if isinstance(value, str)
                    else scrub_json(value, row_needles)
                )
                if new == value:
                    continue
                where = and_(*(k == v for k, v in zip(keys, key, strict=True)))
                await uow.session.execute(update(table).where(where).values({column.name: new}))
                changed[table.name] += 1
    return changed


async def erase(
    uow: UnitOfWork, subject: Subject, principal: Principal, reason: str
) -> dict[str, Any]:
    """Erase the donor (see the module); what was done, and what was kept and why."""
    session = uow.session
    kept = [k for hold in LEGAL_HOLDS for k in await hold(uow, subject)]
    skip = {(k.table, i) for k in kept for i in k.ids}
    needles = Needles.of(subject)
    linked = needles.for_linked_rows()
    changed: collections.Counter[str] = collections.Counter()

    pledge_ids = [i for i in subject.pledge_ids if ("pledges", i) not in skip]
    if pledge_ids:
        await session.execute(
            update(Pledge).where(Pledge.id.in_(pledge_ids)).values(**PLEDGE_PERSONAL_FIELDS)
        )
        changed["pledges"] += len(pledge_ids)
    # A pledge kept by law keeps its current details; its history of corrections
    # (old e-mails, old addresses) is not what the law asks for.
    held_audit = frozenset(i for table, i in skip if table == "pledge_audit")
    changed["pledge_audit"] += await scrub_pledge_audit(uow, subject.pledge_ids, held_audit)

    # One fresh pseudonym per number, the same in every table: counts per number
    # (the blocklist's calls per number) stay right, and nothing leads back.
    stand_in = {n: PSEUDONYM_PREFIX + secrets.token_hex(10) for n in sorted(subject.numbers)}
    call_ids = [i for i in subject.call_ids if ("calls", i) not in skip]
    calls = (
        await session.execute(
            select(Call.id, Call.caller_number, Call.context).where(Call.id.in_(call_ids))
        )
    ).all()
    updates: list[dict[str, Any]] = []
    for call_id, number, context in calls:
        if number and number not in stand_in:
            stand_in[number] = PSEUDONYM_PREFIX + secrets.token_hex(10)
        updates.append(
            {
                "id": call_id,
                "caller_raw": None,
                "caller_number": stand_in[number] if number else None,
                "context": scrub_json(context or {}, linked, PERSONAL_KEYS),
            }
        )
    if updates:
        await session.execute(update(Call), updates)
        changed["calls"] += len(updates)

    blocks = (
        await session.execute(
            select(NumberBlock.id, NumberBlock.number, NumberBlock.reason).where(
                NumberBlock.number.in_(list(stand_in))
            )
        )
    ).all()
    if blocks:
        await session.execute(
            update(NumberBlock),
            [
                {"id": i, "number": stand_in[n], "reason": scrub_text(r, linked) if r else r}
                for i, n, r in blocks
                if ("number_blocks", i) not in skip
            ],
        )
        changed["number_blocks"] += len(blocks)

    pops = (
        await session.execute(
            select(ScreenPop.call_id, ScreenPop.status).where(ScreenPop.call_id.in_(call_ids))
        )
    ).all()
    if pops:
        await session.execute(
            update(ScreenPop),
            [{"call_id": c, "data": {"status": status, "erased": True}} for c, status in pops],
        )
        changed["screen_pops"] += len(pops)

    for model, key, column, where in (
        (Event, Event.seq, Event.data, Event.call_id.in_(call_ids)),
        (Timer, Timer.id, Timer.data, Timer.call_id.in_(call_ids)),
        (
            IdempotencyRecord,
            IdempotencyRecord.id,
            IdempotencyRecord.response,
            or_(
                *(
                    cast(IdempotencyRecord.response, Text).contains(ref)
                    for ref in subject.references
                )
            )
            if subject.references
            else None,
        ),
    ):
        if where is None:
            continue
        rows = (await session.execute(select(key, column).where(where))).all()
        row_updates = []
        for row_key, value in rows:
            new = scrub_json(value or {}, linked, PERSONAL_KEYS)
            if new != value:
                row_updates.append({key.key: row_key, column.key: new})
        if row_updates:
            await session.execute(update(model), row_updates)
            changed[model.__tablename__] += len(row_updates)

    changed.update(await _scrub_everywhere(uow, needles, skip))

    record = PrivacyAction(
        user_id=principal.user_id,
        actor=principal.username,
        action="erase",
        looked_up_by=str(subject.looked_up_by),
        reason=reason,
        summary={
            "pledge_ids": subject.pledge_ids,
            "call_ids": subject.call_ids,
            "changed": {k: v for k, v in sorted(changed.items()) if v},
        },
        kept=[asdict(k) for k in kept],
    )
    session.add(record)
    await session.flush()
    emit(
        uow,
        ERASED_EVENT,
        data={"action_id": record.id, "pledges": len(pledge_ids), "calls": len(call_ids)},
    )
    return {
        "action_id": record.id,
        "pledges": len(pledge_ids),
        "calls": len(call_ids),
        "changed": {k: v for k, v in sorted(changed.items()) if v},
        "kept": [asdict(k) for k in kept],
    }
