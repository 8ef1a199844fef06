"""Reconciliation steps: save a source's mapping, import a file, match a line by hand.

Every function works inside the caller's unit of work and never commits.

**One transaction per import.** The file is read and checked whole first
(``csvfile.parse``, no database); a bad file is refused with its problems and
nothing is written. A good file is imported in one unit of work: the import row,
every line, every payment (through ``app.pledges.service.record_payment``, with
its audit row, counters and ``pledge.status`` event) and the ``payments.imported``
event commit together, or not at all. Each line is keyed (source + provider
transaction id, or a digest of the line), unique in ``payment_lines``, so a file
imported again records nothing twice; on PostgreSQL two imports of one file at
once collide on that key and the later one, retried, finds every line known.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable
from typing import Any

from sqlalchemy import select

from app.acd.models import Campaign
from app.auth.service import Principal, Role
from app.cardguard import check_fields
from app.db import UnitOfWork, utcnow
from app.errors import Conflict, Forbidden, Invalid
from app.outbox import emit
from app.pledges import service as pledges
from app.pledges.models import Frequency, Pledge, PledgeStatus
from app.reconciliation import repository
from app.reconciliation.csvfile import Line, Mapping_
from app.reconciliation.matching import (
    AUTO_RECORD,
    BY_REFERENCE,
    Candidate,
    Pool,
    references_in,
)
from app.reconciliation.models import (
    LineStatus,
    MatchMethod,
    PaymentImport,
    PaymentLine,
    PaymentSource,
    SourceKind,
)

Progress = Callable[[int, int], None]
CLI_ACTOR = "command-line"


def mapping_of(source: PaymentSource) -> Mapping_:
    return Mapping_(
        name=source.name,
        kind=source.kind,
        delimiter=source.delimiter,
        decimal_separator=source.decimal_separator,
        encoding=source.encoding,
        date_format=source.date_format,
        currency=source.currency,
        columns=dict(source.columns),
    )


def check_role(principal: Principal | None) -> None:
    if principal is not None and principal.role not in (Role.ORGANISER, Role.ADMIN):
        raise Forbidden("payments are reconciled by organisers")


async def save_source(uow: UnitOfWork, name: str, values: dict[str, Any]) -> PaymentSource:
    """Create or replace the source ``name``'s mapping."""
    check_fields({"name": name})  # a path segment: no body model guards it
    existing = await uow.session.scalar(select(PaymentSource).where(PaymentSource.name == name))
    if existing is None:
        existing = PaymentSource(name=name)
        uow.session.add(existing)
    for key, value in values.items():
        setattr(existing, key, value)
    existing.updated_at = utcnow()
    await uow.session.flush()
    emit(uow, "payments.source_saved", data={"source_id": existing.id, "name": name})
    return existing


def provider_payment_id(source: PaymentSource, line: Line) -> str:
    """The id the payment is recorded under in ``pledge_payments`` (unique there)."""
    if source.kind == SourceKind.PROVIDER and line.transaction_id is not None:
        return line.transaction_id  # the webhook's payment_id: one payment, however it came
    key = f"{source.name}:{line.key}"
    if len(key) > 128:
        key = f"{source.name}:sha256:{hashlib.sha256(line.key.encode()).hexdigest()}"
    return key


def _difference(pledge: Pledge, amount: int) -> int:
    """Money received minus what the pledge was owed before it (one instalment for a
    monthly pledge). ``pledge`` is read after the payment."""
    if pledge.frequency == Frequency.MONTHLY:
        return amount - pledge.amount_minor
    owed_before = max(pledge.amount_minor - (pledge.paid_minor - amount), 0)
    return amount - owed_before


async def _record(
    uow: UnitOfWork,
    principal: Principal | None,
    source: PaymentSource,
    line: Line,
    reference: str,
) -> tuple[Pledge, bool] | str:
    """Record the line's payment on the pledge ``reference``; the refusal's message if
    the pledges service refuses it (then nothing of it stays: savepoint and staged
    events)."""
    mark = uow.mark()
    try:
        async with uow.session.begin_nested():
            return await pledges.record_payment(
                uow,
                principal,
                reference,
                amount_minor=line.amount_minor,
                currency=line.currency,
                provider_payment_id=provider_payment_id(source, line),
                received_at=line.booked_at,
            )
    except (Invalid, Conflict) as exc:
        uow.rollback_to(mark)
        return exc.message[:200]


