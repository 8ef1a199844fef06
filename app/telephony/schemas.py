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


TelephonyEvent = Annotated[
    CallIncoming | CallHangup | SeatAnswered | SeatHangup, Field(discriminator="type")
]
EVENT_TYPES = ("call.incoming", "call.hangup", "seat.answered", "seat.hangup")
