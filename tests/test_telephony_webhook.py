"""The telephony webhook: signatures, idempotency, out-of-order events, bad input, polling.

Every refusal must leave the database as it was: the tests compare the row counts of
the tables an event can write (calls, events, inbound records, commands) before and
after.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from app import signing
from app.acd.router import dispatch
from app.telephony import commands
from app.telephony.commands import CommandName
from tests.conftest import SECRET, Hotline, setup_campaign, wait_for

WRITTEN_TABLES = ("calls", "events", "telephony_inbound", "telephony_commands")
DIALLED = "+33800000001"


def _event_id() -> str:
    return f"evt-{uuid.uuid4().hex}"


def _incoming(call_id: str, caller: str | None = "0123456789", **extra: Any) -> dict[str, Any]:
    return {
        "event_id": _event_id(),
        "type": "call.incoming",
        "call_id": call_id,
        "caller": caller,
        "dialled": DIALLED,
        **extra,
    }


def _body(event: dict[str, Any]) -> bytes:
    return json.dumps(event).encode()


async def post_raw(
    hotline: Hotline,
    body: bytes,
    *,
    signature: str | bytes | None = None,
    sign: bool = True,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    """POST raw bytes, signed now with the shared secret; or with this signature (and a
    timestamp of now), or with these signature headers, or unsigned (``sign=False``)."""
    # Raw header bytes: some tests send a signature that is not even ASCII.
    raw_headers: dict[bytes, bytes] = {b"Content-Type": b"application/json"}
    if headers is not None:
        raw_headers.update({k.encode(): v.encode("latin-1") for k, v in headers.items()})
    elif signature is not None:
        raw = signature.encode("latin-1") if isinstance(signature, str) else signature
        raw_headers[signing.TIMESTAMP_HEADER.encode()] = str(_now()).encode()
        raw_headers[signing.HEADER.encode()] = raw
    elif sign:
        signed = signing.signed_headers(SECRET, body)
        raw_headers.update({k.encode(): v.encode() for k, v in signed.items()})
    return await hotline.http.post("/telephony/events", content=body, headers=raw_headers)


def _now() -> int:
    return int(time.time())


async def row_counts(hotline: Hotline) -> dict[str, int]:
    return {t: (await hotline.sql(f"select count(*) from {t}"))[0][0] for t in WRITTEN_TABLES}


async def call_row(hotline: Hotline, provider_call_id: str) -> dict[str, Any]:
    rows = await hotline.sql(
        "select id from calls where provider_call_id = :p order by leg", p=provider_call_id
    )
    assert len(rows) == 1, rows
    r = await hotline.http.get(f"/calls/{rows[0][0]}")
    assert r.status_code == 200, r.text
    call: dict[str, Any] = r.json()
    return call


def assert_error(r: httpx.Response, status: int, code: str, field: str | None) -> None:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"code", "message", "field"}, body
    assert body["code"] == code, body
    assert body["field"] == field, body
    assert isinstance(body["message"], str) and body["message"]


async def wait_state(hotline: Hotline, call_id: int, state: str) -> None:
    async def reached() -> bool:
        return bool((await hotline.http.get(f"/calls/{call_id}")).json()["state"] == state)

    await wait_for(reached)


async def ready_campaign(hotline: Hotline, agents: int = 1) -> dict[str, Any]:
    """A campaign whose agents are available (so calls get offered at once)."""
    setup = await setup_campaign(hotline, agents=agents)
    for agent_id in setup["agent_ids"]:
        r = await hotline.http.post(f"/agents/{agent_id}/ready")
        assert r.status_code == 200, r.text
    return setup


# --- signatures ----------------------------------------------------------------------


async def test_correctly_signed_event_is_accepted(hotline: Hotline) -> None:
    await setup_campaign(hotline, agents=0)
    before = await row_counts(hotline)
    r = await post_raw(hotline, _body(_incoming("sig-ok")))
    assert r.status_code == 200, r.text
    assert r.json()["call"]["provider_call_id"] == "sig-ok"
    after = await row_counts(hotline)
    assert after["calls"] == before["calls"] + 1
    assert after["telephony_inbound"] == before["telephony_inbound"] + 1


def _other_secret(body: bytes) -> str:
    return signing.sign("another-secret", _now(), body)


def _wrong_hex(body: bytes) -> str:
    return "sha256=" + "0" * 64


def _bare_hex(body: bytes) -> str:
    return signing.sign(SECRET, _now(), body).removeprefix("sha256=")


def _other_algorithm(body: bytes) -> str:
    return signing.sign(SECRET, _now(), body).replace("sha256=", "sha1=")


def _body_only(body: bytes) -> str:
    # The scheme before timestamps: the HMAC of the body alone. No longer accepted.
    return "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()


def _non_ascii(body: bytes) -> bytes:
    # A header with bytes outside ASCII (decoded as latin-1 by the server).
    return "sha256=é".encode("latin-1")


def _empty(body: bytes) -> str:
    return ""


@pytest.mark.parametrize(
    "make_signature",
    [_other_secret, _wrong_hex, _bare_hex, _other_algorithm, _body_only, _non_ascii, _empty],
    ids=[
        "other-secret",
        "wrong-hex",
        "no-prefix",
        "other-algorithm",
        "body-only",
        "non-ascii",
        "empty",
    ],
)
async def test_bad_signature_is_refused_and_writes_nothing(
    hotline: Hotline, make_signature: Callable[[bytes], str | bytes]
) -> None:
    await setup_campaign(hotline, agents=0)
    before = await row_counts(hotline)
    body = _body(_incoming("sig-bad"))
    r = await post_raw(hotline, body, signature=make_signature(body))
    assert_error(r, 401, "bad_signature", signing.HEADER)
    assert await row_counts(hotline) == before


async def test_missing_signature_is_refused_and_writes_nothing(hotline: Hotline) -> None:
    await setup_campaign(hotline, agents=0)
    before = await row_counts(hotline)
    r = await post_raw(hotline, _body(_incoming("sig-missing")), sign=False)
    assert_error(r, 401, "bad_signature", signing.HEADER)
    assert await row_counts(hotline) == before


async def test_body_altered_after_signing_is_refused(hotline: Hotline) -> None:
    await setup_campaign(hotline, agents=0)
    before = await row_counts(hotline)
    event = _incoming("sig-altered")
    signature = signing.sign(SECRET, _now(), _body(event))
    altered = _body({**event, "caller": "0612345678"})
    r = await post_raw(hotline, altered, signature=signature)
    assert_error(r, 401, "bad_signature", signing.HEADER)
    # Whitespace counts too: the signature covers the exact bytes.
    r = await post_raw(hotline, _body(event) + b" ", signature=signature)
    assert_error(r, 401, "bad_signature", signing.HEADER)
    assert await row_counts(hotline) == before


async def test_signature_is_checked_before_the_body_is_parsed(hotline: Hotline) -> None:
    r = await post_raw(hotline, b"{not json", sign=False)
    assert_error(r, 401, "bad_signature", signing.HEADER)


# --- replays: the signed timestamp ---------------------------------------------------
# Signed as of another time by passing ``now``: no test sleeps through the window.


async def test_an_event_replayed_after_the_window_is_refused_and_writes_nothing(
    hotline: Hotline,
) -> None:
    await setup_campaign(hotline, agents=0)
    before = await row_counts(hotline)
    body = _body(_incoming("replay-old"))
    # As captured 301 s ago: rightly signed, but one second past the 300 s window.
    captured = signing.signed_headers(SECRET, body, now=time.time() - 301)
    r = await post_raw(hotline, body, headers=captured)
    assert_error(r, 401, "stale_signature", signing.TIMESTAMP_HEADER)
    assert await row_counts(hotline) == before
    # The same bytes signed now are accepted: only the time was at fault.
    r = await post_raw(hotline, body)
    assert r.status_code == 200, r.text
    assert r.json()["call"]["provider_call_id"] == "replay-old"


async def test_an_event_dated_in_the_future_is_refused(hotline: Hotline) -> None:
    await setup_campaign(hotline, agents=0)
    before = await row_counts(hotline)
    body = _body(_incoming("replay-future"))
    # An hour ahead: a request made to be replayed later, or a clock far off.
    ahead = signing.signed_headers(SECRET, body, now=time.time() + 3600)
    r = await post_raw(hotline, body, headers=ahead)
    assert_error(r, 401, "stale_signature", signing.TIMESTAMP_HEADER)
    assert await row_counts(hotline) == before


async def test_a_timestamp_changed_without_re_signing_is_refused(hotline: Hotline) -> None:
    """The timestamp is inside the signed bytes: freshening a capture breaks it."""
    await setup_campaign(hotline, agents=0)
    before = await row_counts(hotline)
    body = _body(_incoming("replay-freshened"))
    captured = signing.signed_headers(SECRET, body, now=time.time() - 301)
    freshened = {**captured, signing.TIMESTAMP_HEADER: str(_now())}
    r = await post_raw(hotline, body, headers=freshened)
    assert_error(r, 401, "bad_signature", signing.HEADER)
    assert await row_counts(hotline) == before


async def test_a_signature_a_minute_old_is_accepted(hotline: Hotline) -> None:
    """Clocks drift and deliveries queue: inside the window is fine."""
    await setup_campaign(hotline, agents=0)
    body = _body(_incoming("skew-ok"))
    for now in (time.time() - 60, time.time() + 60):
        r = await post_raw(hotline, body, headers=signing.signed_headers(SECRET, body, now=now))
        assert r.status_code == 200, r.text  # the second: the first answer, replayed


# "1765²": str.isdigit() says yes, int() says no; the server must not answer 500.
@pytest.mark.parametrize(
    "timestamp",
    [None, "", "soon", "-5", "1.5", "1e9", "0x10", "1765²", "9" * 13],
    ids=[
        "missing",
        "empty",
        "word",
        "negative",
        "fraction",
        "exponent",
        "hex",
        "superscript-digit",
        "too-long",
    ],
)
async def test_a_missing_or_garbled_timestamp_is_refused(
    hotline: Hotline, timestamp: str | None
) -> None:
    await setup_campaign(hotline, agents=0)
    before = await row_counts(hotline)
    body = _body(_incoming("ts-garbled"))
    headers = {signing.HEADER: signing.sign(SECRET, _now(), body)}
    if timestamp is not None:
        headers[signing.TIMESTAMP_HEADER] = timestamp
    r = await post_raw(hotline, body, headers=headers)
    assert_error(r, 401, "bad_timestamp", signing.TIMESTAMP_HEADER)
    assert await row_counts(hotline) == before


async def test_the_window_is_a_setting(
    hotline_factory: Callable[..., Awaitable[Hotline]],
) -> None:
    hotline = await hotline_factory(signature_window_seconds=30)
    await setup_campaign(hotline, agents=0)
    body = _body(_incoming("window-30"))
    r = await post_raw(
        hotline, body, headers=signing.signed_headers(SECRET, body, now=time.time() - 60)
    )
    assert_error(r, 401, "stale_signature", signing.TIMESTAMP_HEADER)
    assert (await post_raw(hotline, body)).status_code == 200


# --- idempotency ---------------------------------------------------------------------


async def test_duplicate_delivery_gets_the_first_answer_and_changes_nothing(
    hotline: Hotline,
) -> None:
    await setup_campaign(hotline, agents=0)
    body = _body(_incoming("dup-1"))
    first = await post_raw(hotline, body)
    assert first.status_code == 200, first.text
    after_first = await row_counts(hotline)

    second = await post_raw(hotline, body)
    assert second.status_code == 200, second.text
    assert second.json() == first.json()
    assert await row_counts(hotline) == after_first
    assert len(await hotline.sql("select id from calls where provider_call_id = 'dup-1'")) == 1
    assert (
        len(
            await hotline.sql(
                "select event_id from telephony_inbound where provider_call_id = 'dup-1'"
            )
        )
        == 1
    )


async def test_duplicate_of_a_later_event_returns_its_first_answer(hotline: Hotline) -> None:
    """A replayed hang-up still answers what it answered then, not the call's state now."""
    await setup_campaign(hotline, agents=0)
    await post_raw(hotline, _body(_incoming("dup-2")))
    hangup = _body({"event_id": _event_id(), "type": "call.hangup", "call_id": "dup-2"})
    first = await post_raw(hotline, hangup)
    assert first.status_code == 200, first.text
    assert first.json()["call"]["state"] == "abandoned"
    assert first.json()["note"] is None
    counts = await row_counts(hotline)
    again = await post_raw(hotline, hangup)
    assert again.status_code == 200
    assert again.json() == first.json()
    assert await row_counts(hotline) == counts


