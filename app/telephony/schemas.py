"""Events the telephony platform sends (the contract in docs/telephony.md)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import ConfigDict, Field, StringConstraints

from app.cardguard import CardGuarded

ProviderId = Annotated[str, StringConstraints(min_length=1, max_length=128)]


class _Event(CardGuarded):
    model_config = ConfigDict(extra="forbid")
    # Written by the platform, not typed into a form: each field checked alone.
    card_guard_pairs = False
    event_id: ProviderId
    call_id: ProviderId


class CallIncoming(_Event):
    type: Literal["call.incoming"]
    caller: Annotated[str, StringConstraints(max_length=64)] | None = None
    dialled: Annotated[str, StringConstraints(min_length=1, max_length=32)]


class CallHangup(_Event):
    type: Literal["call.hangup"]


class SeatAnswered(_Event):
    type: Literal["seat.answered"]
    seat: Annotated[str, StringConstraints(max_length=200)] | None = None


class SeatHangup(_Event):
    type: Literal["seat.hangup"]
    seat: Annotated[str, StringConstraints(max_length=200)] | None = None


class CallDtmf(_Event):
    """A key the caller pressed (a callback offer is answered by its digit)."""

    type: Literal["call.dtmf"]
    digit: Annotated[str, StringConstraints(pattern=r"^[0-9*#]$")]


class _DialOutcome(_Event):
    """The outcome of a ``dial`` command: ``call_id`` is the command's call id."""

    callback_id: Annotated[int, Field(ge=1, le=2**63 - 1)]


class DialAnswered(_DialOutcome):
    type: Literal["dial.answered"]


class DialUnanswered(_DialOutcome):
    type: Literal["dial.unanswered"]
    # What the platform saw: no_answer, busy, failed... (informative only).
    reason: Annotated[str, StringConstraints(pattern=r"^[a-z_]{1,32}$")] = "no_answer"


TelephonyEvent = Annotated[
    CallIncoming
    | CallHangup
    | SeatAnswered
    | SeatHangup
    | CallDtmf
    | DialAnswered
    | DialUnanswered,
    Field(discriminator="type"),
]
EVENT_TYPES = (
    "call.incoming",
    "call.hangup",
    "seat.answered",
    "seat.hangup",
    "call.dtmf",
    "dial.answered",
    "dial.unanswered",
)
