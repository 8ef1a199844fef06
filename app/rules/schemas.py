"""Request and response bodies of the rules and blocklist API."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, ConfigDict, Field

from app.cardguard import CardGuarded
from app.errors import ErrorOut


class RulesIn(CardGuarded):
    model_config = ConfigDict(extra="forbid")
    source: str = Field(min_length=1, max_length=256 * 1024, description="The YAML rules file.")


class ProblemOut(BaseModel):
    file: str
    line: int | None
    reason: str


class RulesRefusedOut(ErrorOut):
    """A rules file refused (``rules_invalid``): each problem with its line. Other
    refusals of the route (a malformed body, a card number) have no problems."""

    problems: list[ProblemOut] = Field(default_factory=list)


class RuleOut(BaseModel):
    name: str
    on: str
    when: str | None
    actions: list[str]
    line: int


class ScriptOut(BaseModel):
    name: str
    version: int
    title: str
    steps: int


class RulesOut(BaseModel):
    campaign_id: int
    origin: str = Field(
        description="api (put through the API), file (PLEDGELINE_RULES_DIR) or default"
    )
    version: int | None = Field(description="API version number; None for a file or the defaults")
    created_by: str | None
    created_at: dt.datetime | None
    source: str
    rules: list[RuleOut]
    scripts: list[ScriptOut]


class CheckOut(BaseModel):
    ok: bool
    problems: list[ProblemOut]


class BlockIn(CardGuarded):
    model_config = ConfigDict(extra="forbid")
    number: str = Field(min_length=3, max_length=32, description="Caller number, E.164 or national")
    duration: str | int = Field(default="24h", description="90s, 10m, 24h, 2d, or seconds")
    reason: str = Field(default="blocked by a supervisor", max_length=200)


class BlockOut(BaseModel):
    number: str
    strikes: int
    blocked: bool
    blocked_until: dt.datetime | None
    reason: str | None
    updated_by: str
    updated_at: dt.datetime
    calls_total: int = Field(description="Calls from this number in the campaign (first legs)")
    distinct_days: int = Field(description="Days (campaign time zone) with a call from it")