async def test_reused_event_id_with_another_body_is_a_conflict(hotline: Hotline) -> None:
    await setup_campaign(hotline, agents=0)
    event = _incoming("reuse-1")
    assert (await post_raw(hotline, _body(event))).status_code == 200
    before = await row_counts(hotline)

    r = await post_raw(hotline, _body({**event, "call_id": "reuse-2"}))
    assert_error(r, 409, "event_id_reused", "event_id")
    r = await post_raw(
        hotline, _body({"event_id": event["event_id"], "type": "call.hangup", "call_id": "reuse-1"})
    )
    assert_error(r, 409, "event_id_reused", "event_id")
    assert await row_counts(hotline) == before
    assert await hotline.sql("select id from calls where provider_call_id = 'reuse-2'") == []
    assert (await call_row(hotline, "reuse-1"))["state"] == "queued"


async def test_concurrent_duplicate_deliveries_make_one_call(hotline: Hotline) -> None:
    await setup_campaign(hotline, agents=0)
    body = _body(_incoming("race-1"))
    answers = await asyncio.gather(*(post_raw(hotline, body) for _ in range(20)))
    assert [a.status_code for a in answers] == [200] * 20, [a.text for a in answers]
    assert all(a.json() == answers[0].json() for a in answers)
    rows = await hotline.sql("select id from calls where provider_call_id = 'race-1'")
    assert len(rows) == 1
    assert answers[0].json()["call"]["id"] == rows[0][0]
    assert len(await hotline.sql("select event_id from telephony_inbound")) == 1
    # One set of effects: each call event and each command exactly once.
    events = await hotline.sql(
        "select type, count(*) from events where call_id = :c group by type", c=rows[0][0]
    )
    assert {t: n for t, n in events} == {
        "call.received": 1,
        "call.queued": 1,
        "call.expected_wait": 1,  # announced once (nobody serving: the wait is unknown)
    }
    commands = await hotline.sql(
        "select command, count(*) from telephony_commands where provider_call_id = 'race-1'"
        " group by command"
    )
    assert {c: n for c, n in commands} == {"answer": 1, "play": 2}  # hold, expected wait