async def import_lines(
    uow: UnitOfWork,
    principal: Principal | None,
    source: PaymentSource,
    campaign_id: int,
    lines: list[Line],
    *,
    filename: str,
    file_sha256: str,
    progress: Progress | None = None,
) -> PaymentImport:
    """Import the checked lines of one file (see the module note)."""
    check_role(principal)
    session = uow.session
    if await session.get(Campaign, campaign_id) is None:
        raise Invalid("unknown campaign", field="campaign_id", code="unknown_campaign")
    batch = PaymentImport(
        source_id=source.id,
        campaign_id=campaign_id,
        filename=filename,
        file_sha256=file_sha256,
        user_id=principal.user_id if principal else None,
        actor=principal.username if principal else CLI_ACTOR,
        imported_at=utcnow(),
        lines=len(lines),
    )
    session.add(batch)
    await session.flush()

    known = await repository.known_keys(session, source.id, [line.key for line in lines])
    fresh = [line for line in lines if line.key not in known]
    batch.duplicates = len(lines) - len(fresh)
    paying = [line for line in fresh if line.amount_minor > 0]
    by_reference = await repository.pledges_by_reference(
        session, campaign_id, (ref for line in paying for ref in references_in(line.label))
    )
    already = await repository.recorded_payments(
        session, (provider_payment_id(source, line) for line in paying)
    )
    pool = Pool(
        await repository.open_candidates(session, campaign_id, {x.amount_minor for x in paying})
    )
    rows = []
    for done, line in enumerate(fresh, 1):
        rows.append(
            await _import_line(uow, principal, source, batch, line, by_reference, already, pool)
        )
        if progress is not None:
            progress(done, len(fresh))
    # Counted and written at the end: one multi-row INSERT, not a write per line.
    statuses = Counter(row.status for row in rows)
    batch.recorded = statuses[LineStatus.RECORDED]
    batch.already_recorded = statuses[LineStatus.ALREADY_RECORDED]
    batch.unmatched = statuses[LineStatus.UNMATCHED]
    batch.ignored = statuses[LineStatus.IGNORED]
    batch.recorded_minor = sum(r.amount_minor for r in rows if r.status == LineStatus.RECORDED)
    batch.masked = sum(line.masked for line in fresh)
    session.add_all(rows)
    await session.flush()
    emit(
        uow,
        "payments.imported",
        campaign_id=campaign_id,
        data={
            "import_id": batch.id,
            "source": source.name,
            **{name: getattr(batch, name) for name in COUNTS},
        },
    )
    return batch


COUNTS = (
    "lines",
    "recorded",
    "already_recorded",
    "unmatched",
    "ignored",
    "duplicates",
    "masked",
    "recorded_minor",
)


async def _import_line(
    uow: UnitOfWork,
    principal: Principal | None,
    source: PaymentSource,
    batch: PaymentImport,
    line: Line,
    by_reference: dict[str, repository.PledgeRef],
    already: dict[str, tuple[int, int]],
    pool: Pool,
) -> PaymentLine:
    row = PaymentLine(
        import_id=batch.id,
        source_id=source.id,
        campaign_id=batch.campaign_id,
        line_no=line.line_no,
        line_key=line.key,
        transaction_id=line.transaction_id,
        booked_at=line.booked_at,
        amount_minor=line.amount_minor,
        currency=line.currency,
        label=line.label,
        payer=line.payer,
        status=LineStatus.UNMATCHED,
        note="",
        confidence=0,
        suggestions=[],
        difference_minor=0,
    )
    if line.amount_minor <= 0:
        row.status = LineStatus.IGNORED
        row.note = "not money received"
        return row
    known = already.get(provider_payment_id(source, line))
    if known is not None:
        pledge_id, amount = known
        if amount == line.amount_minor:
            row.status, row.pledge_id, row.confidence = LineStatus.ALREADY_RECORDED, pledge_id, 100
            row.note = "recorded before (the provider's webhook or another import)"
            return row
        row.note = "this transaction id was recorded before with another amount"
        return row

    pledge: repository.PledgeRef | Candidate | None = None
    method, confidence = None, 0
    for reference in references_in(line.label):
        pledge = by_reference.get(reference)
        if pledge is not None:
            method, confidence = MatchMethod.REFERENCE, BY_REFERENCE
            break
    if pledge is None:
        scored = pool.score(line.amount_minor, line.currency, line.payer, line.label)
        row.suggestions = [{"pledge_id": s.pledge_id, "confidence": s.confidence} for s in scored]
        if scored:
            row.confidence = scored[0].confidence
        if scored and scored[0].confidence >= AUTO_RECORD:
            pledge = pool.by_id[scored[0].pledge_id]
            method, confidence = MatchMethod.AMOUNT_NAME, scored[0].confidence
    if pledge is None or method is None:
        row.note = "no pledge found" if not row.suggestions else "not sure: pick the pledge"
        return row
    pledge_id = pledge.pledge_id
    if isinstance(pledge, repository.PledgeRef) and pledge.status == PledgeStatus.CANCELLED:
        row.note = f"pledge {pledge.reference} was cancelled"
        row.suggestions = [{"pledge_id": pledge_id, "confidence": confidence}]
        return row
    outcome = await _record(uow, principal, source, line, pledge.reference)
    if isinstance(outcome, str):
        row.note = outcome
        row.suggestions = [{"pledge_id": pledge_id, "confidence": confidence}]
        return row
    paid, new = outcome
    row.pledge_id, row.method, row.confidence = paid.id, method, confidence
    row.suggestions = []
    row.matched_by = principal.user_id if principal else None
    row.matched_at = utcnow()
    if new:
        row.status = LineStatus.RECORDED
        row.difference_minor = _difference(paid, line.amount_minor)
        pool.paid(paid.id, line.amount_minor)
    else:
        row.status = LineStatus.ALREADY_RECORDED
    return row


