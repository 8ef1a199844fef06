"""Request and response bodies of the ACD API."""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any, Literal
from zoneinfo import available_timezones

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
)

from app.acd.hours import DAYS
from app.acd.models import PAYMENT_LINK_DEFAULT
from app.cardguard import CardGuarded

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Skill = Annotated[str, StringConstraints(pattern=r"^[a-z0-9_\-]{1,64}$")]
E164 = Annotated[str, StringConstraints(pattern=r"^\+[1-9][0-9]{5,14}$")]
# A queue's name, as a campaign's ``default_queue`` names it too (the column holds 100).
QueueName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9_\-]{1,100}$")]
# A transfer number as an admin types it: an exact number (E.164 or national form) or
# an E.164 prefix ending in "*"; app/acd/transfer_numbers.py reads and stores them.
TransferEntry = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=32)
]
TransferEntries = Annotated[list[TransferEntry], Field(max_length=200)]
# A volunteer's contact details: an address with one @ and a dotted domain; a phone as
# typed (national or international form), stored in E.164 (app/phone_numbers.py).
Email = Annotated[
    str,
    StringConstraints(strip_whitespace=True, max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$"),
]
PhoneText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=32)]
Notes = Annotated[str, StringConstraints(strip_whitespace=True, max_length=2000)]
_HHMM = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]$|^24:00$")


class Strict(CardGuarded):
    """A request body: unknown fields refused, card data refused in any field."""

    model_config = ConfigDict(extra="forbid")


def _check_hours(
    value: dict[str, list[list[str]]] | None,
) -> dict[str, list[list[str]]] | None:
    if value is None:  # an explicit null in a PATCH; the update refuses it with its field
        return None
    for day, ranges in value.items():
        if day not in DAYS:
            raise ValueError(f"unknown day {day!r}; use {', '.join(DAYS)}")
        for pair in ranges:
            if len(pair) != 2 or not all(_HHMM.match(t) for t in pair) or pair[0] >= pair[1]:
                raise ValueError(f'{day}: ranges are ["HH:MM", "HH:MM"] with start < end')
    return value


class TimeSlot(Strict):
    """A named period of the campaign (a broadcast segment) that pledge totals group by."""

    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
    # ISO 8601 with an offset; stored as UTC ISO strings.
    starts_at: str = Field(json_schema_extra={"format": "date-time"})
    ends_at: str = Field(json_schema_extra={"format": "date-time"})

    @field_validator("starts_at", "ends_at")
    @classmethod
    def _iso(cls, value: str) -> str:
        try:
            moment = dt.datetime.fromisoformat(value)
        except ValueError:
            raise ValueError("an ISO 8601 date and time, e.g. 2026-12-05T20:00:00+00:00") from None
        if moment.tzinfo is None:
            raise ValueError("the time needs an offset (Z or +01:00)")
        return moment.astimezone(dt.UTC).isoformat()


def _check_slots(value: list[TimeSlot] | None) -> list[TimeSlot] | None:
    for slot in value or []:
        if dt.datetime.fromisoformat(slot.starts_at) >= dt.datetime.fromisoformat(slot.ends_at):
            raise ValueError(f"time slot {slot.name}: starts_at must be before ends_at")
    return value


def _check_link(value: str | None) -> str | None:
    if value is not None and "{reference}" not in value:
        raise ValueError("the payment link template must contain {reference}")
    return value


MinorUnits = Annotated[int, Field(ge=1, le=10**12)]
# The safety net's limits for a connected call (app/acd/stale.py): a minute to a week.
StaleSeconds = Annotated[int, Field(ge=60, le=7 * 86400)]


def _check_stale_end(value: int | None, info: ValidationInfo) -> int | None:
    alert = info.data.get("stale_alert_seconds")
    if value is not None and alert is not None and value <= alert:
        raise ValueError("the end limit must be longer than the alert limit")
    return value


