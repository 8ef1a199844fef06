"""Websocket tokens: signed, one minute, one handshake, naming the session by its
random public id (never the sequential one)."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import hmac
import json

import httpx
import pytest
import websockets
from sqlalchemy import func, select

from app.auth.models import WsTokenUse
from app.auth.service import (
    WS_TOKEN_SECONDS,
    Role,
    consume_ws_token,
    issue_ws_token,
    purge_spent_ws_tokens,
    read_ws_token,
)
from app.db import Database, make_engine, utcnow
from tests.conftest import Hotline
from tests.test_sockets import Server, _connect, _volunteer, server  # noqa: F401 (fixture)
from tests.users import user_with_token

KEY = "test-ws-key"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _forge(claims: dict[str, object], key: str = KEY) -> str:
    payload = _b64(json.dumps(claims).encode())
    signature = _b64(hmac.new(key.encode(), payload.encode(), hashlib.sha256).digest())
    return f"{payload}.{signature}"


async def _session(hotline: Hotline) -> tuple[int, str, str]:
    """An organiser's login: (session id, public id, bearer token)."""
    user_id, token = await user_with_token(
        hotline.db, username="ws-user", role=Role.ORGANISER, secret="organiser-secret"
    )
    rows = await hotline.sql(
        "SELECT id, public_id FROM auth_sessions WHERE user_id = :user_id", user_id=user_id
    )
    return rows[0][0], rows[0][1], token


async def _spent(hotline: Hotline) -> int:
    async with hotline.db.read() as session:
        return int((await session.execute(select(func.count()).select_from(WsTokenUse))).scalar())


async def test_a_token_opens_one_handshake_only(hotline: Hotline) -> None:
    session_id, public_id, _ = await _session(hotline)
    token = issue_ws_token(KEY, public_id, utcnow())
    first = await consume_ws_token(hotline.db, KEY, token)
    assert first is not None and first.session_id == session_id
    assert await consume_ws_token(hotline.db, KEY, token) is None
    assert await _spent(hotline) == 1
    # A new token for the same session works (once).
    again = issue_ws_token(KEY, public_id, utcnow())
    assert await consume_ws_token(hotline.db, KEY, again) is not None


async def test_the_token_names_the_session_by_its_random_id(hotline: Hotline) -> None:
    session_id, public_id, _ = await _session(hotline)
    assert len(public_id) >= 43 and public_id != str(session_id)
    token = issue_ws_token(KEY, public_id, utcnow())
    claims = read_ws_token(KEY, token, utcnow())
    assert claims is not None and claims.session_public_id == public_id
    payload = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    assert set(payload) == {"sid", "jti", "exp"} and payload["sid"] == public_id
    # Even with the key (a default left in place), a sequential id names no session.
    exp = int(utcnow().timestamp()) + 30
    for sid in (session_id, str(session_id)):
        forged = _forge({"sid": sid, "jti": "0" * 32, "exp": exp})
        assert await consume_ws_token(hotline.db, KEY, forged) is None


async def test_expired_badly_signed_and_malformed_tokens_are_refused(hotline: Hotline) -> None:
    _, public_id, _ = await _session(hotline)
    issued = utcnow()
    token = issue_ws_token(KEY, public_id, issued)
    late = issued + dt.timedelta(seconds=WS_TOKEN_SECONDS + 1)
    assert read_ws_token(KEY, token, late) is None
    assert await consume_ws_token(hotline.db, KEY, token, late) is None
    assert await consume_ws_token(hotline.db, "another-key", token) is None
    exp = int(issued.timestamp()) + 30
    for bad in (
        "",
        "forged.token",
        token.split(".")[0],
        _forge({"sid": public_id, "jti": "short", "exp": exp}),
        _forge({"sid": public_id, "exp": exp}),
        _forge({"sid": "", "jti": "0" * 32, "exp": exp}),
        _forge({"sid": public_id, "jti": "0" * 32, "exp": "soon"}),
    ):
        assert await consume_ws_token(hotline.db, KEY, bad) is None, bad
    assert await _spent(hotline) == 0  # nothing refused by its signature touched the table
    assert await consume_ws_token(hotline.db, KEY, token) is not None  # still good in time


async def test_a_revoked_session_gets_no_socket(hotline: Hotline) -> None:
    _, public_id, bearer = await _session(hotline)
    token = issue_ws_token(KEY, public_id, utcnow())
    r = await hotline.http.post("/auth/logout", headers={"Authorization": f"Bearer {bearer}"})
    assert r.status_code == 204
    assert await consume_ws_token(hotline.db, KEY, token) is None


async def test_spent_tokens_are_forgotten_once_expired(hotline: Hotline) -> None:
    _, public_id, _ = await _session(hotline)
    now = utcnow()
    for _ in range(3):
        assert await consume_ws_token(hotline.db, KEY, issue_ws_token(KEY, public_id, now))
    assert await _spent(hotline) == 3
    async with hotline.db.unit_of_work() as uow:
        await purge_spent_ws_tokens(uow, now)
    assert await _spent(hotline) == 3  # not expired yet
    async with hotline.db.unit_of_work() as uow:
        await purge_spent_ws_tokens(uow, now + dt.timedelta(seconds=WS_TOKEN_SECONDS + 1))
    assert await _spent(hotline) == 0


@pytest.mark.pg_only
async def test_racing_handshakes_in_two_processes_spend_a_token_once(hotline: Hotline) -> None:
    _, public_id, _ = await _session(hotline)
    token = issue_ws_token(KEY, public_id, utcnow())
    engines = [Database(make_engine(hotline.settings.database_url, pool_size=10)) for _ in "ab"]
    try:
        results = await asyncio.gather(
            *(consume_ws_token(engines[n % 2], KEY, token) for n in range(40))
        )
    finally:
        for db in engines:
            await db.dispose()
    assert sum(r is not None for r in results) == 1


async def test_a_second_handshake_with_the_same_token_is_refused(server: Server) -> None:  # noqa: F811
    volunteer = await _volunteer(server)
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        r = await client.post(
            "/auth/ws-token", headers={"Authorization": f"Bearer {volunteer.token}"}
        )
    token = r.json()["token"]
    url = f"{server.ws_url}/ws/agent?token={token}"
    async with websockets.connect(url) as first:
        assert json.loads(await first.recv())["type"] == "snapshot"
        async with websockets.connect(url) as second:
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await second.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4001
    # A fresh token opens a fresh socket.
    async with await _connect(server, "agent", volunteer.token) as again:
        assert json.loads(await again.recv())["type"] == "snapshot"
