"""Surge mode and standby paging (app/surge), on both databases, through the real app.

The surge passes are driven by the test (``monitor.evaluate`` with its own ``now``),
the background monitor being set to look only once an hour, so each pass is one
the test chose. Paging by SMS posts to a real HTTP receiver started by the test.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from app import signing
from app.db import Database, make_engine, utcnow
from app.surge import monitor
from app.surge.thresholds import Measures, Move, Thresholds, decide
from tests.conftest import Hotline, setup_campaign, wait_for

ROOT = Path(__file__).resolve().parent.parent
QUIET = {"surge_check_seconds": 3600.0}
SMS_SECRET = "sms-secret-for-the-tests-0123456789abcdef"


async def _events(hotline: Hotline, type_: str) -> list[Any]:
    """The events' data, one 1-tuple each (SQLite hands JSON back as text)."""
    rows = await hotline.sql("SELECT data FROM events WHERE type = :t ORDER BY seq", t=type_)
    return [(json.loads(d) if isinstance(d, str) else d,) for (d,) in rows]


async def _waiting_calls(hotline: Hotline, n: int, prefix: str) -> list[str]:
    ids = []
    for i in range(n):
        call_id = f"{prefix}-{i}"
        r = await hotline.incoming(call_id, caller=f"+336120000{i:02d}")
        assert r.status_code == 200, r.text
        ids.append(call_id)
    return ids


async def _hang_up(hotline: Hotline, call_id: str) -> None:
    r = await hotline.telephony({"type": "call.hangup", "call_id": call_id})
    assert r.status_code == 200, r.text


async def _thresholds(hotline: Hotline, queue_id: int, **values: Any) -> None:
    r = await hotline.http.put(f"/queues/{queue_id}/surge", json=values)
    assert r.status_code == 200, r.text


async def test_surge_enters_on_one_threshold_and_leaves_only_past_the_leave_ones(
    hotline_factory: Any,
) -> None:
    hotline = await hotline_factory(**QUIET)
    c = await setup_campaign(hotline, agents=1)  # logged in, paused: nobody serves
    queue_id = c["queue_id"]
    await _thresholds(hotline, queue_id, enter_waiting=3, leave_waiting=1)
    calls = await _waiting_calls(hotline, 2, "h")
    assert await monitor.evaluate(hotline.db) == []  # 2 waiting: below 3
    calls += await _waiting_calls(hotline, 1, "h3")
    [started] = await monitor.evaluate(hotline.db)
    assert started.started and started.reason == "waiting"
    state = (await hotline.http.get(f"/queues/{queue_id}/surge")).json()
    assert state["surge"] is True and state["reason"] == "waiting"
    assert state["measures_at_switch"]["waiting"] == 3 and state["since"] is not None

    # Around the enter threshold: 2, 3, 4, 2 waiting... no flapping, no second start.
    await _hang_up(hotline, calls.pop())
    assert await monitor.evaluate(hotline.db) == []
    calls += await _waiting_calls(hotline, 2, "h4")
    assert await monitor.evaluate(hotline.db) == []
    await _hang_up(hotline, calls.pop())
    await _hang_up(hotline, calls.pop())
    assert await monitor.evaluate(hotline.db) == []  # 2 waiting: still above leave (1)
    assert (await hotline.http.get(f"/queues/{queue_id}/surge")).json()["surge"] is True

    await _hang_up(hotline, calls.pop())  # 1 waiting: past the leave threshold
    [ended] = await monitor.evaluate(hotline.db)
    assert not ended.started
    assert (await hotline.http.get(f"/queues/{queue_id}/surge")).json()["surge"] is False
    assert len(await _events(hotline, "queue.surge_started")) == 1
    assert len(await _events(hotline, "queue.surge_ended")) == 1


