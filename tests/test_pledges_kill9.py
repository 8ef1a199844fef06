"""A server killed with SIGKILL in the middle of a burst of pledges loses none that it
acknowledged and, once the volunteer's screen retries with the same keys, counts
none twice.

1,000 pledges (each with its own Idempotency-Key and an amount of its own) are
POSTed by 20 senders at once to real uvicorn processes: one on SQLite, two on
PostgreSQL. When the ``KILL_AFTER``-th acknowledgement (a 201) arrives, the server
(on PostgreSQL, the first of the two) is killed with SIGKILL at once, whatever it
is doing: requests in flight are cut, some after their commit. The server is
started again on the same database, and every pledge not acknowledged is sent
again with its same key and body, as the pledge form does when it gets no answer;
the last acknowledged ones are sent again too (a retry of an answer that was lost).

Then: every pledge was acknowledged, each acknowledged reference is in the table
exactly once with its key's stored answer, no amount (so no pledge) is there twice,
there is one ``pledge.saved`` event a pledge, and the running counters (what the
tote board shows) equal a recount of the pledges table. Nothing depends on timing:
the kill follows a count of acknowledgements.
"""

from __future__ import annotations

import asyncio
import hashlib
import signal
import uuid
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text

from app.db import Database, make_engine
from tests import procs
from tests.conftest import truncate_all
from tests.server_calls import ConnectedCall, connected_call, pledge_body

PLEDGES = 1000
SENDERS = 20
KILL_AFTER = 400
RESENT_ACKNOWLEDGED = 40


class Burst:
    """The pledges of one volunteer's call, sent to whichever servers are up."""

    def __init__(self, call: ConnectedCall) -> None:
        self.call = call
        self.keys = [str(uuid.uuid4()) for _ in range(PLEDGES)]
        self.acknowledged: dict[int, dict[str, Any]] = {}
        self.order: list[int] = []  # pledge numbers in the order their 201 came
        self.unanswered: list[int] = []
        self.refused: list[tuple[int, int, str]] = []
        self.replayed: set[int] = set()  # answered from the key's stored answer

    async def send(self, http: httpx.AsyncClient, base_url: str, n: int) -> bool:
        """POST pledge ``n``; whether a 201 came back."""
        try:
            r = await http.post(
                f"{base_url}/pledges",
                json=pledge_body(self.call.call_id, n),
                headers={
                    "Authorization": f"Bearer {self.call.agent_token}",
                    "Idempotency-Key": self.keys[n],
                },
            )
        except httpx.TransportError:
            self.unanswered.append(n)  # cut by the kill, or sent to a dead server
            return False
        if r.status_code != 201:
            self.refused.append((n, r.status_code, r.text[:200]))
            return False
        body = r.json()
        if r.headers.get("Idempotent-Replayed") == "true":
            self.replayed.add(n)
        previous = self.acknowledged.get(n)
        # A retry of an acknowledged pledge answers the same pledge.
        assert previous is None or previous["reference"] == body["reference"], (previous, body)
        if previous is None:
            self.acknowledged[n] = body
            self.order.append(n)
        return True


async def _send_all(
    burst: Burst, numbers: list[int], base_urls: list[str], on_ack: Any = None
) -> None:
    pending = iter(numbers)
    limits = httpx.Limits(max_connections=SENDERS, max_keepalive_connections=SENDERS)
    async with httpx.AsyncClient(timeout=60, limits=limits) as http:

        async def sender() -> None:
            for n in pending:
                if await burst.send(http, base_urls[n % len(base_urls)], n) and on_ack:
                    on_ack()

        await asyncio.gather(*(sender() for _ in range(SENDERS)))


async def _rows(url: str, query: str) -> list[Any]:
    db = Database(make_engine(url))
    try:
        async with db.read() as session:
            return list((await session.execute(text(query))).all())
    finally:
        await db.dispose()


