"""The process's principal cache: it saves the auth query, and never outlives a logout,
a revocation, a user change or the session's expiry.

The app's tests run with a cache lifetime of an hour, so only an event (or the
session's end) can be what drops an entry.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from sqlalchemy import event, update

from app.auth.cache import PrincipalCache
from app.auth.models import AuthSession
from app.auth.service import Principal, Role
from app.realtime.models import Event
from tests.conftest import Hotline, setup_campaign
from tests.users import user_with_token

HOUR = 3600.0
T0 = dt.datetime(2026, 12, 6, 12, 0, tzinfo=dt.UTC)


# --- the cache on its own, with its clocks in hand ------------------------------------------


class Clocks:
    def __init__(self) -> None:
        self.mono = 1000.0
        self.wall = T0

    def monotonic(self) -> float:
        return self.mono

    def wallclock(self) -> dt.datetime:
        return self.wall


def _principal(session_id: int, user_id: int = 1, **changes: Any) -> Principal:
    values: dict[str, Any] = {
        "user_id": user_id,
        "username": f"u{user_id}",
        "role": Role.SUPERVISOR,
        "campaign_id": 1,
        "agent_id": None,
        "session_id": session_id,
        "csrf_token": "csrf",
        "via_cookie": False,
        "expires_at": T0 + dt.timedelta(hours=1),
        "session_public_id": f"pub{session_id}",
        **changes,
    }
    return Principal(**values)


def _cache(clocks: Clocks, ttl: float = 5.0, size: int = 100) -> PrincipalCache:
    return PrincipalCache(
        ttl, max_entries=size, monotonic=clocks.monotonic, wallclock=clocks.wallclock
    )


def test_entries_live_the_lifetime_and_never_past_the_session() -> None:
    clocks = Clocks()
    cache = _cache(clocks)
    cache.put("d1", _principal(1), generation=cache.generation)
    clocks.mono += 4.9
    assert cache.get("d1") is not None
    clocks.mono += 0.1
    assert cache.get("d1") is None and len(cache) == 0
    # A session ending within the lifetime is not served a moment past its end.
    ending = _principal(2, expires_at=T0 + dt.timedelta(seconds=2))
    cache.put("d2", ending, generation=cache.generation)
    clocks.wall = T0 + dt.timedelta(seconds=2)
    assert cache.get("d2") is None


async def test_forgetting_by_session_user_or_event() -> None:
    cache = _cache(Clocks())
    for n, user in ((1, 7), (2, 7), (3, 8)):
        cache.put(f"d{n}", _principal(n, user), generation=cache.generation)
    cache.forget_session(1)
    assert cache.get("d1") is None and cache.get("d2") is not None
    cache.forget_user(7)
    assert cache.get("d2") is None and cache.get("d3") is not None
    cache.put("d4", _principal(4, 9), generation=cache.generation)
    # Committed Event rows (this process) and feed messages (every process) alike.
    row = Event(type="auth.revoked", data={"session_id": 3, "user_id": 8})
    message = {"type": "auth.user_changed", "seq": 5, "data": {"user_id": 9}}
    unrelated = {"type": "agent.state", "data": {"user_id": 1, "session_id": 1}}
    await cache.on_events([row, message, unrelated])
    assert len(cache) == 0
    cache.put("d5", _principal(5), generation=cache.generation)
    cache.clear()
    assert cache.get("d5") is None


def test_a_read_from_before_a_drop_is_not_put_back() -> None:
    cache = _cache(Clocks())
    generation = cache.generation  # a request starts reading the database...
    cache.forget_session(1)  # ...the session is revoked meanwhile...
    cache.put("d1", _principal(1), generation=generation)  # ...its read comes back stale
    assert cache.get("d1") is None


def test_the_least_recently_used_go_beyond_the_bound() -> None:
    cache = _cache(Clocks(), size=3)
    for n in range(1, 4):
        cache.put(f"d{n}", _principal(n, n), generation=cache.generation)
    assert cache.get("d1") is not None  # d1 used: d2 is now the oldest
    cache.put("d4", _principal(4, 4), generation=cache.generation)
    assert len(cache) == 3
    assert cache.get("d2") is None
    assert all(cache.get(d) is not None for d in ("d1", "d3", "d4"))
    cache.forget_user(2)  # indexes were kept in step with the eviction
    cache.forget_session(2)
    assert len(cache) == 3


def test_a_zero_lifetime_caches_nothing() -> None:
    cache = _cache(Clocks(), ttl=0)
    cache.put("d1", _principal(1), generation=cache.generation)
    assert cache.get("d1") is None


# --- through the app ---------------------------------------------------------------------


@contextmanager
def _auth_queries(hotline: Hotline) -> Iterator[list[str]]:
    """Statements that read sessions or users, issued while the block runs."""
    seen: list[str] = []

    def _record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if "auth_sessions" in statement or "FROM users" in statement:
            seen.append(statement)

    engine = hotline.db.engine.sync_engine
    event.listen(engine, "before_cursor_execute", _record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", _record)


def _as(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _cached_hotline(factory: Callable[..., Awaitable[Hotline]]) -> Hotline:
    return await factory(principal_cache_seconds=HOUR)


async def _supervisor(hotline: Hotline, name: str = "sup") -> tuple[int, str]:
    setup = await setup_campaign(hotline, agents=0)
    return await user_with_token(
        hotline.db,
        username=name,
        role=Role.SUPERVISOR,
        secret="supervisor-secret",
        campaign_id=setup["campaign_id"],
    )


async def test_a_second_request_issues_no_auth_query(
    hotline_factory: Callable[..., Awaitable[Hotline]],
) -> None:
    hotline = await _cached_hotline(hotline_factory)
    _, token = await _supervisor(hotline)
    with _auth_queries(hotline) as first:
        assert (await hotline.http.get("/auth/me", headers=_as(token))).status_code == 200
    assert len(first) == 1  # one query: the session and its user together
    with _auth_queries(hotline) as second:
        r = await hotline.http.get("/auth/me", headers=_as(token))
        assert r.status_code == 200 and r.json()["username"] == "sup"
        assert (await hotline.http.get("/agents", headers=_as(token))).status_code == 200
    assert second == []


async def test_a_logged_out_token_is_refused_on_the_next_request(
    hotline_factory: Callable[..., Awaitable[Hotline]],
) -> None:
    hotline = await _cached_hotline(hotline_factory)
    _, token = await _supervisor(hotline)
    assert (await hotline.http.get("/auth/me", headers=_as(token))).status_code == 200
    assert (await hotline.http.post("/auth/logout", headers=_as(token))).status_code == 204
    r = await hotline.http.get("/auth/me", headers=_as(token))
    assert r.status_code == 401 and r.json()["code"] == "session_invalid"


async def test_a_revoked_user_is_refused_on_the_next_request(
    hotline_factory: Callable[..., Awaitable[Hotline]],
) -> None:
    hotline = await _cached_hotline(hotline_factory)
    user_id, token = await _supervisor(hotline)
    assert (await hotline.http.get("/auth/me", headers=_as(token))).status_code == 200
    r = await hotline.http.post(f"/users/{user_id}/revoke")
    assert r.status_code == 200 and r.json()["revoked_sessions"] == 1
    assert (await hotline.http.get("/auth/me", headers=_as(token))).status_code == 401


async def test_a_role_change_is_seen_on_the_next_request(
    hotline_factory: Callable[..., Awaitable[Hotline]],
) -> None:
    hotline = await _cached_hotline(hotline_factory)
    user_id, token = await _supervisor(hotline)
    assert (await hotline.http.get("/auth/me", headers=_as(token))).json()["role"] == "supervisor"
    assert (await hotline.http.get("/agents", headers=_as(token))).status_code == 200
    r = await hotline.http.patch(f"/users/{user_id}", json={"role": "organiser"})
    assert r.status_code == 200 and r.json()["role"] == "organiser"
    assert (await hotline.http.get("/auth/me", headers=_as(token))).json()["role"] == "organiser"
    # And a deactivated user is out at once.
    r = await hotline.http.patch(f"/users/{user_id}", json={"active": False})
    assert r.status_code == 200
    assert (await hotline.http.get("/auth/me", headers=_as(token))).status_code == 401
    changes = await hotline.sql(
        "SELECT data FROM events WHERE type = 'auth.user_changed' ORDER BY seq"
    )
    assert len(changes) == 2
    # Deactivating also ends the sessions (which closes the user's screens).
    revoked = await hotline.sql("SELECT data FROM events WHERE type = 'auth.revoked'")
    assert len(revoked) == 1


async def test_an_expired_session_is_not_served_from_the_cache(
    hotline_factory: Callable[..., Awaitable[Hotline]],
) -> None:
    hotline = await _cached_hotline(hotline_factory)
    _, token = await _supervisor(hotline)
    assert (await hotline.http.get("/auth/me", headers=_as(token))).status_code == 200
    # The hour of the session passes: for the database and for the cache's clock.
    later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=2)
    app = hotline.http._transport.app  # type: ignore[attr-defined]
    cache: PrincipalCache = app.state.principal_cache
    cache._wallclock = lambda: later
    async with hotline.db.unit_of_work() as uow:
        await uow.session.execute(update(AuthSession).values(expires_at=T0.replace(month=1)))
    with _auth_queries(hotline) as queries:
        assert (await hotline.http.get("/auth/me", headers=_as(token))).status_code == 401
    assert len(queries) == 1  # asked the database again


async def test_bad_user_changes_are_refused_and_change_nothing(hotline: Hotline) -> None:
    setup = await setup_campaign(hotline, agents=1)
    user_id, _ = await user_with_token(
        hotline.db,
        username="vol",
        role=Role.AGENT,
        secret="123456",
        campaign_id=setup["campaign_id"],
        agent_id=setup["agent_ids"][0],
    )
    cases = [
        ({"role": "supervisor", "campaign_id": None}, "campaign_id", 422),
        ({"secret": "12"}, "secret", 422),
        ({"secret": "1234"}, "secret", 422),
        ({"role": None}, "role", 422),
        ({"role": "emperor"}, "role", 422),
        ({"nickname": "x"}, "nickname", 422),
    ]
    for body, field, status in cases:
        r = await hotline.http.patch(f"/users/{user_id}", json=body)
        assert r.status_code == status, (body, r.text)
        assert r.json()["field"] == field, (body, r.json())
    r = await hotline.http.patch("/users/999999", json={"display_name": "x"})
    assert r.status_code == 404
    users = await hotline.sql("SELECT role, campaign_id FROM users WHERE id = :id", id=user_id)
    assert [tuple(u) for u in users] == [("agent", setup["campaign_id"])]
    assert await hotline.sql("SELECT seq FROM events WHERE type = 'auth.user_changed'") == []


async def test_a_changed_secret_logs_in_and_the_old_one_does_not(hotline: Hotline) -> None:
    user_id, _ = await _supervisor(hotline)
    r = await hotline.http.patch(f"/users/{user_id}", json={"secret": "a-new-long-secret"})
    assert r.status_code == 200
    transport = hotline.http._transport
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        old = await client.post(
            "/auth/login", json={"username": "sup", "secret": "supervisor-secret"}
        )
        new = await client.post(
            "/auth/login", json={"username": "sup", "secret": "a-new-long-secret"}
        )
    assert (old.status_code, new.status_code) == (401, 200)
