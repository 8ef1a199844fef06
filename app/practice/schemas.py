"""Request and response bodies of the practice-call API."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, StringConstraints

from app.cardguard import CardGuarded

Word = Annotated[str, StringConstraints(strip_whitespace=True, max_length=64)]


class Strict(CardGuarded):
    model_config = ConfigDict(extra="forbid")


class PracticeStartIn(Strict):
    """The scenario to practise (``GET /practice/scenarios``)."""

    scenario: Word


class PracticeActionIn(Strict):
    """A button of the practice call: the Prank and Needs-support buttons, a script's
    button (``script`` and ``button``), or the reference as read back to the caller."""

    action: Literal["flag_prank", "needs_support", "script_choice", "read_back"]
    script: Word | None = None
    button: Word | None = None
    reference: Annotated[str, StringConstraints(strip_whitespace=True, max_length=32)] | None = None


class ScenarioOut(BaseModel):
    name: str
    title: str
    summary: str
    # pledge, prank or handover: what a good call ends with.
    outcome: str


class ScoreItemOut(BaseModel):
    # form_complete, reference_read_back, card_refused, prank_closed, handover_used
    criterion: str
    passed: bool
    # In English; ``say`` gives its sentences as message ids with their parameters
    # (absent from scorecards stored before it).
    words: str
    say: list[tuple[str, dict[str, str]]] | None = None


class PracticeCallOut(BaseModel):
    id: int
    campaign_id: int
    agent_id: int
    scenario: ScenarioOut
    state: str
    caller: dict[str, Any]
    # The screen pop, in the shape of a real call's (docs/directory.md).
    pop: dict[str, Any]
    # What the caller says, step by step.
    lines: list[str]
    # The script on screen (a real script of the campaign), while the call is open.
    script: dict[str, Any] | None
    # The last pledge the form saved (checked as a real one; no pledge row).
    pledge: dict[str, Any] | None
    card_attempts: int
    started_at: dt.datetime
    ended_at: dt.datetime | None
    scorecard: list[ScoreItemOut] | None
    passed: bool | None


class PracticeEndOut(PracticeCallOut):
    trained: bool
    passes: int
    passes_needed: int


class PracticeActionOut(BaseModel):
    action: str
    script: dict[str, Any] | None
    rules: list[str]


class PracticeSummaryOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    campaign_id: int
    agent_id: int
    scenario: str
    state: str
    started_at: dt.datetime
    ended_at: dt.datetime | None
    passed: bool | None