class CampaignIn(Strict):
    name: Name
    dialled_numbers: list[E164] = Field(default_factory=list)
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")] = "EUR"
    default_region: Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")] = "FR"
    timezone: str = "Europe/Paris"
    language: Literal["fr", "en"] = Field(
        default="fr", description="replies' language when the user and browser name none"
    )
    opening_hours: dict[str, list[list[str]]] = Field(default_factory=dict)
    closed_message: str = "The pledge line is closed. Thank you for calling."
    default_queue: QueueName = "pledges"
    pledge_min_minor: MinorUnits = 100
    pledge_max_minor: MinorUnits = 1_000_000
    pledge_review_minor: MinorUnits = 100_000
    # The tote board's target (thermometer); None: no goal shown.
    goal_minor: MinorUnits | None = None
    payment_link_template: str = PAYMENT_LINK_DEFAULT
    time_slots: list[TimeSlot] = Field(default_factory=list)
    transfer_numbers: TransferEntries = Field(default_factory=list)
    stale_alert_seconds: StaleSeconds = 1800
    stale_end_seconds: StaleSeconds = 7200

    _link = field_validator("payment_link_template")(_check_link)
    _slots = field_validator("time_slots")(_check_slots)
    _stale_end = field_validator("stale_end_seconds")(_check_stale_end)

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str) -> str:
        if value not in available_timezones():
            raise ValueError(f"unknown time zone {value!r}")
        return value

    _hours = field_validator("opening_hours")(_check_hours)


class CampaignPatch(Strict):
    name: Name | None = None
    dialled_numbers: list[E164] | None = None
    language: Literal["fr", "en"] | None = None
    opening_hours: dict[str, list[list[str]]] | None = None
    closed_message: str | None = None
    default_queue: QueueName | None = None
    pledge_min_minor: MinorUnits | None = None
    pledge_max_minor: MinorUnits | None = None
    pledge_review_minor: MinorUnits | None = None
    goal_minor: MinorUnits | None = None
    payment_link_template: str | None = None
    time_slots: list[TimeSlot] | None = None
    transfer_numbers: TransferEntries | None = None
    stale_alert_seconds: StaleSeconds | None = None
    stale_end_seconds: StaleSeconds | None = None

    _hours = field_validator("opening_hours")(_check_hours)
    _link = field_validator("payment_link_template")(_check_link)
    _slots = field_validator("time_slots")(_check_slots)
    _stale_end = field_validator("stale_end_seconds")(_check_stale_end)


class CampaignOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    name: str
    dialled_numbers: list[str]
    currency: str
    default_region: str
    timezone: str
    language: str
    opening_hours: dict[str, list[list[str]]]
    closed_message: str
    default_queue: str
    pledge_min_minor: int
    pledge_max_minor: int
    pledge_review_minor: int
    goal_minor: int | None
    payment_link_template: str
    time_slots: list[dict[str, str]]
    transfer_numbers: list[str]
    stale_alert_seconds: int
    stale_end_seconds: int


Strategy = Annotated[str, StringConstraints(pattern=r"^(longest_idle|round_robin|fewest_calls)$")]
Seconds = Annotated[int, Field(ge=0, le=86400)]
Percent = Annotated[int, Field(ge=0, le=100)]
# The volunteer screen's breath before it answers by itself.
AutoAnswerSeconds = Annotated[int, Field(ge=0, le=5)]
# Expected-wait announcements: every this many seconds while waiting; 0 is off.
AnnounceSeconds = Annotated[int, Field(ge=0, le=3600)]
# A telephone keypad key.
Digit = Annotated[str, StringConstraints(pattern=r"^[0-9*#]$")]


class QueueIn(Strict):
    campaign_id: int
    name: QueueName
    strategy: Strategy = "longest_idle"
    required_skill: Skill | None = None
    required_level: Annotated[int, Field(ge=1, le=10)] = 1
    tiers: list[tuple[Seconds, Annotated[int, Field(ge=1, le=10)]]] = Field(default_factory=list)
    ageing_seconds: Annotated[int, Field(ge=1, le=86400)] = 60
    sl_threshold_seconds: Seconds = 20
    sl_target_percent: Percent = 80
    sl_amber_percent: Percent = 70
    ring_timeout_seconds: Annotated[int, Field(ge=1, le=600)] = 15
    wrapup_seconds: Seconds = 30
    max_wait_seconds: Annotated[int, Field(ge=1, le=86400)] | None = None
    max_length: Annotated[int, Field(ge=1)] | None = None
    overflow_queue_id: int | None = None
    overflow_message: str = (
        "All our volunteers are busy. Please pledge online or call back shortly."
    )
    auto_answer: bool = True
    auto_answer_seconds: AutoAnswerSeconds = 2
    dialled_numbers: list[E164] = Field(default_factory=list)
    wait_announce_seconds: AnnounceSeconds = 60
    callback_offer_seconds: Seconds | None = None
    callback_digit: Digit = "1"
    callback_retries: Annotated[int, Field(ge=0, le=10)] = 2
    callback_retry_seconds: Annotated[int, Field(ge=10, le=86400)] = 300
    callback_expiry_seconds: Annotated[int, Field(ge=60, le=604800)] = 7200
    # Prefer this site's volunteers; any site's after site_widen_seconds of wait.
    site_id: int | None = None
    site_widen_seconds: Seconds = 30
    # Only trained volunteers take its calls (docs/roster.md, practice calls).
    trained_only: bool = False


