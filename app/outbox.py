"""The outbox: events and platform commands, written with the state change they
belong to, in one transaction.

Every state change writes its event here, and every decision for the telephony
platform its command. Both are *staged* on the unit of work (``UnitOfWork.stage``)
and go out as one multi-row INSERT per table just before the commit, so a step
costs one statement per table whatever it writes.

``seq`` is the global sequence number receivers read events by. On PostgreSQL,
sequence values are handed out at insert time, so two concurrent transactions may
commit out of ``seq`` order; a reader that tails the table therefore treats a gap
as "not yet committed" for a short grace period before moving past it (a gap left
by a rolled-back transaction never fills). The same holds for command ids.

This module knows no domain package: the ACD core writes through it, the realtime
package delivers the events, the telephony package the commands.
"""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, BigId, Json, UnitOfWork, UTCDateTime, utcnow


class Event(Base):
    __tablename__ = "events"

    seq: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    type: Mapped[str] = mapped_column(String(64))
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    campaign_id: Mapped[int | None] = mapped_column(BigId, nullable=True)
    queue_id: Mapped[int | None] = mapped_column(BigId, nullable=True)
    call_id: Mapped[int | None] = mapped_column(BigId, nullable=True)
    agent_id: Mapped[int | None] = mapped_column(BigId, nullable=True)
    data: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)

    __table_args__ = (
        Index("ix_events_campaign_seq", "campaign_id", "seq"),
        Index("ix_events_call_id", "call_id"),
        Index("ix_events_agent_id", "agent_id"),
    )

    def as_message(self) -> dict[str, Any]:
        """The wire form used by screens: ``{type, seq, at, data}``."""
        return message_of(self)


def message_of(event: Any) -> dict[str, Any]:
    """The wire form of a committed event, a table row or the unit of work's object.

    Only the attributes ``seq, type, at, campaign_id, queue_id, call_id, agent_id,
    data`` are used: the feed builds a screen message from the events a commit hands
    to ``Database.on_events`` without reading them back from the table.
    """
    return {
        "type": event.type,
        "seq": event.seq,
        "at": event.at.isoformat(),
        "data": {
            **(event.data or {}),
            "campaign_id": event.campaign_id,
            "queue_id": event.queue_id,
            "call_id": event.call_id,
            "agent_id": event.agent_id,
        },
    }


class Command(Base):
    """A command for the platform, written in the transaction that decided it."""

    __tablename__ = "telephony_commands"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    command: Mapped[str] = mapped_column(String(16))
    provider_call_id: Mapped[str] = mapped_column(String(128))
    args: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Push delivery to the callback URL: pending, delivered, failed.
    delivery: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)

    __table_args__ = (Index("ix_telephony_commands_delivery", "delivery", "next_attempt_at"),)


EVENTS = Event.__table__
COMMANDS = Command.__table__


def emit(
    uow: UnitOfWork,
    type: str,
    *,
    campaign_id: int | None = None,
    queue_id: int | None = None,
    call_id: int | None = None,
    agent_id: int | None = None,
    data: dict[str, Any] | None = None,
) -> Event:
    """Add an event to the transaction; it is published only if the transaction commits.

    The row is staged: all the events of a unit of work go out in one INSERT just
    before the commit, which gives each its ``seq``.
    """
    values = {
        "type": type,
        "at": utcnow(),
        "campaign_id": campaign_id,
        "queue_id": queue_id,
        "call_id": call_id,
        "agent_id": agent_id,
        "data": data or {},
    }
    event = Event(**values)
    uow.stage(EVENTS, values, target=event)  # type: ignore[arg-type]
    uow.events.append(event)
    return event


class CommandName(enum.StrEnum):
    ANSWER = "answer"
    PLAY = "play"
    BRIDGE = "bridge"
    TRANSFER = "transfer"
    HANGUP = "hangup"
    # Call a caller back (a callback accepted by its volunteer): {number, callback_id,
    # seat, agent_id}; the platform answers with dial.answered or dial.unanswered.
    DIAL = "dial"
    # The warm hand-over (docs/telephony.md#the-warm-hand-over): the caller on hold
    # with a message {message}; a specialist's seat rung on the consult leg {seat,
    # agent_id, auto_answer, leg, consult_call_id} (the caller stays on hold); the
    # ring taken back {leg, consult_call_id}; the caller back with the volunteer.
    # A specialist's answer is followed by ``bridge`` with {consult: true, leg}.
    HOLD = "hold"
    CONSULT = "consult"
    CONSULT_CANCEL = "consult_cancel"
    UNHOLD = "unhold"


def issue(uow: UnitOfWork, command: CommandName, provider_call_id: str, **args: Any) -> None:
    """Stage a command for the platform: written with the transaction's other commands."""
    uow.stage(
        COMMANDS,  # type: ignore[arg-type]
        {
            "command": command.value,
            "provider_call_id": provider_call_id,
            "args": args,
            "created_at": utcnow(),
            "delivery": "pending",
            "attempts": 0,
            "next_attempt_at": None,
        },
    )