async def test_same_provider_call_in_two_incoming_events_is_one_call(hotline: Hotline) -> None:
    await setup_campaign(hotline, agents=0)
    first = await hotline.incoming("twice-1")
    assert first.status_code == 200, first.text
    counts = await row_counts(hotline)
    second = await hotline.incoming("twice-1", caller="0612345678")
    assert second.status_code == 200, second.text
    assert second.json()["call"]["id"] == first.json()["call"]["id"]
    after = await row_counts(hotline)
    # Only the record of the second event is new: no call, no event, no command.
    assert after == {**counts, "telephony_inbound": counts["telephony_inbound"] + 1}
    call = await call_row(hotline, "twice-1")
    assert call["caller_number"] == "+33123456789"  # the first report stands


async def test_concurrent_incoming_events_for_one_provider_call_make_one_call(
    hotline: Hotline,
) -> None:
    await setup_campaign(hotline, agents=0)
    answers = await asyncio.gather(*(hotline.incoming("race-2") for _ in range(10)))
    assert [a.status_code for a in answers] == [200] * 10, [a.text for a in answers]
    rows = await hotline.sql("select id from calls where provider_call_id = 'race-2'")
    assert len(rows) == 1
    assert {a.json()["call"]["id"] for a in answers} == {rows[0][0]}
    assert len(await hotline.sql("select event_id from telephony_inbound")) == 10
    events = await hotline.sql(
        "select type, count(*) from events where call_id = :c group by type", c=rows[0][0]
    )
    assert {t: n for t, n in events} == {
        "call.received": 1,
        "call.queued": 1,
        "call.expected_wait": 1,  # announced once (nobody serving: the wait is unknown)
    }


