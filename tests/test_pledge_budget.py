"""The cost of one pledge, counted (issue 12, point 1): ``POST /pledges`` is one write
transaction of at most 4 statements (the pledge with its Idempotency-Key, the
roll-up upsert, the audit row, the ``pledge.saved`` event), on both databases; on
PostgreSQL all four are one statement, a transaction of its own, so 1.

Counted as ``tests/test_call_budget.py`` counts a call: every statement the app
sends through the engine and every transaction it begins, in the steady state
(the first pledge of a process fills its caches). Only what the request itself
sends is counted: the ``pledge.saved`` rules run after it, in a task of their own
(``app.rules.service.PledgeRules``), counted apart and printed. On failure the
statements sent are printed.
"""

from __future__ import annotations

import contextvars
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event

from app.auth.service import Role
from tests.conftest import Hotline
from tests.pledge_helpers import key, pledge_body, pledge_setup, user_headers


@pytest.fixture
async def quiet(hotline_factory: Callable[..., Awaitable[Hotline]]) -> Hotline:
    """No background workers: nothing but the request and the rules' task sends SQL."""
    return await hotline_factory(background_workers=False)


STATEMENTS_PER_PLEDGE = 4
# On PostgreSQL the audit row, the roll-ups and the event are CTEs of the pledge's
# statement (``app/pledges/saved_at_once.py``), in autocommit: no BEGIN, no COMMIT.
STATEMENTS_PER_PLEDGE_POSTGRESQL = 1
WRITE_TRANSACTIONS_PER_PLEDGE = 1

# Set in the test's context: the request inherits it, the rules' task does not.
_counting: contextvars.ContextVar[bool] = contextvars.ContextVar("counting", default=False)


class Tally:
    def __init__(self) -> None:
        self.statements: list[str] = []
        self.write_transactions = 0
        self.read_transactions = 0
        self.after: list[str] = []  # sent outside the request (the rules' task)

    def report(self) -> str:
        lines = [
            f"{len(self.statements)} statements, {self.write_transactions} write / "
            f"{self.read_transactions} read transactions in the request:",
            *(f"    {s}" for s in self.statements),
            f"{len(self.after)} statements after it (pledge.saved rules):",
            *(f"    {s}" for s in self.after),
        ]
        return "\n".join(lines)


class Counter:
    """Listens on the engine for the whole test; ``post`` counts one request."""

    def __init__(self, hotline: Hotline) -> None:
        self.hotline = hotline
        self.tally: Tally | None = None

    def on_execute(
        self, conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool
    ) -> None:
        if self.tally is None or statement.startswith("BEGIN"):  # BEGIN: SQLite only
            return
        # An executemany would be several statements for the server: marked, and refused.
        text = ("[executemany] " if many else "") + " ".join(statement.split())[:160]
        (self.tally.statements if _counting.get() else self.tally.after).append(text)

    def on_sent(self, statement: str) -> None:
        """A statement sent past SQLAlchemy: on SQLite the writer's ``BEGIN IMMEDIATE``
        opens its transaction; on PostgreSQL each is a transaction of its own."""
        self.on_execute(None, None, statement, None, None, False)
        opens = statement.startswith("BEGIN") or self.hotline.db.is_postgres
        if opens and self.tally is not None and _counting.get():
            self.tally.write_transactions += 1

    def on_begin(self, conn: Any) -> None:
        if self.tally is None or not _counting.get():
            return
        if conn.get_execution_options().get("pledgeline_readonly", False):
            self.tally.read_transactions += 1
        else:
            self.tally.write_transactions += 1

    @contextmanager
    def installed(self) -> Iterator[Counter]:
        engine = self.hotline.db.engine.sync_engine
        event.listen(engine, "before_cursor_execute", self.on_execute)
        event.listen(engine, "begin", self.on_begin)
        # The pledge's statements go straight to the driver (execute_alone on
        # PostgreSQL, the writer's thread on SQLite): heard here.
        self.hotline.db.on_statement_sent.append(self.on_sent)
        try:
            yield self
        finally:
            self.hotline.db.on_statement_sent.remove(self.on_sent)
            event.remove(engine, "before_cursor_execute", self.on_execute)
            event.remove(engine, "begin", self.on_begin)

    async def post(self, body: dict[str, Any], headers: dict[str, str]) -> Tally:
        self.tally = tally = Tally()
        token = _counting.set(True)
        try:
            r = await self.hotline.http.post("/pledges", json=body, headers=headers)
        finally:
            _counting.reset(token)
        assert r.status_code == 201, r.text
        await self.hotline.app.state.pledge_rules.idle()
        self.tally = None
        return tally


def _check(tally: Tally, hotline: Hotline) -> None:
    print(tally.report())
    budget = STATEMENTS_PER_PLEDGE_POSTGRESQL if hotline.db.is_postgres else STATEMENTS_PER_PLEDGE
    # At least one: a pledge is written (a count that missed a path would pass).
    assert 1 <= len(tally.statements) <= budget, tally.report()
    assert tally.write_transactions <= WRITE_TRANSACTIONS_PER_PLEDGE, tally.report()
    assert tally.read_transactions == 0, tally.report()
    assert not any(s.startswith("[executemany]") for s in tally.statements), tally.report()


async def test_a_volunteers_pledge_is_one_transaction_of_four_statements(
    quiet: Hotline,
) -> None:
    hotline = quiet
    setup = await pledge_setup(hotline)
    headers = setup["agent_headers"]
    with Counter(hotline).installed() as counter:
        # The first pledge of the process fills its caches (configuration, login).
        await counter.post(pledge_body(setup["call_id"]), {**headers, **key()})
        for amount in (2500, 500_000):  # the second is large: its alert rule runs after
            body = pledge_body(setup["call_id"], amount_minor=amount)
            _check(await counter.post(body, {**headers, **key()}), hotline)
    # The large pledge's rule still ran (after the request): a supervisor alert.
    alerts = await hotline.sql("SELECT count(*) FROM events WHERE type = 'supervisor.alert'")
    assert int(alerts[0][0]) >= 1


async def test_a_supervisors_pledge_without_a_call_stays_in_budget(quiet: Hotline) -> None:
    hotline = quiet
    setup = await pledge_setup(hotline)
    headers = await user_headers(hotline, Role.SUPERVISOR, campaign_id=setup["campaign_id"])
    body = {**pledge_body(setup["call_id"]), "call_id": None, "campaign_id": setup["campaign_id"]}
    with Counter(hotline).installed() as counter:
        await counter.post(body, {**headers, **key()})
        _check(await counter.post(body, {**headers, **key()}), hotline)