async def test_expected_wait_and_minimum_calm_time(hotline_factory: Any) -> None:
    hotline = await hotline_factory(**QUIET)
    c = await setup_campaign(hotline, agents=1)
    queue_id = c["queue_id"]
    await _thresholds(
        hotline,
        queue_id,
        enter_wait_seconds=300,
        leave_wait_seconds=60,
        leave_after_seconds=30,
    )
    [call] = await _waiting_calls(hotline, 1, "w")
    now = utcnow()
    # Nobody serves the queue: the wait is unknown, taken as crossing the threshold.
    [started] = await monitor.evaluate(hotline.db, now)
    assert started.reason == "expected_wait"
    await _hang_up(hotline, call)
    assert await monitor.evaluate(hotline.db, now + dt.timedelta(seconds=1)) == []  # calm starts
    calm_since = await hotline.sql("SELECT calm_since FROM queue_surges")
    assert calm_since[0][0] is not None
    assert await monitor.evaluate(hotline.db, now + dt.timedelta(seconds=20)) == []
    [ended] = await monitor.evaluate(hotline.db, now + dt.timedelta(seconds=32))
    assert not ended.started
    assert len(await _events(hotline, "queue.surge_ended")) == 1


async def test_two_evaluators_switch_a_queue_once(hotline: Hotline, database_url: str) -> None:
    c = await setup_campaign(hotline, agents=1)
    await _thresholds(hotline, c["queue_id"], enter_waiting=1, leave_waiting=0)
    await _waiting_calls(hotline, 1, "race")
    other = Database(make_engine(database_url))  # a second pool: a second "process"
    try:
        now = utcnow()
        mine, theirs = await monitor.observe(hotline.db, now), await monitor.observe(other, now)
        assert not mine[0].surge and not theirs[0].surge  # both decide to start...
        decision = monitor.decide(
            mine[0].thresholds, mine[0].measures, in_surge=False, calm_since=None, now=now
        )
        assert decision is not None and decision.move == Move.START
        results = await asyncio.gather(
            monitor.apply(hotline.db, mine[0], decision, now),
            monitor.apply(other, theirs[0], decision, now),
        )
    finally:
        await other.dispose()
    assert sum(r is not None for r in results) == 1  # ...one switches
    assert len(await _events(hotline, "queue.surge_started")) == 1


async def test_bad_thresholds_and_standby_are_refused_and_change_nothing(
    hotline: Hotline,
) -> None:
    c = await setup_campaign(hotline, agents=1)
    queue_id, agent_id = c["queue_id"], c["agent_ids"][0]
    bad_bodies: list[dict[str, Any]] = [
        {"enter_waiting": 3, "leave_waiting": 3},  # no hysteresis band
        {"enter_waiting": 3},  # half a pair
        {"enter_service_level": 0.8, "leave_service_level": 0.7},  # leave on the bad side
        {},  # no threshold at all
        {"enter_waiting": "many", "leave_waiting": 1},
        {"enter_waiting": 3, "leave_waiting": 1, "colour": "red"},
    ]
    for body in bad_bodies:
        r = await hotline.http.put(f"/queues/{queue_id}/surge", json=body)
        assert r.status_code == 422, (body, r.text)
        assert set(r.json()) >= {"code", "message", "field"}
    assert (await hotline.http.get(f"/queues/{queue_id}/surge")).json()["configured"] is False
    assert (await hotline.http.put("/queues/999999/surge", json={})).status_code in (404, 422)
    r = await hotline.http.put(
        f"/agents/{agent_id}/standby", json={"standby": True, "phone": "not a number"}
    )
    assert r.status_code == 422 and r.json()["field"] == "phone"
    r = await hotline.http.put(
        f"/agents/{agent_id}/standby", json={"standby": True, "phone": "4111 1111 1111 1111"}
    )
    assert r.status_code == 422
    assert await hotline.sql("SELECT * FROM standby_volunteers") == []
    r = await hotline.http.post(f"/queues/{queue_id}/surge/page", json={"agent_ids": "all"})
    assert r.status_code == 422
    assert (await hotline.http.get("/pages", params={"hours": 0})).status_code == 422
    assert await hotline.sql("SELECT * FROM pages") == []