async def test_acknowledged_pledges_survive_a_kill_9_and_retries_count_once(
    database_url: str, tmp_path: Path
) -> None:
    scratch = Database(make_engine(database_url))
    try:
        await truncate_all(scratch)
    finally:
        await scratch.dispose()
    count = 2 if database_url.startswith("postgresql") else 1
    servers = [await procs.start_server(database_url, log_dir=tmp_path) for _ in range(count)]
    try:
        admin = await procs.bootstrap_admin(database_url)
        assert admin is not None
        token = await procs.bearer_token(servers[0].base_url, *admin)
        async with httpx.AsyncClient(
            base_url=servers[0].base_url, headers={"Authorization": f"Bearer {token}"}
        ) as http:
            call = await connected_call(http)
        burst = Burst(call)
        victim = servers[0]

        def kill_at_count() -> None:
            if len(burst.acknowledged) == KILL_AFTER and victim.proc.poll() is None:
                procs.kill_server(victim)

        await _send_all(burst, list(range(PLEDGES)), [s.base_url for s in servers], kill_at_count)
        await asyncio.to_thread(victim.proc.wait, 30)
        assert victim.proc.returncode == -signal.SIGKILL
        assert len(burst.acknowledged) >= KILL_AFTER
        assert burst.unanswered, "the kill cut nothing: it came too late to test anything"
        assert not burst.refused, burst.refused[:5]

        # The server again, on the same database; the screens send again with the same keys.
        servers[0] = await procs.start_server(database_url, log_dir=tmp_path)
        retried = sorted(set(burst.unanswered) - set(burst.acknowledged))
        resent = burst.order[KILL_AFTER - RESENT_ACKNOWLEDGED : KILL_AFTER]
        before = dict(burst.acknowledged)
        burst.unanswered.clear()
        await _send_all(burst, retried + resent, [s.base_url for s in servers])
        assert not burst.unanswered and not burst.refused, (burst.unanswered, burst.refused[:5])
        assert all(burst.acknowledged[n] == before[n] for n in resent)
        # The resent acknowledged ones are answered from their keys; of the others, those
        # whose commit the kill let through too (how many depends on the moment).
        assert set(resent) <= burst.replayed
        print(
            f"{len(before)} acknowledged before the restart, {len(retried)} sent again,"
            f" {len(burst.replayed - set(resent))} of them already saved"
        )
        errors = [e for s in servers for e in s.errors()]
        assert not errors, errors[:3]
    finally:
        await asyncio.gather(*(procs.stop_server(s) for s in servers), return_exceptions=True)

    # Every pledge acknowledged, each exactly once.
    assert sorted(burst.acknowledged) == list(range(PLEDGES))
    pledges = await _rows(database_url, "SELECT id, reference, amount_minor FROM pledges")
    assert len(pledges) == PLEDGES
    by_reference = {reference: (pledge_id, amount) for pledge_id, reference, amount in pledges}
    assert len(by_reference) == PLEDGES
    assert sorted(amount for _, _, amount in pledges) == [1000 + n for n in range(PLEDGES)]
    for n, answer in burst.acknowledged.items():
        assert by_reference[answer["reference"]] == (answer["id"], 1000 + n), (n, answer)

    # Each key is held by its one pledge (the pledge row carries its key).
    stored = await _rows(
        database_url, "SELECT idem_key, reference FROM pledges WHERE idem_key IS NOT NULL"
    )
    by_key = dict(stored)
    assert len(by_key) == PLEDGES
    for n, key in enumerate(burst.keys):
        reference = by_key[hashlib.sha256(key.encode()).hexdigest()]
        assert reference == burst.acknowledged[n]["reference"]

    # One event a pledge; the running counters equal a recount of the table.
    [[saved]] = await _rows(database_url, "SELECT count(*) FROM events WHERE type = 'pledge.saved'")
    assert saved == PLEDGES
    [recount] = await _rows(
        database_url, "SELECT count(*), sum(amount_minor), sum(paid_minor) FROM pledges"
    )
    [counters] = await _rows(
        database_url,
        "SELECT sum(count), sum(promised_minor), sum(paid_minor) FROM pledge_rollups"
        f" WHERE campaign_id = {call.campaign_id} AND dimension = 'all'",
    )
    assert tuple(counters) == tuple(recount)
    assert recount[0] == PLEDGES and recount[1] == sum(1000 + n for n in range(PLEDGES))
