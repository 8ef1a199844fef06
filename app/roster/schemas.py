"""Bodies of the roster API: sites, volunteers, imports and PIN sheets."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal
from zoneinfo import available_timezones

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from app.acd.schemas import AgentIn, AgentOut, Name, Strict
from app.errors import ErrorOut

SiteName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
Address = Annotated[str, StringConstraints(strip_whitespace=True, max_length=1000)]


def _known_zone(value: str | None) -> str | None:
    if value is not None and value not in available_timezones():
        raise ValueError(f"unknown time zone {value!r}")
    return value


class SiteIn(Strict):
    campaign_id: int
    name: SiteName
    organisation: Name
    address: Address = ""
    timezone: str = "Europe/Paris"
    seats: Annotated[int, Field(ge=0, le=100_000)] = 0

    _zone = field_validator("timezone")(_known_zone)


class SitePatch(Strict):
    name: SiteName | None = None
    organisation: Name | None = None
    address: Address | None = None
    timezone: str | None = None
    seats: Annotated[int, Field(ge=0, le=100_000)] | None = None

    _zone = field_validator("timezone")(_known_zone)


class SiteOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    campaign_id: int
    name: str
    organisation: str
    address: str
    timezone: str
    seats: int
    created_at: dt.datetime


class VolunteerIn(AgentIn):
    """A volunteer registered one by one: the agent, and a login with a generated PIN.

    ``login`` may be left out: one is made from the name."""

    login: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.\-]{1,64}$")] | None = None  # type: ignore[assignment]


class IssuedPinOut(BaseModel):
    """A volunteer's login and PIN: shown once (only its hash is kept)."""

    agent_id: int
    display_name: str
    site_id: int | None
    username: str
    pin: str


class VolunteerOut(BaseModel):
    agent: AgentOut
    login: IssuedPinOut


class ImportOut(BaseModel):
    campaign_id: int
    imported: int
    # Every volunteer's login and PIN, shown this once: print or hand them out now.
    logins: list[IssuedPinOut]


class RefusedRowOut(BaseModel):
    line: int
    field: str | None
    code: str
    message: str


class ImportRefusedOut(ErrorOut):
    """A file refused whole: every refused row, and nothing imported."""

    rows: list[RefusedRowOut] = Field(default_factory=list)


class PinSheetIn(Strict):
    """Whose PINs the sheet re-issues: the site's volunteers without a login yet, or
    all of them (their old PINs stop working and their sessions end)."""

    volunteers: Literal["without_login", "all"] = "without_login"


# --- the hours report (app/roster/hours.py) ------------------------------------------


class HoursTotalsOut(BaseModel):
    shifts: int = Field(description="sign-ups to shifts starting in the period")
    shift_seconds: int = Field(description="those shifts' total length")
    logged_in_seconds: int = Field(description="seat sessions, login to logout, in the period")
    call_seconds: int = Field(description="answered calls, answer to end of wrap-up")
    calls: int = Field(description="calls answered in the period")
    pledges: int = Field(description="pledges taken in the period, cancelled ones excepted")
    pledged_minor: int = Field(description="their total, in minor units of the currency")


class HoursRowOut(HoursTotalsOut):
    """A volunteer's line (all keys), an employer's (``employer``; null: lent by no
    company) or a site's (``site_id``, ``site``; null: no site)."""

    agent_id: int | None = None
    volunteer: str | None = None
    employer: str | None = None
    site_id: int | None = None
    site: str | None = None
    volunteers: int = Field(description="how many volunteers the line sums (1 for a volunteer)")


class HoursReportOut(BaseModel):
    campaign_id: int
    campaign: str
    group: Literal["volunteer", "employer", "site"]
    currency: str
    timezone: str
    since: dt.datetime | None = Field(description="the period's start; null: the campaign's")
    until: dt.datetime | None = Field(description="the period's end; null: now")
    generated_at: dt.datetime
    rows: list[HoursRowOut]
    totals: HoursTotalsOut