async def test_paging_by_hand_keeps_the_quiet_period(hotline: Hotline) -> None:
    c = await setup_campaign(hotline, agents=3)
    queue_id = c["queue_id"]
    on_break, signed_up, working = c["agent_ids"]
    await hotline.http.post(f"/agents/{on_break}/pause", json={"reason": "break"})
    await hotline.http.post(f"/agents/{working}/ready")
    r = await hotline.http.put(
        f"/agents/{signed_up}/standby", json={"standby": True, "phone": "06 12 34 56 78"}
    )
    assert r.status_code == 200 and r.json()["phone"] == "+33612345678"
    await hotline.http.post(f"/agents/{signed_up}/logout")
    standby = (await hotline.http.get(f"/queues/{queue_id}/surge")).json()["standby"]
    assert {(s["agent_id"], s["standby_as"]) for s in standby} == {
        (on_break, "break"),
        (signed_up, "standby"),
    }
    first = (await hotline.http.post(f"/queues/{queue_id}/surge/page", json={})).json()
    assert sorted(first["paged_agent_ids"]) == sorted([on_break, signed_up])
    again = (await hotline.http.post(f"/queues/{queue_id}/surge/page", json={})).json()
    assert again["paged_agent_ids"] == [] and sorted(again["quiet_agent_ids"]) == sorted(
        [on_break, signed_up]
    )
    pages = (await hotline.http.get("/pages")).json()
    assert len(pages) == 2 and all(p["answered_at"] is None for p in pages)
    assert all(p["sms"] == "none" for p in pages)  # no SMS webhook configured
    assert len(await _events(hotline, "agent.paged")) == 2


async def test_the_shipped_rule_pages_standby_when_surge_starts(hotline_factory: Any) -> None:
    hotline = await hotline_factory(**QUIET)
    c = await setup_campaign(hotline, agents=2)
    queue_id, on_break = c["queue_id"], c["agent_ids"][0]
    await hotline.http.post(f"/agents/{on_break}/pause", json={"reason": "break"})
    await _thresholds(hotline, queue_id, enter_waiting=1, leave_waiting=0)
    await _waiting_calls(hotline, 1, "rule")
    assert len(await monitor.evaluate(hotline.db)) == 1
    paged = await _events(hotline, "agent.paged")
    assert [p[0]["paged_by"] for p in paged] == ["rule:surge-page-standby"]
    assert (await hotline.sql("SELECT agent_id FROM pages")) == [(on_break,)]
    alerts = await _events(hotline, "supervisor.alert")
    assert any("Afflux sur pledges" in a[0]["text"] for a in alerts)


async def test_rule_fact_queue_surge_chooses_the_short_script(hotline_factory: Any) -> None:
    hotline = await hotline_factory(**QUIET)
    c = await setup_campaign(hotline, agents=1)
    queue_id, agent_id = c["queue_id"], c["agent_ids"][0]
    snippet = (ROOT / "app" / "rules" / "defaults" / "surge.yaml").read_text("utf-8")
    r = await hotline.http.put(f"/campaigns/{c['campaign_id']}/rules", json={"source": snippet})
    assert r.status_code == 200, r.text
    await _thresholds(hotline, queue_id, enter_waiting=1, leave_waiting=0)
    await _waiting_calls(hotline, 1, "short")
    assert len(await monitor.evaluate(hotline.db)) == 1
    await hotline.http.post(f"/agents/{agent_id}/ready")  # takes the waiting call
    shown = await wait_for(lambda: _events(hotline, "script.show"))
    assert shown[-1][0]["script"]["name"] == "pledge-short"


async def test_in_surge_every_waiting_caller_is_offered_a_callback(hotline_factory: Any) -> None:
    hotline = await hotline_factory(**QUIET)
    c = await setup_campaign(hotline, agents=1)  # paused: every caller waits
    snippet = (ROOT / "app" / "rules" / "defaults" / "surge.yaml").read_text("utf-8")
    r = await hotline.http.put(f"/campaigns/{c['campaign_id']}/rules", json={"source": snippet})
    assert r.status_code == 200, r.text
    await _thresholds(hotline, c["queue_id"], enter_waiting=2, leave_waiting=0)
    await _waiting_calls(hotline, 1, "calm")
    assert await monitor.evaluate(hotline.db) == []
    await _waiting_calls(hotline, 1, "wave")
    assert len(await monitor.evaluate(hotline.db)) == 1
    await _waiting_calls(hotline, 1, "surge")

    async def offered(call_id: str) -> int:
        rows = await hotline.sql(
            "SELECT args FROM telephony_commands WHERE provider_call_id = :p AND command = 'play'",
            p=call_id,
        )
        args = [row[0] if isinstance(row[0], dict) else json.loads(row[0]) for row in rows]
        return sum(1 for a in args if a.get("prompt") == "callback_offer")

    # The queue offers no callback by itself (no callback_offer_seconds): the rule does.
    assert [await offered(f"{p}-0") for p in ("calm", "wave", "surge")] == [0, 0, 1]


