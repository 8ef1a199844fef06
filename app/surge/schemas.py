"""Request and response bodies of the surge endpoints."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.cardguard import CardGuarded

# (enter, leave, calm side): leave must be on the calm side of enter.
PAIRS = (
    ("enter_waiting", "leave_waiting", "below"),
    ("enter_wait_seconds", "leave_wait_seconds", "below"),
    ("enter_service_level", "leave_service_level", "above"),
)


class SurgeSettingsIn(CardGuarded):
    """A queue's surge thresholds. Each measure is a pair (enter, leave) or unset;
    at least one pair. Leave thresholds sit on the calm side of the enter ones."""

    model_config = ConfigDict(extra="forbid")
    enabled: bool = True
    enter_waiting: int | None = Field(default=None, ge=1, le=100_000)
    leave_waiting: int | None = Field(default=None, ge=0, le=100_000)
    enter_wait_seconds: float | None = Field(default=None, gt=0, le=86_400)
    leave_wait_seconds: float | None = Field(default=None, ge=0, le=86_400)
    enter_service_level: float | None = Field(default=None, gt=0, le=1)
    leave_service_level: float | None = Field(default=None, gt=0, le=1)
    leave_after_seconds: int = Field(default=0, ge=0, le=86_400)

    @model_validator(mode="after")
    def _pairs(self) -> SurgeSettingsIn:
        any_pair = False
        for enter, leave, side in PAIRS:
            e, lv = getattr(self, enter), getattr(self, leave)
            if (e is None) != (lv is None):
                missing = leave if lv is None else enter
                raise ValueError(f"{missing}: set both {enter} and {leave}, or neither")
            if e is None:
                continue
            any_pair = True
            if side == "below" and not lv < e:
                raise ValueError(f"{leave}: must be below {enter} (hysteresis)")
            if side == "above" and not lv > e:
                raise ValueError(f"{leave}: must be above {enter} (hysteresis)")
        if not any_pair:
            raise ValueError("enter_waiting: set at least one pair of thresholds")
        return self


class SurgeOut(BaseModel):
    queue_id: int
    queue: str
    campaign_id: int
    configured: bool
    enabled: bool = False
    enter_waiting: int | None = None
    leave_waiting: int | None = None
    enter_wait_seconds: float | None = None
    leave_wait_seconds: float | None = None
    enter_service_level: float | None = None
    leave_service_level: float | None = None
    leave_after_seconds: int = 0
    surge: bool = False
    since: dt.datetime | None = None
    reason: str | None = None
    measures_at_switch: dict[str, Any] = Field(default_factory=dict)
    calm_since: dt.datetime | None = None
    measures_now: dict[str, Any] = Field(default_factory=dict)
    standby: list[dict[str, Any]] = Field(default_factory=list)


class PageIn(CardGuarded):
    model_config = ConfigDict(extra="forbid")
    agent_ids: list[int] | None = Field(
        default=None, max_length=500, description="Only these standby volunteers; all if unset."
    )


class PageRunOut(BaseModel):
    page_ids: list[int]
    paged_agent_ids: list[int]
    quiet_agent_ids: list[int] = Field(
        description="Standby volunteers paged within the quiet period: not paged again."
    )


class PageOut(BaseModel):
    id: int
    campaign_id: int
    queue_id: int | None
    agent_id: int
    agent_name: str
    paged_by: str
    paged_at: dt.datetime
    standby_as: str
    message: str
    answered_at: dt.datetime | None
    sms: str


class StandbyIn(CardGuarded):
    model_config = ConfigDict(extra="forbid")
    standby: bool
    phone: str | None = Field(
        default=None, max_length=32, description="For SMS pages; E.164 or national."
    )


class StandbyOut(BaseModel):
    agent_id: int
    campaign_id: int
    standby: bool
    phone: str | None