# --- out of order --------------------------------------------------------------------


async def test_hangup_before_incoming_ends_the_call_as_abandoned(hotline: Hotline) -> None:
    setup = await ready_campaign(hotline, agents=1)
    agent_id = setup["agent_ids"][0]
    r = await hotline.telephony({"type": "call.hangup", "call_id": "ooo-1"})
    assert r.status_code == 200, r.text
    assert r.json()["call"] is None
    assert r.json()["note"]
    assert await hotline.sql("select id from calls") == []

    r = await hotline.incoming("ooo-1")
    assert r.status_code == 200, r.text
    assert r.json()["call"]["state"] == "abandoned"
    assert r.json()["note"]
    call = await call_row(hotline, "ooo-1")
    assert call["state"] == "abandoned"
    assert call["end_reason"] == "caller_hangup"
    assert call["ended_at"] is not None
    assert call["answered_at"] is None
    # The free volunteer was never offered a caller who had already gone.
    assert await dispatch(hotline.db) == 0
    agent = (await hotline.http.get(f"/agents/{agent_id}")).json()
    assert agent["state"] == "available"
    assert agent["current_call_id"] is None
    bridges = await hotline.sql(
        "select id from telephony_commands where provider_call_id = 'ooo-1' and command = 'bridge'"
    )
    assert bridges == []


