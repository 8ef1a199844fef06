"""The directory client against the built-in directory running as a real process.

Faults are switched on the server through ``POST /_faults``. Timings are only
checked loosely (a look-up returns within its budget plus a second); what is
checked exactly is the status, the error kind and the counters.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from app.cti.directory import (
    BreakerState,
    DirectoryClient,
    DirectoryResult,
    ErrorKind,
    Status,
    parse_answer,
)
from app.cti.directory_server import DirectoryProcess, entry_for
from tests.conftest import wait_for

LISTED = "+33123456789"  # pinned: Marie Dupont
UNLISTED = "+33612345678"  # pinned: unlisted
BUDGET_MS = 300


def listed_numbers(count: int, prefix: str = "+3314") -> list[str]:
    """Numbers the sample directory lists (seed 1), found by asking it locally."""
    found: list[str] = []
    n = 0
    while len(found) < count:
        number = f"{prefix}{n:07d}"
        if entry_for(number, 1) is not None:
            found.append(number)
        n += 1
    return found


async def server_lookups(directory: DirectoryProcess) -> int:
    async with httpx.AsyncClient(base_url=directory.base_url) as http:
        lookups: int = (await http.get("/_stats")).json()["lookups"]
        return lookups


@pytest.fixture
async def client(directory: DirectoryProcess) -> AsyncIterator[DirectoryClient]:
    await directory.set_faults()
    client = DirectoryClient(
        directory.base_url,
        budget_ms=BUDGET_MS,
        breaker_failures=3,
        breaker_reset_seconds=0.5,
    )
    await client.start()
    yield client
    await client.aclose()
    await directory.set_faults()


async def timed_lookup(
    client: DirectoryClient, number: str | None
) -> tuple[DirectoryResult, float]:
    started = time.monotonic()
    result = await client.lookup(number)
    return result, time.monotonic() - started


# --- answers -----------------------------------------------------------------------


async def test_found_and_not_found(client: DirectoryClient) -> None:
    found = await client.lookup(LISTED)
    assert found.status is Status.FOUND
    assert (found.first_name, found.last_name) == ("Marie", "Dupont")
    assert found.address_lines == ("12 rue de Rivoli",)
    assert (found.postcode, found.city) == ("75004", "Paris")
    assert found.email == "marie.dupont@example.org"
    assert not found.cached
    missing = await client.lookup(UNLISTED)
    assert missing.status is Status.NOT_FOUND
    assert missing.first_name is None
    metrics = client.metrics()
    assert (metrics["hits"], metrics["misses"], metrics["cache_hits"]) == (1, 1, 0)
    assert metrics["latency_ms"]["count"] == 2


async def test_sample_data_is_deterministic_for_any_number(client: DirectoryClient) -> None:
    for number in listed_numbers(3):
        result = await client.lookup(number)
        entry = entry_for(number, 1)
        assert entry is not None
        assert result.status is Status.FOUND
        assert result.last_name == entry["name"]["last"]
        assert result.postcode == entry["address"]["postcode"]
        # A Paris-region fixed line lives in the Paris region.
        assert result.postcode is not None and result.postcode[:2] in {
            "75", "77", "78", "91", "92", "93", "94", "95"
        }  # fmt: skip


async def test_withheld_and_invalid_are_skipped_without_a_request(
    client: DirectoryClient, directory: DirectoryProcess
) -> None:
    before = await server_lookups(directory)
    assert (await client.lookup(None, "withheld")).status is Status.SKIPPED_WITHHELD
    assert (await client.lookup(None, "invalid")).status is Status.SKIPPED_INVALID
    assert (await client.lookup("0123456789")).status is Status.SKIPPED_INVALID
    assert await server_lookups(directory) == before
    metrics = client.metrics()
    assert (metrics["skipped_withheld"], metrics["skipped_invalid"]) == (1, 2)


# --- faults ------------------------------------------------------------------------


async def test_slow_directory_times_out_within_the_budget(
    client: DirectoryClient, directory: DirectoryProcess
) -> None:
    await directory.set_faults(mode="slow", delay_ms=2000)
    result, elapsed = await timed_lookup(client, LISTED)
    assert result.status is Status.TIMEOUT
    assert result.first_name is None
    assert elapsed < BUDGET_MS / 1000 + 1.0, elapsed
    metrics = client.metrics()
    assert metrics["timeouts"] == 1
    assert metrics["errors"] == 0
    assert metrics["latency_ms"]["count"] == 1
    # A timeout is not cached: once the directory is quick again, the number is found.
    await directory.set_faults()
    assert (await client.lookup(LISTED)).status is Status.FOUND


async def test_a_late_answer_is_cached_for_the_next_call(
    client: DirectoryClient, directory: DirectoryProcess
) -> None:
    await directory.set_faults(mode="slow", delay_ms=500, remaining=1)
    result, elapsed = await timed_lookup(client, LISTED)
    assert result.status is Status.TIMEOUT
    assert elapsed < BUDGET_MS / 1000 + 1.0

    async def answered() -> bool:
        return bool(client.metrics()["late_answers"])

    await wait_for(answered, timeout=5)
    before = await server_lookups(directory)
    again = await client.lookup(LISTED)
    assert (again.status, again.cached, again.last_name) == (Status.FOUND, True, "Dupont")
    assert await server_lookups(directory) == before


async def test_answer_just_inside_the_budget_is_used(
    client: DirectoryClient, directory: DirectoryProcess
) -> None:
    await directory.set_faults(mode="slow", delay_ms=50)
    assert (await client.lookup(LISTED)).status is Status.FOUND


@pytest.mark.parametrize(
    ("mode", "kind"),
    [
        ("http500", ErrorKind.HTTP_5XX),
        ("malformed", ErrorKind.MALFORMED),
        ("wrong_content_type", ErrorKind.CONTENT_TYPE),
    ],
)
async def test_broken_answers_are_errors_of_their_kind(
    client: DirectoryClient, directory: DirectoryProcess, mode: str, kind: ErrorKind
) -> None:
    await directory.set_faults(mode=mode)
    result = await client.lookup(LISTED)
    assert result.status is Status.ERROR
    assert result.error_kind is kind
    assert result.first_name is None
    metrics = client.metrics()
    assert metrics["errors"] == 1
    assert metrics["errors_by_kind"][kind.value] == 1
    assert sum(metrics["errors_by_kind"].values()) == 1
    # Errors are not cached.
    await directory.set_faults()
    assert (await client.lookup(LISTED)).status is Status.FOUND


async def test_connection_refused_once_the_server_is_stopped() -> None:
    with DirectoryProcess(faults=False) as process:
        client = DirectoryClient(process.base_url, budget_ms=BUDGET_MS)
        await client.start()
        try:
            assert (await client.lookup(LISTED)).status is Status.FOUND
            process.stop()
            result, elapsed = await timed_lookup(client, UNLISTED)
        finally:
            await client.aclose()
    assert result.status is Status.ERROR
    assert result.error_kind is ErrorKind.CONNECT
    assert elapsed < BUDGET_MS / 1000 + 1.0
    assert client.metrics()["errors_by_kind"]["connect"] == 1


async def test_bearer_token() -> None:
    with DirectoryProcess(faults=False, token="s3cret") as process:
        anonymous = DirectoryClient(process.base_url, budget_ms=BUDGET_MS)
        authorised = DirectoryClient(process.base_url, budget_ms=BUDGET_MS, token="s3cret")
        try:
            refused = await anonymous.lookup(LISTED)
            accepted = await authorised.lookup(LISTED)
        finally:
            await anonymous.aclose()
            await authorised.aclose()
    assert (refused.status, refused.error_kind) == (Status.ERROR, ErrorKind.HTTP_4XX)
    assert accepted.status is Status.FOUND


async def test_no_exception_escapes_even_from_a_bug() -> None:
    def explode(request: httpx.Request) -> httpx.Response:
        raise RuntimeError("bug")

    client = DirectoryClient("http://directory.invalid", transport=httpx.MockTransport(explode))
    result = await client.lookup(LISTED)
    await client.aclose()
    assert (result.status, result.error_kind) == (Status.ERROR, ErrorKind.INTERNAL)
    assert client.metrics()["errors_by_kind"]["internal"] == 1


async def test_cancelling_a_lookup_cancels_it(
    client: DirectoryClient, directory: DirectoryProcess
) -> None:
    await directory.set_faults(mode="slow", delay_ms=2000)
    task = asyncio.create_task(client.lookup(LISTED))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert client.metrics()["timeouts"] == 0


async def test_disabled_directory() -> None:
    client = DirectoryClient("")
    assert (await client.lookup(LISTED)).status is Status.DISABLED
    assert client.metrics()["disabled"] == 1


# --- cache -------------------------------------------------------------------------


async def test_cache_keeps_hits_and_misses_for_their_own_ttl(directory: DirectoryProcess) -> None:
    await directory.set_faults()
    client = DirectoryClient(
        directory.base_url, budget_ms=BUDGET_MS, cache_ttl_seconds=2.0, miss_ttl_seconds=0.3
    )
    try:
        start = await server_lookups(directory)
        assert (await client.lookup(LISTED)).status is Status.FOUND
        assert (await client.lookup(UNLISTED)).status is Status.NOT_FOUND
        again_hit, again_miss = await client.lookup(LISTED), await client.lookup(UNLISTED)
        assert again_hit.cached and again_hit.status is Status.FOUND
        assert again_hit.last_name == "Dupont"
        assert again_miss.cached and again_miss.status is Status.NOT_FOUND
        assert await server_lookups(directory) == start + 2
        await asyncio.sleep(0.5)  # the miss has expired, the hit has not
        assert not (await client.lookup(UNLISTED)).cached
        assert (await client.lookup(LISTED)).cached
        assert await server_lookups(directory) == start + 3
        await asyncio.sleep(1.7)  # now the hit has expired too
        assert not (await client.lookup(LISTED)).cached
        assert await server_lookups(directory) == start + 4
        metrics = client.metrics()
        assert (metrics["hits"], metrics["misses"], metrics["cache_hits"]) == (2, 2, 3)
    finally:
        await client.aclose()


async def test_cache_is_bounded(directory: DirectoryProcess) -> None:
    await directory.set_faults()
    client = DirectoryClient(directory.base_url, budget_ms=BUDGET_MS, cache_size=3)
    try:
        numbers = listed_numbers(5)
        for number in numbers:
            await client.lookup(number)
        assert client.metrics()["cache_entries"] == 3
        assert (await client.lookup(numbers[-1])).cached  # the most recent stay
        assert not (await client.lookup(numbers[0])).cached  # the oldest went
    finally:
        await client.aclose()


# --- circuit breaker ---------------------------------------------------------------


async def test_breaker_opens_after_n_failures_and_closes_after_a_good_probe(
    client: DirectoryClient, directory: DirectoryProcess
) -> None:
    await directory.set_faults(mode="http500")
    for number in listed_numbers(3):
        assert (await client.lookup(number)).status is Status.ERROR
    assert client.breaker.state is BreakerState.OPEN
    before = await server_lookups(directory)
    rejected, elapsed = await timed_lookup(client, LISTED)
    assert rejected.status is Status.BREAKER_OPEN
    assert elapsed < 0.1
    assert await server_lookups(directory) == before  # no request while open
    await directory.set_faults()
    await asyncio.sleep(0.6)  # past the reset period
    probe = await client.lookup(LISTED)
    assert probe.status is Status.FOUND
    assert str(client.breaker.state) == "closed"
    assert (await client.lookup(UNLISTED)).status is Status.NOT_FOUND
    metrics = client.metrics()
    assert metrics["breaker_opens"] == 1
    assert metrics["breaker_rejections"] == 1
    assert metrics["errors_by_kind"]["http_5xx"] == 3
    assert metrics["breaker_state"] == "closed"


async def test_breaker_reopens_when_the_probe_fails(
    client: DirectoryClient, directory: DirectoryProcess
) -> None:
    await directory.set_faults(mode="slow", delay_ms=1000)
    for number in listed_numbers(3):
        assert (await client.lookup(number)).status is Status.TIMEOUT
    assert client.breaker.state is BreakerState.OPEN
    await asyncio.sleep(0.6)
    probe = await client.lookup(LISTED)
    assert probe.status is Status.TIMEOUT  # the probe itself failed...
    assert client.breaker.state is BreakerState.OPEN  # ...so the breaker is open again
    assert (await client.lookup(LISTED)).status is Status.BREAKER_OPEN
    metrics = client.metrics()
    assert (metrics["timeouts"], metrics["breaker_opens"]) == (4, 2)


async def test_half_open_lets_one_probe_through(
    client: DirectoryClient, directory: DirectoryProcess
) -> None:
    await directory.set_faults(mode="http500")
    for number in listed_numbers(3):
        await client.lookup(number)
    assert client.breaker.state is BreakerState.OPEN
    await directory.set_faults(mode="slow", delay_ms=100)
    await asyncio.sleep(0.6)
    results = await asyncio.gather(*(client.lookup(n) for n in listed_numbers(4, "+3315")))
    statuses = sorted(r.status.value for r in results)
    assert statuses == ["breaker_open", "breaker_open", "breaker_open", "found"]
    assert str(client.breaker.state) == "closed"


# --- parsing -----------------------------------------------------------------------


def test_parse_answer_checks_the_shape() -> None:
    good = {
        "number": LISTED,
        "found": True,
        "name": {"first": "  Anne ", "last": "Roux"},
        "address": {"lines": ["1 rue Voltaire"], "postcode": "69003", "city": "Lyon"},
        "email": "not-an-email",
    }
    result = parse_answer(LISTED, good)
    assert (result.first_name, result.email) == ("Anne", None)
    assert parse_answer(LISTED, {"found": False}).status is Status.NOT_FOUND
    bad: Any
    for bad in (
        [],
        {"found": "yes"},
        {**good, "number": "+33999999999"},  # someone else's details
        {**good, "name": "Anne Roux"},
        {**good, "name": {}},
        {**good, "address": {"lines": "1 rue Voltaire"}},
        {**good, "email": 42},
    ):
        with pytest.raises(Exception) as caught:
            parse_answer(LISTED, bad)
        assert getattr(caught.value, "kind", None) is ErrorKind.MALFORMED


async def test_embedded_directory_in_a_thread() -> None:
    from app.cti.directory_server import EmbeddedDirectory
    from tests.procs import free_port

    port = free_port()
    embedded = EmbeddedDirectory(port=port)
    assert await asyncio.to_thread(embedded.start)
    client = DirectoryClient(f"http://127.0.0.1:{port}", budget_ms=BUDGET_MS)
    try:
        assert (await client.lookup(LISTED)).status is Status.FOUND
    finally:
        await client.aclose()
        await asyncio.to_thread(embedded.stop)
