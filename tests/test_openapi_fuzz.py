"""Schemathesis against the app's own OpenAPI document, on a real uvicorn process.

Every operation of the document is called with data generated from its schema,
valid and invalid (``mode: all``), as an admin (past the 401s) and with no login,
on SQLite and on PostgreSQL. Every check of schemathesis is on, so each answer
must be documented (status, content type, headers, body), never a 5xx, invalid
input refused and a 405 naming the methods in ``Allow``; and the server must log
no error or traceback.

Bounded and repeatable: a fixed seed, ``deterministic`` generation (Hypothesis'
derandomize) and ``MAX_EXAMPLES`` examples an operation for each login and
database, on a database holding one campaign, queue, site, volunteer, connected call and
pledge (so that small ids reach real records). The three phases of the pytest
integration run: the schema's examples, coverage (boundary values of every keyword:
the longest strings, the extreme numbers...) and fuzzing; about 90 seconds for both
databases on the project's 2-core machine. (The coverage phase found the one server
error: a 201-character ``default_queue`` that PostgreSQL refused with a 500.)

One setting widens a check rather than the app: ``positive_data_acceptance`` also
takes 422 and 429 for schema-valid data. JSON Schema cannot say what the API
refuses by design: a card number in any text, a phone number that does not parse,
a field that depends on another ("exactly one of queue_id or number") or on the
caller's role (an admin names the campaign a supervisor's login implies), a
rules file that does not compile, and a login throttled after failures.

One operation is left out: ``GET /board/stream``, the tote board's server-sent
events, whose answer never ends (schemathesis reads a body to its end); it is
streamed by ``tests/test_board_stream.py``, its refusals (an unknown campaign, a
bad id) are the board's ``campaign_id`` checks that ``GET /board/totals`` shares
here. None of the others is slow or stateful by nature over HTTP (the websockets
are not in the document, and the exports of an almost empty database are small).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import schemathesis
from schemathesis.config import SchemathesisConfig

from app.db import Database, make_engine
from app.main import create_app
from tests import procs
from tests.conftest import make_settings, truncate_all
from tests.server_calls import connected_call, pledge_body

SEED = 20261206
MAX_EXAMPLES = 10

CONFIG = SchemathesisConfig.from_dict(
    {
        "seed": SEED,
        "generation": {"max-examples": MAX_EXAMPLES, "deterministic": True, "mode": "all"},
        "checks": {
            # The API refuses some schema-valid data by design (module docstring).
            "positive_data_acceptance": {
                "expected-statuses": ["2xx", "401", "403", "404", "409", "422", "429"]
            }
        },
    }
)
# The document the server serves: the same app, built as it builds itself.
schema = schemathesis.openapi.from_dict(
    create_app(make_settings("sqlite+aiosqlite:///:memory:")).openapi(), config=CONFIG
)


@dataclass
class FuzzTarget:
    server: procs.ServerProcess
    admin_token: str


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def fuzz_database(request: pytest.FixtureRequest) -> str:
    # Module-scoped (one server for every operation), so not the function-scoped
    # ``database_url``: the same session databases, reached the same way.
    name = "pg_database" if request.param == "postgresql" else "sqlite_database"
    url: str = request.getfixturevalue(name)
    return url


@pytest.fixture(scope="module")
async def fuzz_target(
    fuzz_database: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[FuzzTarget]:
    scratch = Database(make_engine(fuzz_database))
    try:
        await truncate_all(scratch)
    finally:
        await scratch.dispose()
    server = await procs.start_server(fuzz_database, log_dir=tmp_path_factory.mktemp("fuzz"))
    try:
        admin = await procs.bootstrap_admin(fuzz_database)
        assert admin is not None
        token = await procs.bearer_token(server.base_url, *admin)
        headers = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(base_url=server.base_url, headers=headers) as http:
            call = await connected_call(http)
            agent = {"Authorization": f"Bearer {call.agent_token}"}
            r = await http.post(
                "/pledges",
                json=pledge_body(call.call_id, 0),
                headers={**agent, "Idempotency-Key": str(uuid.uuid4())},
            )
            assert r.status_code == 201, r.text
            site = {"campaign_id": call.campaign_id, "name": "Caen", "organisation": "Centre"}
            r = await http.post("/sites", json=site)
            assert r.status_code == 201, r.text
        yield FuzzTarget(server, token)
    finally:
        await procs.stop_server(server)


@pytest.fixture(scope="module", params=["admin", "anonymous"])
def login_headers(fuzz_target: FuzzTarget, request: pytest.FixtureRequest) -> dict[str, str]:
    if request.param == "admin":
        return {"Authorization": f"Bearer {fuzz_target.admin_token}"}
    return {}


@schema.exclude(path="/board/stream").parametrize()
def test_every_operation_answers_as_documented(
    case: Any, fuzz_target: FuzzTarget, login_headers: dict[str, str]
) -> None:
    case.call_and_validate(base_url=fuzz_target.server.base_url, headers=login_headers)
    assert not fuzz_target.server.errors(), fuzz_target.server.errors()[:3]