async def test_late_seat_answered_after_caller_left_changes_nothing(hotline: Hotline) -> None:
    setup = await ready_campaign(hotline, agents=1)
    agent_id = setup["agent_ids"][0]
    call_id = (await hotline.incoming("ooo-2")).json()["call"]["id"]
    await wait_state(hotline, call_id, "offered")
    r = await hotline.telephony({"type": "call.hangup", "call_id": "ooo-2"})
    assert r.status_code == 200 and r.json()["call"]["state"] == "abandoned", r.text
    assert (await hotline.http.get(f"/agents/{agent_id}")).json()["state"] == "available"
    call_before = await call_row(hotline, "ooo-2")
    counts = await row_counts(hotline)

    r = await hotline.telephony({"type": "seat.answered", "call_id": "ooo-2"})
    assert r.status_code == 200, r.text
    assert r.json()["call"]["state"] == "abandoned"
    assert r.json()["note"] and "no change" in r.json()["note"]
    assert await call_row(hotline, "ooo-2") == call_before
    assert (await hotline.http.get(f"/agents/{agent_id}")).json()["state"] == "available"
    after = await row_counts(hotline)
    assert after == {**counts, "telephony_inbound": counts["telephony_inbound"] + 1}


async def test_repeated_hangup_changes_nothing(hotline: Hotline) -> None:
    setup = await ready_campaign(hotline, agents=1)
    agent_id = setup["agent_ids"][0]
    call_id = (await hotline.incoming("ooo-3")).json()["call"]["id"]
    await wait_state(hotline, call_id, "offered")
    assert (
        await hotline.telephony({"type": "seat.answered", "call_id": "ooo-3"})
    ).status_code == 200
    r = await hotline.telephony({"type": "call.hangup", "call_id": "ooo-3"})
    assert r.status_code == 200 and r.json()["call"]["state"] == "wrap_up", r.text
    call_before = await call_row(hotline, "ooo-3")
    counts = await row_counts(hotline)

    for _ in range(2):
        r = await hotline.telephony({"type": "call.hangup", "call_id": "ooo-3"})
        assert r.status_code == 200, r.text
        assert r.json()["call"]["state"] == "wrap_up"
        assert "no change" in r.json()["note"]
    assert await call_row(hotline, "ooo-3") == call_before
    assert (await hotline.http.get(f"/agents/{agent_id}")).json()["state"] == "wrap_up"
    after = await row_counts(hotline)
    assert after == {**counts, "telephony_inbound": counts["telephony_inbound"] + 2}


async def test_repeated_hangup_of_an_abandoned_call_changes_nothing(hotline: Hotline) -> None:
    await setup_campaign(hotline, agents=0)
    await hotline.incoming("ooo-4")
    assert (await hotline.telephony({"type": "call.hangup", "call_id": "ooo-4"})).json()["call"][
        "state"
    ] == "abandoned"
    call_before = await call_row(hotline, "ooo-4")
    events = await hotline.sql("select count(*) from events")
    r = await hotline.telephony({"type": "call.hangup", "call_id": "ooo-4"})
    assert r.status_code == 200 and "no change" in r.json()["note"], r.text
    assert await call_row(hotline, "ooo-4") == call_before
    assert await hotline.sql("select count(*) from events") == events


# --- bad input -----------------------------------------------------------------------


def _incoming_without(*keys: str) -> bytes:
    event = _incoming("bad-1")
    return _body({k: v for k, v in event.items() if k not in keys})