def _line_event(uow: UnitOfWork, type: str, row: PaymentLine, **data: Any) -> None:
    emit(uow, type, campaign_id=row.campaign_id, data={"line_id": row.id, **data})


async def match_line(
    uow: UnitOfWork, principal: Principal, line_id: int, reference: str
) -> PaymentLine:
    """An organiser picks the pledge an unmatched line paid: the payment is recorded."""
    check_role(principal)
    row = await repository.get_line(uow.session, line_id, lock=True)
    if row.status != LineStatus.UNMATCHED:
        raise Conflict(
            "this line is {status}, not waiting for a pledge",
            code="line_not_open",
            status=row.status,
        )
    pledge = await repository.pledge_by_reference(
        uow.session, pledges.normalise_reference(reference)
    )
    if pledge is None:
        raise Invalid("no pledge with this reference", field="reference", code="unknown_pledge")
    if pledge.campaign_id != row.campaign_id:
        raise Invalid("this pledge belongs to another campaign", field="reference")
    source = await uow.session.get(PaymentSource, row.source_id)
    assert source is not None
    line = Line(
        line_no=row.line_no,
        key=row.line_key,
        transaction_id=row.transaction_id,
        booked_at=row.booked_at,
        amount_minor=row.amount_minor,
        currency=row.currency,
        label=row.label,
        payer=row.payer,
        masked=False,
    )
    paid, new = await pledges.record_payment(
        uow,
        principal,
        pledge.reference,
        amount_minor=line.amount_minor,
        currency=line.currency,
        provider_payment_id=provider_payment_id(source, line),
        received_at=line.booked_at,
    )
    row.status = LineStatus.RECORDED if new else LineStatus.ALREADY_RECORDED
    row.pledge_id, row.method, row.confidence = paid.id, MatchMethod.MANUAL, 100
    row.difference_minor = _difference(paid, line.amount_minor) if new else 0
    row.suggestions = []
    row.note = ""
    row.matched_by, row.matched_at = principal.user_id, utcnow()
    await uow.session.flush()
    _line_event(uow, "payments.line_matched", row, pledge_id=paid.id, reference=paid.reference)
    return row


async def dismiss_line(uow: UnitOfWork, principal: Principal, line_id: int) -> PaymentLine:
    """An organiser says an unmatched line pays no pledge (a gift by transfer...)."""
    check_role(principal)
    row = await repository.get_line(uow.session, line_id, lock=True)
    if row.status != LineStatus.UNMATCHED:
        raise Conflict(
            "this line is {status}, not waiting for a pledge",
            code="line_not_open",
            status=row.status,
        )
    row.status = LineStatus.DISMISSED
    row.matched_by, row.matched_at = principal.user_id, utcnow()
    _line_event(uow, "payments.line_dismissed", row)
    return row


async def mark_reviewed(uow: UnitOfWork, principal: Principal, line_id: int) -> PaymentLine:
    """An organiser has checked an over- or under-payment: it leaves the list."""
    check_role(principal)
    row = await repository.get_line(uow.session, line_id, lock=True)
    if row.status != LineStatus.RECORDED or row.difference_minor == 0:
        raise Conflict("only an over- or under-payment is checked", code="nothing_to_review")
    if row.reviewed_at is None:
        row.reviewed_at = utcnow()
        _line_event(uow, "payments.line_reviewed", row)
    return row
