"""Settings read from the environment (prefix ``PLEDGELINE_``).

Every field here is documented in the README's settings table; keep both in step.
"""

from __future__ import annotations

import ipaddress
import weakref
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# The secrets a server signs or checks with, and the values shipped as their
# defaults: anyone who has read the source knows those.
SHIPPED_SECRETS: dict[str, str] = {
    "telephony_secret": "dev-telephony-secret",
    "secret_key": "dev-secret-key-change-me",
    "payment_webhook_secret": "dev-payment-secret",
}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PLEDGELINE_", extra="ignore")

    env: Literal["production", "development"] = Field(
        default="production",
        description=(
            "development lets `pledgeline serve` start with the shipped secrets or short ones "
            "(`pledgeline demo` sets it); production refuses them."
        ),
    )
    database_url: str = Field(
        default="sqlite+aiosqlite:///./data/pledgeline.db",
        description="SQLAlchemy URL: sqlite+aiosqlite:///path or postgresql+asyncpg://...",
    )
    db_pool_size: int = Field(
        default=20, description="Database connections per process at most, kept once open."
    )
    sqlite_busy_timeout_ms: int = Field(default=5000, description="SQLite busy timeout.")
    sqlite_synchronous: Literal["FULL", "NORMAL"] = Field(
        default="NORMAL",
        description=(
            "SQLite fsync policy. NORMAL (WAL): an app crash loses nothing, a power cut may "
            "lose the last moments; FULL: fsync every commit (about 180 commits/s here)."
        ),
    )
    host: str = Field(default="127.0.0.1", description="Address the server listens on.")
    port: int = Field(default=8000, description="Port the server listens on.")
    workers: int = Field(default=1, description="uvicorn worker processes (PostgreSQL only).")
    log_level: str = Field(default="info", description="Log level (uvicorn's and the app's).")
    lang: Literal["fr", "en"] = Field(
        default="fr", description="Language of the command line's human output (app/i18n)."
    )
    log_format: Literal["text", "json"] = Field(
        default="text",
        description="Log lines as text, or one JSON object per line. Card numbers are masked.",
    )

    telephony_secret: str = Field(
        default=SHIPPED_SECRETS["telephony_secret"],
        description="Shared secret for HMAC-SHA256 signatures on the telephony webhook.",
    )
    telephony_callback_url: str | None = Field(
        default=None, description="Where commands to the telephony platform are POSTed."
    )
    telephony_callback_retries: int = Field(
        default=5, description="Delivery attempts in all (with back-off) before a command fails."
    )
    telephony_command_gap_grace_seconds: float = Field(
        default=2.0,
        description=(
            "PostgreSQL: `GET /telephony/commands` stops before a missing command id this "
            "long, in case a transaction still commits it; older gaps are rollbacks."
        ),
    )
    telephony_platform: Literal["webhook", "asterisk"] = Field(
        default="webhook",
        description=(
            "Which telephony platform carries the calls: `webhook` (events to the "
            "webhook, commands pushed to `telephony_callback_url` or polled) or "
            "`asterisk` (Asterisk driven through ARI: docs/asterisk.md)."
        ),
    )
    asterisk_ari_url: str = Field(
        default="http://127.0.0.1:8088",
        description="Asterisk's HTTP server, where ARI answers (`/ari/...`).",
    )
    asterisk_ari_user: str = Field(default="pledgeline", description="The ARI user (ari.conf).")
    asterisk_ari_password: str = Field(
        default="", description="The ARI user's password (ari.conf)."
    )
    asterisk_ari_app: str = Field(
        default="pledgeline",
        description="The Stasis application the hotline numbers' dialplan sends callers to.",
    )
    asterisk_welcome_sound: str = Field(
        default="sound:queue-periodic-announce",
        description="What a queued caller hears before the music on hold (ARI media URI).",
    )
    asterisk_moh_class: str = Field(
        default="default", description="The music on hold class for queued callers."
    )
    asterisk_message_sound: str = Field(
        default="sound:im-sorry,sound:vm-goodbye",
        description=(
            "Asterisk has no speech for the campaign's texts (closed, overflow, rules): "
            "what a caller hears instead, ARI media URIs separated by commas."
        ),
    )
    asterisk_trunk_endpoint: str = Field(
        default="trunk",
        description=(
            "The operator trunk's PJSIP endpoint: transfers and callbacks dial out through it."
        ),
    )
    max_body_bytes: int = Field(
        default=65536, description="Largest telephony webhook body accepted (413 beyond)."
    )
    signature_window_seconds: int = Field(
        default=300,
        ge=1,
        description=(
            "How far the signing time of a signed webhook or poll (telephony, payments) "
            "may be from this server's clock, either way; older or later: 401 "
            "stale_signature, so a captured request cannot be replayed."
        ),
    )

    missed_offers_before_pause: int = Field(
        default=1, description="Missed offers in a row after which an agent is paused (missed)."
    )
    short_abandon_seconds: int = Field(
        default=5, description="Abandons quicker than this are left out of service level."
    )
    stats_window_seconds: int = Field(
        default=3600, description="Rolling window for queue statistics."
    )
    timer_poll_seconds: float = Field(
        default=1.0,
        description=(
            "The longest a timer worker sleeps. A timer set in the process wakes it when "
            "due; this bounds how late one left by another (stopped) process fires."
        ),
    )
    dispatch_sweep_seconds: float = Field(
        default=1.0, description="Safety sweep that matches waiting calls to free agents."
    )
    stale_sweep_seconds: float = Field(
        default=30.0,
        gt=0,
        description=(
            "How often the safety net for lost hang-ups looks for calls connected beyond "
            "their campaign's limits and for volunteers held by no live call."
        ),
    )
    background_workers: bool = Field(
        default=True, description="Run the router's dispatcher and the timers in this process."
    )

    secret_key: str = Field(
        default=SHIPPED_SECRETS["secret_key"],
        description="Signs short-lived websocket tokens; set a long random value in production.",
    )
    session_hours: float = Field(default=12.0, description="How long a login lasts.")
    cookie_secure: bool = Field(
        default=False, description="Mark the session cookie Secure (set behind HTTPS)."
    )
    allowed_origins: str = Field(
        default="http://127.0.0.1:8000,http://localhost:8000",
        description="Comma-separated origins allowed to open websockets.",
    )
    login_max_failures: int = Field(
        default=5,
        ge=1,
        description=(
            "Failed logins for one name from one client address before that pair is locked "
            "(429), 15 minutes at first, doubling up to a day (docs/security.md)."
        ),
    )
    trusted_proxies: str = Field(
        default="",
        description=(
            "Comma-separated addresses or CIDR blocks of reverse proxies whose "
            "X-Forwarded-For is believed; empty: the peer address is the client."
        ),
    )
    practice_passes_to_train: int = Field(
        default=3,
        ge=1,
        le=100,
        description="Passed practice calls after which a volunteer is trained (docs/roster.md).",
    )
    pin_min_digits: int = Field(
        default=6, ge=4, le=8, description="Fewest digits of a new volunteer PIN (4 to 8)."
    )
    shift_late_grace_seconds: int = Field(
        default=300,
        ge=0,
        le=86400,
        description=(
            "A volunteer checking in this long after their shift's start is late; one not in "
            "by then is a no-show (docs/roster.md, Shifts)."
        ),
    )
    principal_cache_seconds: float = Field(
        default=5.0,
        ge=0,
        description=(
            "How long a process reuses who a session token belongs to; dropped at once on "
            "logout, revocation or a user change. 0: look it up on every request."
        ),
    )

    screen_grace_seconds: float = Field(
        default=60.0, description="A volunteer whose screen is gone this long is paused."
    )
    replay_max_events: int = Field(
        default=500, description="A reconnecting screen further behind than this gets a resync."
    )
    screen_queue_size: int = Field(
        default=1000, description="Messages buffered per screen before it is cut as too slow."
    )
    heartbeat_seconds: float = Field(
        default=15.0, description="Screens ping this often; silent for 3x this, they are cut."
    )
    event_catch_up_seconds: float = Field(
        default=5.0,
        gt=0,
        description=(
            "How often each process reads the events table for anything it was not told "
            "about (a lost notification): events reach screens late, never lost."
        ),
    )

    directory_url: str = Field(
        default="http://127.0.0.1:8100",
        description=(
            "Base URL of the reverse directory (docs/directory.md); the default is the "
            "built-in one (`pledgeline directory serve`). Empty: no directory look-ups."
        ),
    )
    directory_token: str | None = Field(
        default=None, description="Bearer token sent to the directory (and checked by ours)."
    )
    directory_budget_ms: int = Field(
        default=300, description="Time budget of one directory look-up; beyond it: timeout."
    )
    directory_cache_ttl_seconds: float = Field(
        default=3600.0, description="How long a directory hit (number listed) is cached."
    )
    directory_miss_ttl_seconds: float = Field(
        default=300.0, description="How long a directory miss (number unlisted) is cached."
    )
    directory_cache_size: int = Field(
        default=10000, description="Numbers kept in the directory cache (least recent dropped)."
    )
    directory_breaker_failures: int = Field(
        default=5, description="Directory failures in a row that open the circuit breaker."
    )
    directory_breaker_reset_seconds: float = Field(
        default=30.0, description="How long the breaker stays open before one trial look-up."
    )
    directory_max_connections: int = Field(
        default=50, description="HTTP connections to the directory kept per process."
    )
    metrics_token: str | None = Field(
        default=None,
        description=(
            "Bearer token a Prometheus scraper sends to `GET /metrics`; admins may read it too."
        ),
    )

    softphone_ws_url: str = Field(
        default="",
        description=(
            "The PBX's secure websocket (wss://...) the volunteer page's browser softphone "
            "registers on; empty: no softphone, volunteers answer on desk phones."
        ),
    )
    softphone_sip_domain: str = Field(
        default="",
        description="Domain of the softphone's SIP address; empty: the websocket URL's host.",
    )
    softphone_hours: float = Field(
        default=12.0,
        gt=0,
        description=(
            "Longest life of a softphone's credentials (they end with the login session "
            "if it ends first)."
        ),
    )
    softphone_ice_servers: str = Field(
        default="",
        description="Comma-separated STUN/TURN URLs the softphone's WebRTC uses; empty: none.",
    )

    simulate: bool = Field(default=False, description="Run simulated callers and agents.")
    sim_rate_per_minute: float = Field(default=20.0, description="Simulated calls a minute.")
    sim_spike_every_seconds: float = Field(
        default=180.0, description="An on-air appeal (arrival spike) this often."
    )
    sim_spike_factor: float = Field(default=4.0, description="Arrival rate multiplier in a spike.")
    sim_spike_seconds: float = Field(default=30.0, description="How long a spike lasts.")
    sim_talk_seconds: float = Field(
        default=45.0, description="Median simulated talk time (log-normal)."
    )
    sim_wrapup_seconds: float = Field(default=5.0, description="Mean simulated wrap-up time.")
    sim_patience_seconds: float = Field(default=60.0, description="Mean caller patience.")
    sim_agent_prefix: str = Field(
        default="volunteer", description="Agents whose login starts so are simulated."
    )
    sim_seed: int | None = Field(default=None, description="Seed for repeatable simulations.")
    sim_callback_accept: float = Field(
        default=0.3,
        ge=0.0,
        le=1.0,
        description="Share of simulated callers offered a callback who press its digit.",
    )
    sim_dial_answer: float = Field(
        default=0.7,
        ge=0.0,
        le=1.0,
        description="Share of simulated callbacks the caller answers when the line dials.",
    )

    # --- pledges (app/pledges) ---
    payment_webhook_secret: str = Field(
        default=SHIPPED_SECRETS["payment_webhook_secret"],
        description="Shared secret for HMAC-SHA256 signatures on the payment provider's webhook.",
    )

    # --- tax receipts (app/receipts, docs/receipts.md) ---
    smtp_host: str = Field(
        default="", description="SMTP server receipts are sent through; empty: no e-mail."
    )
    smtp_port: int = Field(default=25, description="SMTP server port (587 with STARTTLS).")
    smtp_starttls: bool = Field(default=False, description="Upgrade the SMTP connection (TLS).")
    smtp_username: str = Field(default="", description="SMTP login; empty: no authentication.")
    smtp_password: str = Field(default="", description="SMTP password.")
    smtp_timeout_seconds: float = Field(default=30.0, description="SMTP connection timeout.")
    receipts_mail_from: str = Field(
        default="recus@example.org", description="The From address of receipt e-mails."
    )
    receipts_font_path: str = Field(
        default="/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
        description="TrueType font of the receipt PDFs (its -Bold sibling for headings).",
    )
    # --- personal data (app/privacy, docs/personal-data.md) ---
    retention_screen_pop_days: int = Field(
        default=30,
        ge=1,
        description=(
            "Screen pops, and the personal data in event payloads, are removed this many "
            "days after their campaign ends (its last call or time slot)."
        ),
    )
    retention_caller_number_months: int = Field(
        default=13,
        ge=1,
        description="Call records' caller numbers are pseudonymised this many months after a call.",
    )
    retention_pledge_years: int = Field(
        default=6,
        ge=1,
        description=(
            "Donors' details on pledges (and their audit trail) are kept this many years "
            "after the pledge last changed (the legal period), then pseudonymised."
        ),
    )
    idempotency_key_hours: int = Field(
        default=24,
        ge=1,
        description=(
            "Stored first answers to requests with an Idempotency-Key are removed this many "
            "hours after the request (a retry after that is a new request)."
        ),
    )
    retention_purge_seconds: float = Field(
        default=3600.0,
        ge=0,
        description=(
            "How often each process applies the retention periods; 0: never in the server "
            "(run `pledgeline privacy purge` from cron instead)."
        ),
    )

    # --- surge mode and standby paging (app/surge, docs/surge.md) ---
    surge_check_seconds: float = Field(
        default=5.0,
        gt=0,
        description="How often each process checks the queues' surge thresholds (one read).",
    )
    page_quiet_seconds: float = Field(
        default=600.0,
        ge=0,
        description="A volunteer is paged at most once in this many seconds.",
    )
    sms_webhook_url: str = Field(
        default="",
        description="SMS provider webhook pages are POSTed to (signed); empty: no SMS.",
    )
    sms_webhook_secret: str = Field(
        default="",
        description="Shared secret signing the SMS webhook's requests (HMAC-SHA256).",
    )
    sms_webhook_retries: int = Field(
        default=10, ge=1, description="Delivery attempts of one SMS page before it is failed."
    )
    sms_poll_seconds: float = Field(
        default=1.0, gt=0, description="How often each process looks for SMS pages to send."
    )

    # --- rules and scripts (app/rules, docs/rules.md) ---
    rules_dir: str = Field(
        default="",
        description=(
            "Folder of campaign rules files, named <campaign id>.yaml, reloaded when changed; "
            "empty: shipped defaults unless a file was put through the API."
        ),
    )
    rules_recheck_seconds: float = Field(
        default=1.0, description="How often a process looks for a new rules file or version."
    )
    rules_partner_helpline: str = Field(
        default="+33 800 00 00 00",
        description="Partner helpline number given when no specialist answers a hand-over.",
    )
    rules_blocked_message: str = Field(
        default="This number cannot reach the pledge line at the moment. Thank you.",
        description="Message a blocked number hears before the line hangs up.",
    )

    @field_validator("softphone_ws_url")
    @classmethod
    def _softphone_ws_url_is_a_websocket(cls, value: str) -> str:
        # Said at start-up rather than as a page that never registers.
        value = value.strip()
        if value and not value.startswith(("wss://", "ws://")):
            raise ValueError("PLEDGELINE_SOFTPHONE_WS_URL is a wss:// (or ws://) URL")
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _trusted_proxies_are_networks(cls, value: str) -> str:
        # A typo here would otherwise surface as a failed login, not at start-up.
        for item in value.split(","):
            if item.strip():
                ipaddress.ip_network(item.strip(), strict=False)
        return value