BAD_BODIES: list[tuple[str, bytes, int, str, str | None]] = [
    ("truncated-json", b'{"event_id": "e1", "type": ', 400, "malformed_json", None),
    ("not-utf8", b"\xff\xfe{}", 400, "malformed_json", None),
    ("empty-body", b"", 400, "malformed_json", None),
    ("deeply-nested", b"[" * 5000 + b"]" * 5000, 400, "malformed_json", None),
    ("json-array", b'[{"type": "call.incoming"}]', 422, "invalid", None),
    ("json-string", b'"call.incoming"', 422, "invalid", None),
    ("json-null", b"null", 422, "invalid", None),
    (
        "unknown-type",
        _body({**_incoming("bad-1"), "type": "call.exploded"}),
        422,
        "unknown_event_type",
        "type",
    ),
    ("missing-type", _incoming_without("type"), 422, "unknown_event_type", "type"),
    (
        "type-not-a-string",
        _body({**_incoming("bad-1"), "type": ["call.incoming"]}),
        422,
        "unknown_event_type",
        "type",
    ),
    ("missing-event-id", _incoming_without("event_id"), 422, "invalid", "event_id"),
    ("missing-call-id", _incoming_without("call_id"), 422, "invalid", "call_id"),
    ("missing-dialled", _incoming_without("dialled"), 422, "invalid", "dialled"),
    ("empty-call-id", _body({**_incoming("bad-1"), "call_id": ""}), 422, "invalid", "call_id"),
    ("numeric-event-id", _body({**_incoming("bad-1"), "event_id": 7}), 422, "invalid", "event_id"),
    ("caller-not-a-string", _body({**_incoming("bad-1"), "caller": 612}), 422, "invalid", "caller"),
    ("extra-field", _body({**_incoming("bad-1"), "colour": "blue"}), 422, "invalid", "colour"),
    (
        "extra-field-on-hangup",
        _body({"event_id": "e-x", "type": "call.hangup", "call_id": "c", "caller": "1"}),
        422,
        "invalid",
        "caller",
    ),
    (
        "seat-answered-unknown-call",
        _body({"event_id": "e-u1", "type": "seat.answered", "call_id": "nobody"}),
        404,
        "unknown_call",
        "call_id",
    ),
    (
        "seat-hangup-unknown-call",
        _body({"event_id": "e-u2", "type": "seat.hangup", "call_id": "nobody"}),
        404,
        "unknown_call",
        "call_id",
    ),
    (
        "unknown-dialled-number",
        _body({**_incoming("bad-1"), "dialled": "+33899999999"}),
        404,
        "not_found",
        "dialled",
    ),
]


@pytest.mark.parametrize(
    ("body", "status", "code", "field"),
    [case[1:] for case in BAD_BODIES],
    ids=[case[0] for case in BAD_BODIES],
)
async def test_bad_input_is_refused_and_writes_nothing(
    hotline: Hotline, body: bytes, status: int, code: str, field: str | None
) -> None:
    await setup_campaign(hotline, agents=0)
    before = await row_counts(hotline)
    r = await post_raw(hotline, body)
    assert_error(r, status, code, field)
    assert await row_counts(hotline) == before


async def test_refused_event_can_be_delivered_again_once_valid(hotline: Hotline) -> None:
    """A refusal records nothing, so the same event_id is free for the corrected event."""
    await setup_campaign(hotline, agents=0)
    event = _incoming("retry-1", dialled="+33899999999")
    assert (await post_raw(hotline, _body(event))).status_code == 404
    r = await post_raw(hotline, _body({**event, "dialled": DIALLED}))
    assert r.status_code == 200, r.text
    assert r.json()["call"]["state"] == "queued"


async def test_oversized_body_is_refused(
    hotline_factory: Callable[..., Awaitable[Hotline]],
) -> None:
    hotline = await hotline_factory(max_body_bytes=1024)
    await setup_campaign(hotline, agents=0)
    before = await row_counts(hotline)
    big = _body(_incoming("big-1", padding="x" * 2000))
    r = await post_raw(hotline, big)
    assert_error(r, 413, "payload_too_large", None)
    # Refused on size before anything else, signed or not.
    r = await post_raw(hotline, big, sign=False)
    assert_error(r, 413, "payload_too_large", None)

    # Without a Content-Length (chunked), the stream is cut at the limit all the same.
    async def chunks() -> Any:
        for start in range(0, len(big), 256):
            yield big[start : start + 256]

    r = await hotline.http.post(
        "/telephony/events",
        content=chunks(),
        headers={"Content-Type": "application/json", **signing.signed_headers(SECRET, big)},
    )
    assert_error(r, 413, "payload_too_large", None)
    assert await row_counts(hotline) == before

    # Just under the limit is fine.
    small = _incoming("big-2")
    assert len(_body(small)) < 1024
    assert (await post_raw(hotline, _body(small))).status_code == 200


# --- number normalisation ------------------------------------------------------------