class _Receiver:
    """A real HTTP server standing in for the SMS provider: it fails while told to,
    and processes each idempotency key once."""

    def __init__(self, port: int, fail: int) -> None:
        self.fail = fail
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.processed: list[str] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append((dict(self.headers), body))
                if receiver.fail > 0:
                    receiver.fail -= 1
                    self.send_response(500)
                    self.end_headers()
                    return
                key = json.loads(body)["idempotency_key"]
                if key not in receiver.processed:
                    receiver.processed.append(key)
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_sms_page_is_delivered_once_the_receiver_recovers(hotline_factory: Any) -> None:
    port = _free_port()
    hotline = await hotline_factory(
        sms_webhook_url=f"http://127.0.0.1:{port}/sms",
        sms_webhook_secret=SMS_SECRET,
        sms_poll_seconds=0.05,
    )
    c = await setup_campaign(hotline, agents=1)
    agent_id = c["agent_ids"][0]
    r = await hotline.http.put(
        f"/agents/{agent_id}/standby", json={"standby": True, "phone": "+33612345678"}
    )
    assert r.status_code == 200
    paged = (await hotline.http.post(f"/queues/{c['queue_id']}/surge/page", json={})).json()
    assert paged["paged_agent_ids"] == [agent_id]

    async def attempts() -> int:
        rows = await hotline.sql("SELECT attempts FROM sms_outbox")
        return int(rows[0][0]) if rows and rows[0][0] >= 1 else 0

    await wait_for(attempts)  # the receiver is down: refused, kept for later
    receiver = _Receiver(port, fail=1)  # up, but failing once with a 500
    try:

        async def delivered() -> bool:
            pages = (await hotline.http.get("/pages")).json()
            return pages[0]["sms"] == "delivered"

        await wait_for(delivered, timeout=30)
    finally:
        receiver.stop()
    [(key,)] = await hotline.sql("SELECT idempotency_key FROM sms_outbox")
    assert receiver.processed == [key]  # nothing lost, nothing processed twice
    assert len(receiver.requests) == 2  # the 500, then the delivery
    for headers, body in receiver.requests:
        signing.verify(SMS_SECRET, body, headers)  # raises if unsigned or wrongly signed
        sent = json.loads(body)
        assert sent["idempotency_key"] == key and sent["to"] == "+33612345678"
        assert "Appel aux dons à l'antenne" in sent["text"]  # the campaign's language
    [(delivery, tries)] = await hotline.sql("SELECT delivery, attempts FROM sms_outbox")
    assert delivery == "delivered" and tries >= 3

    # The volunteer's number copied into the settled SMS goes with the retention purge.
    later = utcnow() + dt.timedelta(days=31)
    r = await hotline.http.post("/privacy/purge", json={"as_of": later.isoformat()})
    assert r.status_code == 200 and r.json()["changed"]["sms_pages"] == 1
    assert await hotline.sql("SELECT count(*) FROM sms_outbox") == [(0,)]
    assert len((await hotline.http.get("/pages")).json()) == 1  # the page stays


def test_service_level_enters_below_and_leaves_only_above_its_band() -> None:
    t = Thresholds(enter_service_level=0.6, leave_service_level=0.8)
    now = utcnow()

    def move(sl: float | None, in_surge: bool) -> Move | None:
        decision = decide(t, Measures(0, 0.0, sl), in_surge=in_surge, calm_since=None, now=now)
        return decision.move if decision else None

    assert move(0.7, in_surge=False) is None  # inside the band: no surge
    assert move(0.59, in_surge=False) == Move.START
    assert move(0.7, in_surge=True) is None  # inside the band: surge holds
    assert move(None, in_surge=False) is None  # no call answered: no evidence
    assert move(0.8, in_surge=True) == Move.END