class QueuePatch(Strict):
    strategy: Strategy | None = None
    required_skill: Skill | None = None
    required_level: Annotated[int, Field(ge=1, le=10)] | None = None
    tiers: list[tuple[Seconds, Annotated[int, Field(ge=1, le=10)]]] | None = None
    ageing_seconds: Annotated[int, Field(ge=1, le=86400)] | None = None
    sl_threshold_seconds: Seconds | None = None
    sl_target_percent: Percent | None = None
    sl_amber_percent: Percent | None = None
    ring_timeout_seconds: Annotated[int, Field(ge=1, le=600)] | None = None
    wrapup_seconds: Seconds | None = None
    max_wait_seconds: Annotated[int, Field(ge=1, le=86400)] | None = None
    max_length: Annotated[int, Field(ge=1)] | None = None
    overflow_queue_id: int | None = None
    overflow_message: str | None = None
    auto_answer: bool | None = None
    auto_answer_seconds: AutoAnswerSeconds | None = None
    dialled_numbers: list[E164] | None = None
    wait_announce_seconds: AnnounceSeconds | None = None
    # null turns the callback offer off.
    callback_offer_seconds: Seconds | None = None
    callback_digit: Digit | None = None
    callback_retries: Annotated[int, Field(ge=0, le=10)] | None = None
    callback_retry_seconds: Annotated[int, Field(ge=10, le=86400)] | None = None
    callback_expiry_seconds: Annotated[int, Field(ge=60, le=604800)] | None = None
    # null: no site preference.
    site_id: int | None = None
    site_widen_seconds: Seconds | None = None
    trained_only: bool | None = None


class QueueOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    campaign_id: int
    name: str
    strategy: str
    required_skill: str | None
    required_level: int
    tiers: list[list[int]]
    ageing_seconds: int
    sl_threshold_seconds: int
    sl_target_percent: int
    sl_amber_percent: int
    ring_timeout_seconds: int
    wrapup_seconds: int
    max_wait_seconds: int | None
    max_length: int | None
    overflow_queue_id: int | None
    overflow_message: str
    auto_answer: bool
    auto_answer_seconds: int
    dialled_numbers: list[str]
    wait_announce_seconds: int
    callback_offer_seconds: int | None
    callback_digit: str
    callback_retries: int
    callback_retry_seconds: int
    callback_expiry_seconds: int
    site_id: int | None
    site_widen_seconds: int
    trained_only: bool


class AgentIn(Strict):
    campaign_id: int
    login: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.\-]{1,64}$")]
    display_name: Name
    skills: dict[Skill, Annotated[int, Field(ge=1, le=10)]] = Field(default_factory=dict)
    languages: list[Annotated[str, StringConstraints(pattern=r"^[a-z]{2}$")]] = Field(
        default_factory=list
    )
    partner_org: Name | None = None
    # The roster's fields (docs/roster.md); the phone is read in the campaign's region.
    site_id: int | None = None
    employer: Name | None = None
    email: Email | None = None
    phone: PhoneText | None = None
    trained: bool = False
    notes: Notes | None = None


class AgentPatch(Strict):
    display_name: Name | None = None
    skills: dict[Skill, Annotated[int, Field(ge=1, le=10)]] | None = None
    languages: list[Annotated[str, StringConstraints(pattern=r"^[a-z]{2}$")]] | None = None
    partner_org: Name | None = None
    site_id: int | None = None
    employer: Name | None = None
    email: Email | None = None
    phone: PhoneText | None = None
    trained: bool | None = None
    notes: Notes | None = None


