"""Logins: the throttle per (name, client address) with its back-off, the client address
behind trusted proxies, and volunteer PIN length.

The clock is driven through ``login(now=...)``; nothing here sleeps.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable

import httpx
import pytest
from pydantic import ValidationError
from sqlalchemy import select

from app.auth.addresses import client_address
from app.auth.models import LoginThrottle
from app.auth.service import (
    FORGIVE_AFTER,
    LOCK_FIRST,
    Role,
    TooManyAttempts,
    create_user,
    lock_duration,
    login,
)
from app.db import Database, make_engine
from app.settings import Settings
from tests.conftest import Hotline, setup_campaign

T0 = dt.datetime(2026, 12, 6, 12, 0, tzinfo=dt.UTC)
SECOND = dt.timedelta(seconds=1)
NAME, SECRET = "org", "organiser-secret"
HERE, ELSEWHERE = "198.51.100.7", "203.0.113.9"
LIMIT = 5


async def _organiser(db: Database, username: str = NAME) -> None:
    async with db.unit_of_work() as uow:
        await create_user(
            uow, username=username, display_name="Org", role=Role.ORGANISER, secret=SECRET
        )


async def _attempt(
    db: Database,
    secret: str,
    now: dt.datetime,
    *,
    client: str = HERE,
    username: str = NAME,
) -> str:
    """One login through the service: "ok", "wrong" (checked) or "locked" (not checked)."""
    try:
        async with db.unit_of_work() as uow:
            result = await login(
                uow,
                username=username,
                secret=secret,
                campaign_id=None,
                client=client,
                kind="bearer",
                hours=1,
                max_failures=LIMIT,
                now=now,
            )
    except TooManyAttempts:
        return "locked"
    return "ok" if result is not None else "wrong"


async def _locked_until(db: Database, client: str = HERE) -> dt.datetime:
    async with db.read() as session:
        stmt = select(LoginThrottle.locked_until).where(
            LoginThrottle.username == NAME, LoginThrottle.client == client
        )
        until = (await session.execute(stmt)).scalar_one()
    assert until is not None
    return until


async def _fail_round(db: Database, start: dt.datetime, client: str = HERE) -> dt.datetime:
    """``LIMIT`` wrong secrets a second apart; returns when the pair is locked until."""
    for n in range(LIMIT):
        assert await _attempt(db, "wrong-secret", start + n * SECOND, client=client) == "wrong"
    return await _locked_until(db, client)


def test_locks_double_from_a_quarter_hour_up_to_a_day() -> None:
    minutes = [int(lock_duration(n).total_seconds() // 60) for n in range(1, 10)]
    assert minutes == [15, 30, 60, 120, 240, 480, 960, 1440, 1440]
    assert lock_duration(10_000) == dt.timedelta(hours=24)


async def test_a_locked_pair_is_refused_even_with_the_right_secret(hotline: Hotline) -> None:
    db = hotline.db
    await _organiser(db)
    until = await _fail_round(db, T0)
    last_failure = T0 + (LIMIT - 1) * SECOND
    assert until == last_failure + LOCK_FIRST
    assert await _attempt(db, SECRET, until - SECOND) == "locked"
    assert await _attempt(db, SECRET, until) == "ok"  # the lock ran out; success clears it
    async with db.read() as session:
        assert (await session.execute(select(LoginThrottle))).first() is None


async def test_each_locked_round_in_a_row_locks_twice_as_long(hotline: Hotline) -> None:
    db = hotline.db
    await _organiser(db)
    start = T0
    for lock in (15, 30, 60, 120):
        until = await _fail_round(db, start)
        last_failure = start + (LIMIT - 1) * SECOND
        assert until - last_failure == dt.timedelta(minutes=lock)
        assert await _attempt(db, "wrong-secret", until - SECOND) == "locked"
        start = until
    # Two quiet days (longer than the longest lock) forgive the back-off.
    until = await _fail_round(db, start + FORGIVE_AFTER)
    assert until - (start + FORGIVE_AFTER + (LIMIT - 1) * SECOND) == LOCK_FIRST


async def test_a_guesser_gets_35_checks_a_day_per_name_and_address(hotline: Hotline) -> None:
    """The figure docs/security.md gives: 5 + 5 after 15 min, 30 min, 1 h, 2 h, 4 h, 8 h."""
    db = hotline.db
    await _organiser(db)

    async def checks_between(start: dt.datetime, end: dt.datetime) -> tuple[int, dt.datetime]:
        checked, now = 0, start
        while now < end:
            outcome = await _attempt(db, "000000", now)
            assert outcome != "ok"
            if outcome == "wrong":
                checked += 1
                now += SECOND
            else:
                now = await _locked_until(db)  # a guesser comes back the moment it ends
        return checked, now

    first_day, now = await checks_between(T0, T0 + dt.timedelta(hours=24))
    assert first_day == 35
    # Then the locks are 16 h, then a day each: 5 checks a day.
    second_day, _ = await checks_between(now, now + dt.timedelta(hours=24))
    assert second_day == 5


async def test_a_lock_holds_for_one_address_only(hotline: Hotline) -> None:
    db = hotline.db
    await _organiser(db)
    await _organiser(db, "other")
    until = await _fail_round(db, T0, client=HERE)
    # The owner of the name, elsewhere, is not locked out by a stranger's guesses.
    assert await _attempt(db, SECRET, T0 + 10 * SECOND, client=ELSEWHERE) == "ok"
    # Nor are other people behind the same busy address.
    assert await _attempt(db, SECRET, T0 + 10 * SECOND, username="other") == "ok"
    assert await _attempt(db, SECRET, until - SECOND) == "locked"


async def test_a_success_starts_the_round_again(hotline: Hotline) -> None:
    db = hotline.db
    await _organiser(db)
    for n in range(LIMIT - 1):
        assert await _attempt(db, "typo", T0 + n * SECOND) == "wrong"
    assert await _attempt(db, SECRET, T0 + 10 * SECOND) == "ok"
    for n in range(LIMIT - 1):
        assert await _attempt(db, "typo", T0 + (20 + n) * SECOND) == "wrong"
    assert await _attempt(db, SECRET, T0 + 30 * SECOND) == "ok"


async def test_an_unknown_name_is_throttled_like_a_known_one(hotline: Hotline) -> None:
    db = hotline.db
    for n in range(LIMIT):
        assert await _attempt(db, "x", T0 + n * SECOND, username="nobody") == "wrong"
    assert await _attempt(db, "x", T0 + 10 * SECOND, username="nobody") == "locked"


@pytest.mark.pg_only
async def test_racing_processes_get_at_most_the_limit_of_checks(hotline: Hotline) -> None:
    """200 wrong PINs at once from two connection pools (two processes' worth): the
    conditional upsert lets exactly ``LIMIT`` of them be checked."""
    await _organiser(hotline.db)
    engines = [Database(make_engine(hotline.settings.database_url, pool_size=10)) for _ in "ab"]
    try:
        outcomes = await asyncio.gather(
            *(_attempt(engines[n % 2], f"{n:06d}", T0) for n in range(200))
        )
    finally:
        for db in engines:
            await db.dispose()
    assert outcomes.count("wrong") == LIMIT
    assert outcomes.count("locked") == 200 - LIMIT


# --- over HTTP: which address counts --------------------------------------------------------


Login = Callable[..., Awaitable[int]]


def _login_over_http(hotline: Hotline) -> Login:
    async def _login(secret: str, forwarded_for: str | None = None) -> int:
        headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
        r = await hotline.http.post(
            "/auth/login",
            json={"username": NAME, "secret": secret, "mode": "bearer"},
            headers=headers,
        )
        if r.status_code == 429:
            assert r.json()["code"] == "too_many_attempts"
        return r.status_code

    return _login


async def test_forwarded_for_is_ignored_unless_the_peer_is_a_trusted_proxy(
    hotline: Hotline,
) -> None:
    await _organiser(hotline.db)
    attempt = _login_over_http(hotline)
    for n in range(LIMIT):  # a different made-up address each time: all count together
        assert await attempt("wrong-secret", f"192.0.2.{n}") == 401
    assert await attempt(SECRET, "192.0.2.99") == 429


async def test_behind_a_trusted_proxy_each_client_address_counts_apart(
    hotline_factory: Callable[..., Awaitable[Hotline]],
) -> None:
    hotline = await hotline_factory(trusted_proxies="127.0.0.0/8, 10.0.0.1")
    await _organiser(hotline.db)
    attempt = _login_over_http(hotline)
    for _ in range(LIMIT):
        assert await attempt("wrong-secret", f"{HERE}, 10.0.0.1") == 401
    assert await attempt(SECRET, f"{HERE}, 10.0.0.1") == 429
    assert await attempt(SECRET, f"{HERE}, {ELSEWHERE}") == 200  # spoofed hop: ignored
    async with hotline.db.read() as session:
        rows = (await session.execute(select(LoginThrottle.client))).scalars().all()
    assert rows == [HERE]


@pytest.mark.parametrize(
    ("peer", "forwarded", "trusted", "client"),
    [
        ("127.0.0.1", "203.0.113.9", "", "127.0.0.1"),  # no trusted proxy: the peer
        ("198.51.100.1", "203.0.113.9", "127.0.0.1", "198.51.100.1"),  # untrusted peer
        ("127.0.0.1", "203.0.113.9", "127.0.0.1", "203.0.113.9"),
        ("127.0.0.1", "6.6.6.6, 203.0.113.9, 10.1.2.3", "127.0.0.1,10.0.0.0/8", "203.0.113.9"),
        ("127.0.0.1", "10.1.2.3", "127.0.0.1,10.0.0.0/8", "10.1.2.3"),  # only proxies
        ("127.0.0.1", "not-an-ip, 203.0.113.9", "127.0.0.1", "203.0.113.9"),
        ("127.0.0.1", "203.0.113.9, garbage", "127.0.0.1", "127.0.0.1"),
        ("::1", "2001:db8::7", "::1", "2001:db8::7"),
        (None, None, "", "unknown"),
    ],
)
def test_client_address(peer: str | None, forwarded: str, trusted: str, client: str) -> None:
    assert client_address(peer, forwarded, trusted) == client


def test_a_bad_trusted_proxy_setting_is_refused_at_start_up() -> None:
    with pytest.raises(ValidationError, match="trusted_proxies"):
        Settings(trusted_proxies="10.0.0.0/8, localhost")
    assert Settings(trusted_proxies=" 10.0.0.0/8 , ::1 ").trusted_proxies


# --- PINs ------------------------------------------------------------------------------------


async def _new_volunteer(hotline: Hotline, agent_id: int, campaign_id: int, pin: str) -> int:
    r = await hotline.http.post(
        "/users",
        json={
            "username": f"vol-{agent_id}-{pin}",
            "display_name": "V",
            "role": "agent",
            "secret": pin,
            "campaign_id": campaign_id,
            "agent_id": agent_id,
        },
    )
    if r.status_code != 201:
        assert r.json()["field"] == "secret", r.text
    return r.status_code


async def test_volunteer_pins_have_six_digits_by_default(hotline: Hotline) -> None:
    setup = await setup_campaign(hotline, agents=2)
    campaign, (first, second) = setup["campaign_id"], setup["agent_ids"]
    assert await _new_volunteer(hotline, first, campaign, "1234") == 422
    assert await _new_volunteer(hotline, first, campaign, "12345") == 422
    assert await _new_volunteer(hotline, first, campaign, "123456789") == 422
    assert await _new_volunteer(hotline, first, campaign, "123456") == 201
    assert await _new_volunteer(hotline, second, campaign, "12345678") == 201


async def test_four_digit_pins_are_allowed_by_the_setting(
    hotline_factory: Callable[..., Awaitable[Hotline]],
) -> None:
    hotline = await hotline_factory(pin_min_digits=4)
    setup = await setup_campaign(hotline, agents=1)
    assert await _new_volunteer(hotline, setup["agent_ids"][0], setup["campaign_id"], "123") == 422
    assert await _new_volunteer(hotline, setup["agent_ids"][0], setup["campaign_id"], "1234") == 201


async def test_a_missing_or_unknown_campaign_number_is_said_and_not_counted(
    hotline: Hotline,
) -> None:
    setup = await setup_campaign(hotline, agents=1)
    campaign, agent = setup["campaign_id"], setup["agent_ids"][0]
    assert await _new_volunteer(hotline, agent, campaign, "246810") == 201
    name = f"vol-{agent}-246810"

    async def log_in(secret: str, campaign_id: int | None) -> httpx.Response:
        body = {"username": name, "secret": secret, "mode": "bearer"}
        if campaign_id is not None:
            body["campaign_id"] = campaign_id
        return await hotline.http.post("/auth/login", json=body)

    # Far more slips than the lockout allows: each is told, none counts.
    for _ in range(LIMIT + 2):
        r = await log_in("246810", None)
        assert (r.status_code, r.json()["code"], r.json()["field"]) == (
            422,
            "campaign_required",
            "campaign_id",
        )
        r = await log_in("246810", campaign + 1000)
        assert (r.status_code, r.json()["code"], r.json()["field"]) == (
            422,
            "unknown_campaign",
            "campaign_id",
        )
        assert "numéro" in r.json()["message"]  # French by default
    assert await hotline.sql("SELECT count(*) FROM login_throttles") == [(0,)]
    # A wrong PIN without the number says nothing of the name: a wrong login, counted.
    r = await log_in("135790", None)
    assert (r.status_code, r.json()["code"]) == (401, "bad_credentials")
    assert await hotline.sql("SELECT attempts FROM login_throttles") == [(1,)]
    r = await log_in("246810", campaign)
    assert r.status_code == 200, r.text