@pytest.mark.parametrize(
    ("caller", "number", "issue"),
    [
        ("01 23 45 67 89", "+33123456789", None),
        ("+33 1 23 45 67 89", "+33123456789", None),
        ("0033123456789", "+33123456789", None),
        ("0123456789", "+33123456789", None),
        ("anonymous", None, "withheld"),
        (None, None, "withheld"),
        ("12", None, "invalid"),
    ],
)
async def test_caller_number_is_normalised(
    hotline: Hotline, caller: str | None, number: str | None, issue: str | None
) -> None:
    await setup_campaign(hotline, agents=0)
    r = await hotline.incoming("num-1", caller=caller)
    assert r.status_code == 200, r.text
    call = await call_row(hotline, "num-1")
    assert call["caller_number"] == number
    assert call["caller_number_issue"] == issue


async def test_caller_may_be_left_out(hotline: Hotline) -> None:
    await setup_campaign(hotline, agents=0)
    event = {"event_id": _event_id(), "type": "call.incoming", "call_id": "num-2"}
    r = await post_raw(hotline, _body({**event, "dialled": DIALLED}))
    assert r.status_code == 200, r.text
    call = await call_row(hotline, "num-2")
    assert (call["caller_number"], call["caller_number_issue"]) == (None, "withheld")


# --- command polling -----------------------------------------------------------------


