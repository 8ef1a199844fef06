"""The cost of one whole call, counted: SQL statements and write transactions.

One call goes incoming -> offered -> answered -> hung up -> wrap-up ended (agent
ready again), through the webhook and the REST API, with the shipped rules and
the caller look-up (CTI, the built-in directory as a process) on. The counts are
deterministic: background workers are off (the offer is made in the transaction
that queues the call), and the look-up is awaited before the count is read.

Budget (design §4): at most 30 statements and 8 write transactions per call.
The per-step counts are printed so that a regression names its step.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy import event

from app.cti.directory_server import DirectoryProcess
from tests.conftest import Hotline, setup_campaign, wait_for

STATEMENTS_PER_CALL = 30
WRITE_TRANSACTIONS_PER_CALL = 8
LISTED = "01 23 45 67 89"  # in the sample directory


@dataclass
class Tally:
    statements: list[str] = field(default_factory=list)
    write_transactions: int = 0
    read_transactions: int = 0


class StatementCounter:
    """Counts what the app sends to the database, step by step."""

    def __init__(self, hotline: Hotline) -> None:
        self.engine = hotline.db.engine.sync_engine
        self.steps: dict[str, Tally] = {}
        self.current: Tally | None = None

    def _on_execute(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        # BEGIN is sent as a statement on SQLite only; transactions are counted apart.
        if self.current is not None and not statement.startswith("BEGIN"):
            self.current.statements.append(" ".join(statement.split())[:90])

    def _on_begin(self, conn: Any) -> None:
        if self.current is None:
            return
        if conn.get_execution_options().get("pledgeline_readonly", False):
            self.current.read_transactions += 1
        else:
            self.current.write_transactions += 1

    @contextmanager
    def installed(self) -> Iterator[None]:
        event.listen(self.engine, "before_cursor_execute", self._on_execute)
        event.listen(self.engine, "begin", self._on_begin)
        try:
            yield
        finally:
            event.remove(self.engine, "before_cursor_execute", self._on_execute)
            event.remove(self.engine, "begin", self._on_begin)

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        self.current = self.steps.setdefault(name, Tally())
        try:
            yield
        finally:
            self.current = None

    def report(self) -> str:
        lines = []
        for name, tally in self.steps.items():
            lines.append(
                f"{name}: {len(tally.statements)} statements, "
                f"{tally.write_transactions} write / {tally.read_transactions} read transactions"
            )
            lines += [f"    {s}" for s in tally.statements]
        return "\n".join(lines)

    @property
    def statements(self) -> int:
        return sum(len(t.statements) for t in self.steps.values())

    @property
    def write_transactions(self) -> int:
        return sum(t.write_transactions for t in self.steps.values())


@pytest.fixture
async def counted(
    hotline_factory: Callable[..., Awaitable[Hotline]], directory: DirectoryProcess
) -> AsyncIterator[Hotline]:
    await directory.set_faults()
    yield await hotline_factory(
        background_workers=False, directory_url=directory.base_url, directory_budget_ms=5000
    )


async def test_one_whole_call_stays_within_its_statement_budget(counted: Hotline) -> None:
    hotline = counted
    setup = await setup_campaign(hotline, agents=1)
    agent_id = setup["agent_ids"][0]
    assert (await hotline.http.post(f"/agents/{agent_id}/ready")).status_code == 200
    # The first call of a campaign in a process fills its caches (configuration, rule
    # set): counted is a call in the steady state, the second one.
    await whole_call(hotline, agent_id, StatementCounter(hotline))
    counter = StatementCounter(hotline)
    call_id = await whole_call(hotline, agent_id, counter)
    assert (await hotline.sql("SELECT state FROM calls WHERE id = :i", i=call_id))[0][0] == (
        "completed"
    )
    print(counter.report())
    assert counter.statements <= STATEMENTS_PER_CALL, counter.report()
    assert counter.write_transactions <= WRITE_TRANSACTIONS_PER_CALL, counter.report()


async def whole_call(hotline: Hotline, agent_id: int, counter: StatementCounter) -> int:
    """incoming -> offered -> answered -> hung up -> wrap-up ended; the call's id."""
    provider_id = f"budget-{uuid.uuid4().hex[:8]}"
    with counter.installed():
        with counter.step("call.incoming (+ offer)"):
            r = await hotline.incoming(provider_id, caller=LISTED)
            assert r.status_code == 200, r.text
            call_id = r.json()["call"]["id"]
            assert r.json()["call"]["state"] == "offered"
        with counter.step("caller look-up (CTI, after commit)"):
            lookup = hotline.app.state.caller_lookup
            assert lookup is not None

            async def looked_up() -> bool:
                return await lookup.idle()

            await wait_for(looked_up)
        with counter.step("seat.answered"):
            r = await hotline.telephony(
                {"type": "seat.answered", "call_id": provider_id, "seat": f"agent:{agent_id}"}
            )
            assert r.status_code == 200, r.text
        with counter.step("call.hangup"):
            r = await hotline.telephony({"type": "call.hangup", "call_id": provider_id})
            assert r.status_code == 200, r.text
        with counter.step("POST wrap-up/end"):
            r = await hotline.http.post(f"/agents/{agent_id}/wrap-up/end", json={})
            assert r.status_code == 200, r.text
            assert r.json()["state"] == "available"
    return int(call_id)