class AgentOut(BaseModel):
    id: int
    campaign_id: int
    login: str
    display_name: str
    skills: dict[str, int]
    languages: list[str]
    partner_org: str | None
    site_id: int | None
    employer: str | None
    email: str | None
    phone: str | None
    trained: bool
    notes: str | None
    state: str
    pause_reason: str | None
    state_since: dt.datetime
    pending_state: str | None
    current_call_id: int | None
    seat_id: int | None
    missed_in_row: int
    calls_taken: int


class SeatIn(Strict):
    campaign_id: int
    name: Name
    address: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    site: Name | None = None
    site_id: int | None = None


class SeatPatch(Strict):
    address: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = None
    site: Name | None = None
    site_id: int | None = None


class SeatOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    campaign_id: int
    name: str
    address: str
    site: str | None
    site_id: int | None


class LoginIn(Strict):
    seat_id: int | None = None


class PauseIn(Strict):
    reason: Annotated[str, StringConstraints(pattern=r"^[a-z_]{1,64}$")] = "break"


class WrapUpEndIn(Strict):
    disposition: Annotated[str, StringConstraints(pattern=r"^[a-z_]{1,64}$")] | None = None


class WrapUpExtendIn(Strict):
    seconds: Annotated[int, Field(ge=1, le=600)] = 30


class TransferIn(Strict):
    """Either a queue of the campaign (context kept) or an outside E.164 number the
    campaign allows (its ``transfer_numbers``; app/acd/transfer_numbers.py)."""

    queue_id: int | None = None
    number: E164 | None = None


class CallOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    campaign_id: int
    provider_call_id: str
    leg: int
    parent_call_id: int | None
    caller_number: str | None
    caller_number_issue: str | None
    dialled: str
    queue_id: int | None
    state: str
    priority: int
    received_at: dt.datetime
    queued_at: dt.datetime | None
    offered_at: dt.datetime | None
    answered_at: dt.datetime | None
    ended_at: dt.datetime | None
    agent_id: int | None
    offers: int
    wait_seconds: float | None
    end_reason: str | None
    disposition: str | None
    tags: list[str]
    # inbound or callback (docs/surge.md#callbacks); the digit a waiting caller was
    # offered a callback with; a callback's dialling attempts.
    kind: str
    callback_digit: str | None
    dial_attempts: int


class WaitingOut(BaseModel):
    call_id: int
    kind: str
    position: int
    expected_wait_seconds: float | None


class NotCompletedCallbackOut(BaseModel):
    callback_id: int
    caller: str | None
    state: str
    ended_at: str | None
    attempts: int


class CallbackStatsOut(BaseModel):
    requested: int
    waiting: int
    in_progress: int
    completed: int
    failed: int
    expired: int
    not_completed: list[NotCompletedCallbackOut]


class StatsOut(BaseModel):
    queue_id: int
    queue: str
    window_seconds: int
    calls_waiting: int
    calls_ringing: int
    longest_wait_seconds: float
    answered: int
    answered_within_threshold: int
    service_level_threshold_seconds: int
    # The queue's colours (percent answered within the threshold): green, amber.
    service_level_target_percent: int
    service_level_amber_percent: int
    service_level: float | None
    service_level_with_abandons: float | None
    average_speed_of_answer_seconds: float | None
    abandoned: int
    abandoned_short: int
    agents_by_state: dict[str, int]
    # Expected wait (docs/surge.md#expected-wait): null when unknown (nobody serving).
    expected_wait_seconds: float | None
    waiting_with_callbacks: int
    serving_agents: int
    free_agents: int
    handle_seconds: float
    waiting_list: list[WaitingOut]
    callbacks: CallbackStatsOut


def agent_out(agent: Any, skills: dict[str, int]) -> AgentOut:
    return AgentOut(
        id=agent.id,
        campaign_id=agent.campaign_id,
        login=agent.login,
        display_name=agent.display_name,
        skills=skills,
        languages=agent.languages or [],
        partner_org=agent.partner_org,
        site_id=agent.site_id,
        employer=agent.employer,
        email=agent.email,
        phone=agent.phone,
        trained=bool(agent.trained),
        notes=agent.notes,
        state=agent.state,
        pause_reason=agent.pause_reason,
        state_since=agent.state_since,
        pending_state=agent.pending_state,
        current_call_id=agent.current_call_id,
        seat_id=agent.seat_id,
        missed_in_row=agent.missed_in_row,
        calls_taken=agent.calls_taken,
    )
