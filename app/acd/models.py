"""ACD tables: campaigns, queues, agents and their skills, seats, sessions, calls, timers."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.acd.states import AgentState, CallState
from app.db import Base, BigId, Json, UTCDateTime, utcnow

CALL_KIND_INBOUND = "inbound"
CALL_KIND_CALLBACK = "callback"
# The states in which a call holds its volunteer (a callback being dialled too).
LIVE_CALL_STATES_SQL = "state IN ('offered', 'dialing', 'connected', 'wrap_up')"
PAYMENT_LINK_DEFAULT = "https://donate.example.org/pay?ref={reference}&amount={amount}"


class Campaign(Base):
    __tablename__ = "campaigns"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    # E.164 numbers shown on air; an incoming call is matched to its campaign by these.
    dialled_numbers: Mapped[list[str]] = mapped_column(Json, default=list)
    currency: Mapped[str] = mapped_column(String(3), default="EUR")
    default_region: Mapped[str] = mapped_column(String(2), default="FR")
    timezone: Mapped[str] = mapped_column(String(64), default="Europe/Paris")
    # The language of its pages and replies when neither the user nor the browser names
    # one the app has (app/i18n/negotiation.py).
    language: Mapped[str] = mapped_column(String(8), default="fr", server_default="fr")
    # {"mon": [["08:00", "23:00"]], ...}; an empty dict means always open.
    opening_hours: Mapped[dict[str, list[list[str]]]] = mapped_column(Json, default=dict)
    closed_message: Mapped[str] = mapped_column(
        Text, default="The pledge line is closed. Thank you for calling."
    )
    default_queue: Mapped[str] = mapped_column(String(100), default="pledges")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Pledge rules (app/pledges): amounts in minor units of ``currency``; above the
    # review threshold a pledge is flagged for a supervisor.
    pledge_min_minor: Mapped[int] = mapped_column(
        BigInteger, default=100, server_default=text("100")
    )
    pledge_max_minor: Mapped[int] = mapped_column(
        BigInteger, default=1_000_000, server_default=text("1000000")
    )
    pledge_review_minor: Mapped[int] = mapped_column(
        BigInteger, default=100_000, server_default=text("100000")
    )
    # The tote board's target (its thermometer); None: no goal shown.
    goal_minor: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    # {reference} and {amount} (major units, e.g. 25.00) are filled in.
    payment_link_template: Mapped[str] = mapped_column(
        Text, default=PAYMENT_LINK_DEFAULT, server_default=PAYMENT_LINK_DEFAULT
    )
    # Broadcast segments for totals: [{"name", "starts_at", "ends_at"}] with ISO UTC times.
    time_slots: Mapped[list[dict[str, str]]] = mapped_column(
        Json, default=list, server_default=text("'[]'")
    )
    # Outside numbers a volunteer may transfer a caller to: exact E.164 numbers and
    # prefixes ending in "*" (app/acd/transfer_numbers.py). Empty: no transfer out.
    transfer_numbers: Mapped[list[str]] = mapped_column(
        Json, default=list, server_default=text("'[]'")
    )
    # The safety net for lost hang-ups (app/acd/stale.py): a call connected this long
    # raises a supervisor alert; this long, it is ended as ``stale``.
    stale_alert_seconds: Mapped[int] = mapped_column(
        Integer, default=1800, server_default=text("1800")
    )
    stale_end_seconds: Mapped[int] = mapped_column(
        Integer, default=7200, server_default=text("7200")
    )


class Queue(Base):
    __tablename__ = "queues"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    strategy: Mapped[str] = mapped_column(String(20), default="longest_idle")
    required_skill: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # Skill levels: 1 is best. Agents up to this level are eligible at once...
    required_level: Mapped[int] = mapped_column(Integer, default=1)
    # ...and tiers widen it with wait time: [[after_seconds, max_level], ...].
    tiers: Mapped[list[list[int]]] = mapped_column(Json, default=list)
    # Priority ageing: one priority point gained per this many seconds waited.
    ageing_seconds: Mapped[int] = mapped_column(Integer, default=60)
    sl_threshold_seconds: Mapped[int] = mapped_column(Integer, default=20)
    # The supervisor screen's colours: green at or above the target share answered
    # within the threshold, amber down to ``sl_amber_percent``, red below.
    sl_target_percent: Mapped[int] = mapped_column(Integer, default=80, server_default=text("80"))
    sl_amber_percent: Mapped[int] = mapped_column(Integer, default=70, server_default=text("70"))
    ring_timeout_seconds: Mapped[int] = mapped_column(Integer, default=15)
    wrapup_seconds: Mapped[int] = mapped_column(Integer, default=30)
    max_wait_seconds: Mapped[int | None] = mapped_column(Integer, nullable=True)
    max_length: Mapped[int | None] = mapped_column(Integer, nullable=True)
    overflow_queue_id: Mapped[int | None] = mapped_column(
        ForeignKey("queues.id", ondelete="SET NULL"), nullable=True
    )
    overflow_message: Mapped[str] = mapped_column(
        Text, default="All our volunteers are busy. Please pledge online or call back shortly."
    )
    # Auto-answer (false: the volunteer presses Answer). The volunteer's screen takes
    # a breath of ``auto_answer_seconds`` (0 to 5) first: it flashes, plays a tone and
    # shows the caller, with an Answer-now button; then it answers by itself.
    auto_answer: Mapped[bool] = mapped_column(Boolean, default=True)
    auto_answer_seconds: Mapped[int] = mapped_column(Integer, default=2, server_default=text("2"))
    dialled_numbers: Mapped[list[str]] = mapped_column(Json, default=list)
    # Round robin: the last agent offered a call from this queue.
    rr_last_agent_id: Mapped[int | None] = mapped_column(BigId, nullable=True)
    # Expected-wait announcements (app/acd/expected_wait.py, docs/surge.md): on entry
    # and then every this many seconds while queued; 0 turns them off.
    wait_announce_seconds: Mapped[int] = mapped_column(
        Integer, default=60, server_default=text("60")
    )
    # Callbacks (app/acd/callbacks.py): offered when the expected wait is over this
    # (None: never, unless a rule offers it), by pressing ``callback_digit``; the
    # platform dials ``callback_retries`` more times ``callback_retry_seconds`` apart,
    # and a callback not completed ``callback_expiry_seconds`` after its request ends.
    callback_offer_seconds: Mapped[int | None] = mapped_column(Integer, nullable=True)
    callback_digit: Mapped[str] = mapped_column(String(1), default="1", server_default="1")
    callback_retries: Mapped[int] = mapped_column(Integer, default=2, server_default=text("2"))
    callback_retry_seconds: Mapped[int] = mapped_column(
        Integer, default=300, server_default=text("300")
    )
    callback_expiry_seconds: Mapped[int] = mapped_column(
        Integer, default=7200, server_default=text("7200")
    )

    # Site preference (docs/roster.md): a call is offered to volunteers of this site
    # only, until it has waited ``site_widen_seconds``; then to any (None: no preference).
    site_id: Mapped[int | None] = mapped_column(
        ForeignKey("sites.id", ondelete="SET NULL"), nullable=True
    )
    site_widen_seconds: Mapped[int] = mapped_column(Integer, default=30, server_default=text("30"))
    # Only trained volunteers (``agents.trained``, set by practice calls) take its calls.
    trained_only: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))

    __table_args__ = (UniqueConstraint("campaign_id", "name", name="uq_queues_campaign_name"),)


class Site(Base):
    """A partner organisation's centre taking the campaign's calls (docs/roster.md)."""

    __tablename__ = "sites"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    organisation: Mapped[str] = mapped_column(String(200))
    address: Mapped[str] = mapped_column(Text, default="")
    timezone: Mapped[str] = mapped_column(String(64), default="Europe/Paris")
    # How many seats the centre lends (planning; the seats themselves are rows of ``seats``).
    seats: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (UniqueConstraint("campaign_id", "name", name="uq_sites_campaign_name"),)


class Agent(Base):
    __tablename__ = "agents"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    login: Mapped[str] = mapped_column(String(64))
    display_name: Mapped[str] = mapped_column(String(200))
    languages: Mapped[list[str]] = mapped_column(Json, default=list)
    partner_org: Mapped[str | None] = mapped_column(String(200), nullable=True)
    # The roster (app/roster, docs/roster.md): where the volunteer sits, who lends them
    # (skills volunteering: their company counts their hours), how to reach them.
    site_id: Mapped[int | None] = mapped_column(
        ForeignKey("sites.id", ondelete="SET NULL"), nullable=True
    )
    employer: Mapped[str | None] = mapped_column(String(200), nullable=True)
    email: Mapped[str | None] = mapped_column(String(254), nullable=True)
    phone: Mapped[str | None] = mapped_column(String(32), nullable=True)  # E.164
    trained: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    notes: Mapped[str | None] = mapped_column(Text, nullable=True)

    state: Mapped[str] = mapped_column(String(16), default=AgentState.LOGGED_OUT)
    pause_reason: Mapped[str | None] = mapped_column(String(64), nullable=True)
    state_since: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    # A pause or logout asked for while holding a call; applied when the call ends.
    pending_state: Mapped[str | None] = mapped_column(String(16), nullable=True)
    pending_reason: Mapped[str | None] = mapped_column(String(64), nullable=True)
    current_call_id: Mapped[int | None] = mapped_column(BigId, nullable=True)
    seat_id: Mapped[int | None] = mapped_column(
        ForeignKey("seats.id", ondelete="SET NULL"), nullable=True
    )
    session_id: Mapped[int | None] = mapped_column(BigId, nullable=True)
    missed_in_row: Mapped[int] = mapped_column(Integer, default=0)
    calls_taken: Mapped[int] = mapped_column(Integer, default=0)
    # Web softphone presence. An agent who has never opened a screen (API or
    # simulated) is routed regardless; one whose screens are all closed is not.
    screens_open: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    screen_seen_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)

    __table_args__ = (
        UniqueConstraint("campaign_id", "login", name="uq_agents_campaign_login"),
        Index("ix_agents_campaign_state", "campaign_id", "state", "state_since"),
    )


class AgentSkill(Base):
    __tablename__ = "agent_skills"

    agent_id: Mapped[int] = mapped_column(
        ForeignKey("agents.id", ondelete="CASCADE"), primary_key=True
    )
    skill: Mapped[str] = mapped_column(String(64), primary_key=True)
    level: Mapped[int] = mapped_column(Integer, default=1)

    __table_args__ = (Index("ix_agent_skills_skill_level", "skill", "level"),)


class Seat(Base):
    __tablename__ = "seats"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    # Where the telephony platform bridges a call for this seat (SIP URI, WebRTC id...).
    address: Mapped[str] = mapped_column(String(200))
    site: Mapped[str | None] = mapped_column(String(100), nullable=True)
    # The partner centre the seat is in: a site-scoped supervisor steers its seats only.
    site_id: Mapped[int | None] = mapped_column(
        ForeignKey("sites.id", ondelete="SET NULL"), nullable=True
    )

    __table_args__ = (UniqueConstraint("campaign_id", "name", name="uq_seats_campaign_name"),)


class AgentSession(Base):
    __tablename__ = "agent_sessions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"))
    seat_id: Mapped[int | None] = mapped_column(
        ForeignKey("seats.id", ondelete="SET NULL"), nullable=True
    )
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    ended_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)

    __table_args__ = (Index("ix_agent_sessions_agent", "agent_id", "started_at"),)


class Call(Base):
    __tablename__ = "calls"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    provider_call_id: Mapped[str] = mapped_column(String(128))
    # A transfer ends one leg (state transferred) and opens the next with the context.
    leg: Mapped[int] = mapped_column(Integer, default=0)
    # ``inbound`` (a caller on the line) or ``callback`` (a caller who asked to be
    # called back: queued in the place of the call it came from, ``parent_call_id``).
    kind: Mapped[str] = mapped_column(
        String(16), default=CALL_KIND_INBOUND, server_default=CALL_KIND_INBOUND
    )
    parent_call_id: Mapped[int | None] = mapped_column(BigId, nullable=True)
    caller_raw: Mapped[str | None] = mapped_column(String(64), nullable=True)
    caller_number: Mapped[str | None] = mapped_column(String(32), nullable=True)
    # Why there is no usable caller number: withheld, anonymous, invalid.
    caller_number_issue: Mapped[str | None] = mapped_column(String(32), nullable=True)
    dialled: Mapped[str] = mapped_column(String(32))
    queue_id: Mapped[int | None] = mapped_column(
        ForeignKey("queues.id", ondelete="SET NULL"), nullable=True
    )
    # Wide enough for callback_requested (migration 0013).
    state: Mapped[str] = mapped_column(String(24), default=CallState.RECEIVED)
    priority: Mapped[int] = mapped_column(Integer, default=0)
    # Queue order, smallest first: enqueue time minus priority x ageing seconds, so a
    # call's effective priority grows linearly with its wait (see docs/metrics.md).
    rank_key: Mapped[float] = mapped_column(Float, default=0.0)
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    queued_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    offered_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    answered_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    hangup_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    ended_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    agent_id: Mapped[int | None] = mapped_column(
        ForeignKey("agents.id", ondelete="SET NULL"), nullable=True
    )
    offers: Mapped[int] = mapped_column(Integer, default=0)
    wait_seconds: Mapped[float | None] = mapped_column(Float, nullable=True)
    end_reason: Mapped[str | None] = mapped_column(String(64), nullable=True)
    disposition: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # The digit a waiting caller was offered a callback with (None: not offered).
    callback_digit: Mapped[str | None] = mapped_column(String(1), nullable=True)
    # A callback's dialling attempts so far.
    dial_attempts: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    # When supervisors were alerted that this call has been connected too long (once).
    stale_alerted_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    tags: Mapped[list[str]] = mapped_column(Json, default=list)
    context: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)

    __table_args__ = (
        UniqueConstraint("provider_call_id", "leg", name="uq_calls_provider_call_leg"),
        Index("ix_calls_queue_state_rank", "queue_id", "state", "rank_key"),
        Index("ix_calls_campaign_state", "campaign_id", "state"),
        Index("ix_calls_caller_number", "caller_number", "received_at"),
        # An agent holds at most one live call: a database guarantee on both dialects,
        # behind the row locks and the state checks of the transitions.
        Index(
            "uq_calls_agent_live",
            "agent_id",
            unique=True,
            postgresql_where=text(LIVE_CALL_STATES_SQL),
            sqlite_where=text(LIVE_CALL_STATES_SQL),
        ),
    )


class Timer(Base):
    """A durable timer: a row with a due time that any process may claim."""

    __tablename__ = "timers"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(32))
    due_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    call_id: Mapped[int | None] = mapped_column(BigId, nullable=True)
    agent_id: Mapped[int | None] = mapped_column(BigId, nullable=True)
    data: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)

    __table_args__ = (
        Index("ix_timers_due_at", "due_at"),
        Index("ix_timers_call_kind", "call_id", "kind"),
        Index("ix_timers_agent_kind", "agent_id", "kind"),
    )