MIN_SECRET_BYTES = 32
MAKE_A_SECRET = 'python -c "import secrets; print(secrets.token_urlsafe(32))"'


@dataclass(frozen=True)
class WeakSecret:
    variable: str  # PLEDGELINE_...
    reason: str

    def __str__(self) -> str:
        return (
            f"{self.variable} {self.reason}; set it to a random value of at least "
            f"{MIN_SECRET_BYTES} bytes, for example the output of: {MAKE_A_SECRET}"
        )


def weak_secrets(settings: Settings) -> list[WeakSecret]:
    """The secrets a production server must not run with: a shipped default, or one
    shorter than 32 bytes (UTF-8). None in development (``PLEDGELINE_ENV``)."""
    if settings.env == "development":
        return []
    weak = []
    for name, shipped in SHIPPED_SECRETS.items():
        value: str = getattr(settings, name)
        variable = f"PLEDGELINE_{name.upper()}"
        if value == shipped:
            weak.append(WeakSecret(variable, "is the shipped development default"))
        elif len(value.encode("utf-8")) < MIN_SECRET_BYTES:
            weak.append(WeakSecret(variable, f"is shorter than {MIN_SECRET_BYTES} bytes"))
    sms_secret = settings.sms_webhook_secret.encode("utf-8")
    if settings.sms_webhook_url and len(sms_secret) < MIN_SECRET_BYTES:
        # Only needed when pages go out by SMS.
        weak.append(
            WeakSecret("PLEDGELINE_SMS_WEBHOOK_SECRET", f"is shorter than {MIN_SECRET_BYTES} bytes")
        )
    return weak


@lru_cache
def get_settings() -> Settings:
    return Settings()


# The settings of the app each database serves: steps deep in the call path read
# theirs from the unit of work's database, without the database knowing settings.
_bound: weakref.WeakKeyDictionary[Any, Settings] = weakref.WeakKeyDictionary()


def bind(db: Any, settings: Settings) -> None:
    _bound[db] = settings


def settings_of(db: Any) -> Settings:
    """The settings bound to ``db`` by its app, else the environment's."""
    return _bound.get(db) or get_settings()
