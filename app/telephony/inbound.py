"""Handling an event from the telephony platform, exactly once.

Both adapters come through here: the HTTP webhook and the simulated platform. The
event's effect and the record that it was handled (with the answer given) are one
transaction, so a duplicate delivery gets the first answer and changes nothing.
"""

from __future__ import annotations

import hashlib
from typing import Any, cast

from sqlalchemy import Table, bindparam, select
from sqlalchemy.exc import IntegrityError

from app.acd import callbacks, lifecycle, repository
from app.acd.models import Call
from app.db import ClaimTaken, Database, UnitOfWork, utcnow
from app.errors import NotFound
from app.telephony.models import InboundEvent
from app.telephony.schemas import (
    CallDtmf,
    CallHangup,
    CallIncoming,
    DialAnswered,
    DialUnanswered,
    SeatAnswered,
    SeatHangup,
)

Event = (
    CallIncoming | CallHangup | SeatAnswered | SeatHangup | CallDtmf | DialAnswered | DialUnanswered
)


def _call_answer(call: Call | None, note: str | None = None) -> dict[str, Any]:
    if call is None:
        return {"call": None, "note": note}
    return {
        "call": {
            "id": call.id,
            "state": call.state,
            "provider_call_id": call.provider_call_id,
            "agent_id": call.agent_id,
        },
        "note": note,
    }


_HUNG_UP_BEFORE = (
    select(InboundEvent.event_id)
    .where(
        InboundEvent.provider_call_id == bindparam("p_call"),
        InboundEvent.type == "call.hangup",
    )
    .limit(1)
)


async def _hung_up_before(uow: UnitOfWork, provider_call_id: str) -> bool:
    result = await uow.session.execute(_HUNG_UP_BEFORE, {"p_call": provider_call_id})
    return result.first() is not None


async def _apply(uow: UnitOfWork, event: Event, *, retry: bool = False) -> dict[str, Any]:
    now = utcnow()
    if isinstance(event, CallIncoming):
        # The hang-up may have overtaken the incoming event: then nobody is offered it.
        gone = await _hung_up_before(uow, event.call_id)
        call = await lifecycle.receive(
            uow,
            provider_call_id=event.call_id,
            caller=event.caller,
            dialled=event.dialled,
            now=now,
            known=retry,
            route=not gone,
        )
        if gone:
            await lifecycle.caller_hangup(uow, call, now)
            return _call_answer(call, "hang-up arrived first")
        return _call_answer(call)
    if isinstance(event, CallDtmf | DialAnswered | DialUnanswered):
        return await _apply_callback_event(uow, event)
    # The common case in one conditional statement each; anything else (a late or
    # repeated event, a hang-up while waiting) takes the general path below.
    if isinstance(event, SeatAnswered):
        fast = await lifecycle.connect_answered(uow, event.call_id, now)
    else:
        by = "caller" if isinstance(event, CallHangup) else "agent"
        fast = await lifecycle.wrap_up_connected(uow, event.call_id, now, by=by)
    if fast is not None:
        return _call_answer(fast)
    found = await repository.live_call_by_provider_id(uow.session, event.call_id)
    if found is None:
        if isinstance(event, CallHangup):
            return _call_answer(None, "call not seen yet; it will end when it arrives")
        raise NotFound(
            "unknown call {call_id}", field="call_id", code="unknown_call", call_id=event.call_id
        )
    call = found
    before = call.state
    if isinstance(event, CallHangup):
        await lifecycle.caller_hangup(uow, call, now)
    elif isinstance(event, SeatAnswered):
        await lifecycle.seat_answered(uow, call, now)
    else:
        await lifecycle.seat_hangup(uow, call, now, seat=event.seat)
    # Events out of order (a late answer, a repeated hang-up) change nothing; say so.
    return _call_answer(call, None if call.state != before else f"no change: call is {before}")


async def _apply_callback_event(
    uow: UnitOfWork, event: CallDtmf | DialAnswered | DialUnanswered
) -> dict[str, Any]:
    """A key pressed by a waiting caller, or a callback's dialling outcome."""
    now = utcnow()
    if isinstance(event, CallDtmf):
        call = await repository.live_call_by_provider_id(uow.session, event.call_id)
        if call is None:
            raise NotFound(
                "unknown call {call_id}",
                field="call_id",
                code="unknown_call",
                call_id=event.call_id,
            )
        callback = await callbacks.digit_pressed(uow, call, event.digit, now)
        answer = _call_answer(call, None if callback else "no change: no callback offered by it")
        answer["callback_id"] = callback.id if callback is not None else None
        return answer
    found = await callbacks.dial_outcome(uow, event.callback_id, event.call_id)
    if found is None:
        raise NotFound(
            "no callback {callback_id} dialled as {call_id}",
            field="callback_id",
            code="unknown_callback",
            callback_id=event.callback_id,
            call_id=event.call_id,
        )
    if isinstance(event, DialAnswered):
        changed = await callbacks.dial_answered(uow, found, now)
    else:
        changed = await callbacks.dial_unanswered(uow, found, now, reason=event.reason)
    return _call_answer(found, None if changed else f"no change: callback is {found.state}")


async def _stored(db: Database, event_id: str) -> InboundEvent | None:
    async with db.read() as session:
        return await session.get(InboundEvent, event_id)


def _check_same(stored: InboundEvent, body_sha256: str) -> tuple[int, dict[str, Any]]:
    if stored.body_sha256 != body_sha256:
        return 409, {
            "code": "event_id_reused",
            "message": "this event_id was already used with a different body",
            "field": "event_id",
        }
    return stored.status_code, stored.response


def _record(uow: UnitOfWork, event: Event, digest: str, answer: dict[str, Any]) -> None:
    """Claim the event id with the event's effect, written with the outbox rows (one
    statement on PostgreSQL); a duplicate claims nothing and raises ``ClaimTaken``
    as the unit of work ends, which undoes this attempt."""
    row = {
        "event_id": event.event_id,
        "type": event.type,
        "provider_call_id": event.call_id,
        "body_sha256": digest,
        "status_code": 200,
        "response": answer,
        "received_at": utcnow(),
    }
    uow.stage_claim(_INBOUND, row)


_INBOUND = cast(Table, InboundEvent.__table__)


async def handle(db: Database, event: Event, raw_body: bytes) -> tuple[int, dict[str, Any]]:
    """Apply an event once; returns (HTTP status, answer).

    No read comes first: the event's effect and the claim of its id
    (``INSERT ... ON CONFLICT DO NOTHING``) are one transaction. When the claim
    finds the id taken, the effect is rolled back and the first answer is given.
    A refused event (unknown call, say) raises ``AppError`` and writes nothing,
    not even the record of having seen it.
    """
    digest = hashlib.sha256(raw_body).hexdigest()
    for attempt in range(3):
        try:
            async with db.unit_of_work() as uow:
                answer = await _apply(uow, event, retry=attempt > 0)
                _record(uow, event, digest, answer)
            return 200, answer
        except ClaimTaken:  # handled before: answer as the first time
            pass
        except IntegrityError:
            # A concurrent delivery of the same call won the race: look again.
            pass
        stored = await _stored(db, event.event_id)
        if stored is not None:
            return _check_same(stored, digest)
    raise RuntimeError(f"event {event.event_id} kept conflicting")