async def get_commands(
    hotline: Hotline,
    query: str,
    signature: str | None = "auto",
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    """GET the feed, signed now; or with this signature and a timestamp of now, or
    with these signature headers, or unsigned (``signature=None``)."""
    if headers is None:
        headers = {}
        if signature == "auto":
            headers = signing.signed_headers(SECRET, query.encode())
        elif signature is not None:
            headers = {signing.TIMESTAMP_HEADER: str(_now()), signing.HEADER: signature}
    return await hotline.http.get(f"/telephony/commands?{query}", headers=headers)


async def test_commands_are_polled_in_order_with_paging(hotline: Hotline) -> None:
    setup = await ready_campaign(hotline, agents=1)
    agent_id = setup["agent_ids"][0]
    call_id = (await hotline.incoming("cmd-1")).json()["call"]["id"]
    await wait_state(hotline, call_id, "offered")

    r = await get_commands(hotline, "after=0&limit=100")
    assert r.status_code == 200, r.text
    page = r.json()
    items = [c for c in page["commands"] if c["call_id"] == "cmd-1"]
    assert [c["command"] for c in items] == ["answer", "play", "bridge"]
    ids = [c["id"] for c in page["commands"]]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert page["next_after"] == ids[-1]
    bridge = items[2]
    assert bridge["args"]["agent_id"] == agent_id
    assert bridge["args"]["seat"] == f"agent:{agent_id}"
    # The queue's ring timeout: a platform stops ringing when Pledgeline would.
    assert bridge["args"]["ring_seconds"] == 15
    assert items[1]["args"] == {"message": "hold"}
    assert all(set(c) == {"id", "command", "call_id", "args", "created_at"} for c in items)

    # Paging: one at a time, each page starting after the last id seen.
    seen: list[int] = []
    after = 0
    while True:
        r = await get_commands(hotline, f"after={after}&limit=1")
        assert r.status_code == 200, r.text
        chunk = r.json()
        if not chunk["commands"]:
            assert chunk["next_after"] == after
            break
        assert len(chunk["commands"]) == 1
        seen.append(chunk["commands"][0]["id"])
        after = chunk["next_after"]
        assert after == seen[-1]
    assert seen == ids

    r = await get_commands(hotline, f"after={ids[0]}&limit=100")
    assert [c["id"] for c in r.json()["commands"]] == ids[1:]

    # A hang-up by the volunteer adds a hangup command after the others.
    assert (
        await hotline.telephony({"type": "seat.answered", "call_id": "cmd-1"})
    ).status_code == 200
    assert (await hotline.http.post(f"/agents/{agent_id}/hangup")).status_code == 200
    r = await get_commands(hotline, f"after={ids[-1]}&limit=100")
    assert [(c["command"], c["call_id"]) for c in r.json()["commands"]] == [("hangup", "cmd-1")]


async def test_command_polling_requires_a_signature(hotline: Hotline) -> None:
    setup = await ready_campaign(hotline, agents=1)
    call_id = (await hotline.incoming("cmd-2")).json()["call"]["id"]
    await wait_state(hotline, call_id, "offered")
    assert setup["agent_ids"]

    r = await get_commands(hotline, "after=0&limit=100", signature=None)
    assert_error(r, 401, "bad_signature", signing.HEADER)
    r = await get_commands(
        hotline, "after=0&limit=100", signature=signing.sign("nope", _now(), b"x")
    )
    assert_error(r, 401, "bad_signature", signing.HEADER)
    # Signed for another query string: refused.
    r = await get_commands(
        hotline, "after=0&limit=100", signature=signing.sign(SECRET, _now(), b"after=0&limit=1")
    )
    assert_error(r, 401, "bad_signature", signing.HEADER)
    r = await get_commands(hotline, "after=0&limit=100")
    assert r.status_code == 200 and len(r.json()["commands"]) == 3, r.text


async def test_a_poll_replayed_after_the_window_is_refused(hotline: Hotline) -> None:
    """A captured poll would read the commands (callers, seats) again: it expires too."""
    await ready_campaign(hotline, agents=1)
    call_id = (await hotline.incoming("cmd-replay")).json()["call"]["id"]
    await wait_state(hotline, call_id, "offered")
    query = "after=0&limit=100"

    old = signing.signed_headers(SECRET, query.encode(), now=time.time() - 301)
    r = await get_commands(hotline, query, headers=old)
    assert_error(r, 401, "stale_signature", signing.TIMESTAMP_HEADER)
    ahead = signing.signed_headers(SECRET, query.encode(), now=time.time() + 3600)
    r = await get_commands(hotline, query, headers=ahead)
    assert_error(r, 401, "stale_signature", signing.TIMESTAMP_HEADER)
    freshened = {**old, signing.TIMESTAMP_HEADER: str(_now())}
    r = await get_commands(hotline, query, headers=freshened)
    assert_error(r, 401, "bad_signature", signing.HEADER)
    r = await get_commands(hotline, query, headers={signing.HEADER: old[signing.HEADER]})
    assert_error(r, 401, "bad_timestamp", signing.TIMESTAMP_HEADER)

    r = await get_commands(hotline, query)
    assert r.status_code == 200, r.text
    assert [c["command"] for c in r.json()["commands"]] == ["answer", "play", "bridge"]


async def test_polling_never_skips_a_command_committed_late(
    hotline_factory: Callable[..., Awaitable[Hotline]],
) -> None:
    """PostgreSQL hands out ids at write time: 101 may commit after 102 is visible."""
    hotline = await hotline_factory(telephony_command_gap_grace_seconds=0.5)
    if not hotline.db.is_postgres:
        pytest.skip("SQLite commits one writer at a time: ids become visible in order")
    async with hotline.db.unit_of_work() as uow:
        commands.issue(uow, CommandName.PLAY, "gap-0", message="hold")
    start = (await get_commands(hotline, "after=0&limit=1000")).json()["next_after"]
    written, release = asyncio.Event(), asyncio.Event()

    async def slow_transaction() -> None:
        async with hotline.db.unit_of_work() as uow:
            commands.issue(uow, CommandName.PLAY, "gap-slow", message="hold")
            await uow.write_staged()  # the id is taken now...
            written.set()
            await release.wait()  # ...and committed later

    slow = asyncio.create_task(slow_transaction())
    await written.wait()
    async with hotline.db.unit_of_work() as uow:
        commands.issue(uow, CommandName.PLAY, "gap-fast", message="hold")

    held = (await get_commands(hotline, f"after={start}&limit=100")).json()
    assert held == {"commands": [], "next_after": start}  # not past the missing id
    release.set()
    await slow
    after = (await get_commands(hotline, f"after={start}&limit=100")).json()
    assert [c["call_id"] for c in after["commands"]] == ["gap-slow", "gap-fast"]

    # A rolled-back transaction leaves a gap for good: passed once it is old enough.
    with contextlib.suppress(RuntimeError):
        async with hotline.db.unit_of_work() as uow:
            commands.issue(uow, CommandName.PLAY, "gap-rolled-back", message="hold")
            await uow.write_staged()
            raise RuntimeError("rolled back")
    async with hotline.db.unit_of_work() as uow:
        commands.issue(uow, CommandName.PLAY, "gap-after-rollback", message="hold")
    last = after["next_after"]
    assert (await get_commands(hotline, f"after={last}&limit=100")).json()["commands"] == []

    async def passed() -> list[str]:
        page = (await get_commands(hotline, f"after={last}&limit=100")).json()
        return [c["call_id"] for c in page["commands"]]

    assert await wait_for(passed) == ["gap-after-rollback"]
