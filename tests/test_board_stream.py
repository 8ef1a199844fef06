"""The tote board's push stream (``GET /board/stream``, server-sent events).

The real app, streamed over ASGI in process (httpx's ASGI transport waits for the
whole body, which a stream never ends): the current figures first, then updates
coalesced (counted, with the publisher's second held open by the test instead of
a clock), nothing personal without consent, a consented first name and town, the
figure of the moment after a reconnect, a new goal, and another process's pledges
(PostgreSQL: NOTIFY).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import pytest

from app.cardguard import CODE as CARD_CODE
from tests.conftest import Hotline
from tests.pledge_helpers import key, pledge_body, pledge_setup

PERSONAL = ("Curie", "marie@example.org", "rue de la Paix", "75002", "612345678", "secret note")


class SseStream:
    """One ``GET`` streamed from the app in process: its SSE frames as they come."""

    def __init__(self, app: Any, path: str) -> None:
        self.app = app
        path, _, query = path.partition("?")
        self.scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.4"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": query.encode(),
            "root_path": "",
            "headers": [(b"host", b"testserver"), (b"accept", b"text/event-stream")],
            "client": ("127.0.0.1", 40000),
            "server": ("testserver", 80),
        }
        self.status: int | None = None
        self.headers: dict[str, str] = {}
        self._frames: asyncio.Queue[bytes] = asyncio.Queue()
        self._buffer = b""
        self._gone = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._started = asyncio.Event()
        self.raw = b""  # everything the stream sent
        self.messages: list[dict[str, Any]] = []

    async def _receive(self) -> dict[str, Any]:
        await self._gone.wait()
        return {"type": "http.disconnect"}

    async def _send(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            self.headers = {k.decode(): v.decode() for k, v in message["headers"]}
            self._started.set()
        elif message["type"] == "http.response.body":
            body = message.get("body", b"")
            self.raw += body
            self._buffer += body
            while b"\n\n" in self._buffer:
                frame, self._buffer = self._buffer.split(b"\n\n", 1)
                await self._frames.put(frame)

    async def open(self) -> None:
        self._task = asyncio.create_task(self.app(self.scope, self._receive, self._send))
        await asyncio.wait_for(self._started.wait(), 10)

    async def next(self) -> dict[str, Any]:
        """The next ``totals.updated`` message (pings and the retry line skipped)."""
        while True:
            frame = (await asyncio.wait_for(self._frames.get(), 15)).decode()
            fields = dict(
                line.split(": ", 1) for line in frame.splitlines() if not line.startswith(":")
            )
            if fields.get("event") == "totals.updated":
                message: dict[str, Any] = json.loads(fields["data"])
                self.messages.append(message)
                return message

    async def until(self, check: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        while True:
            message = await self.next()
            if check(message):
                return message

    async def close(self) -> None:
        self._gone.set()
        if self._task is not None:
            await asyncio.wait_for(self._task, 10)


@asynccontextmanager
async def streaming_path(hotline: Hotline, path: str) -> AsyncIterator[SseStream]:
    stream = SseStream(hotline.app, path)
    await stream.open()
    try:
        yield stream
    finally:
        await stream.close()


def streaming(hotline: Hotline, campaign_id: int) -> AbstractAsyncContextManager[SseStream]:
    return streaming_path(hotline, f"/board/stream?campaign_id={campaign_id}")


async def save(hotline: Hotline, setup: dict[str, Any], **fields: Any) -> None:
    r = await hotline.http.post(
        "/pledges",
        json=pledge_body(setup["call_id"], note="secret note", **fields),
        headers={**setup["agent_headers"], **key()},
    )
    assert r.status_code == 201, r.text


async def totals_events(hotline: Hotline, campaign_id: int) -> int:
    rows = await hotline.sql(
        "SELECT COUNT(*) FROM events WHERE type = 'totals.updated' AND campaign_id = :c",
        c=campaign_id,
    )
    return int(rows[0][0])


async def test_current_figures_first_then_one_message_per_coalesced_burst(
    hotline: Hotline,
) -> None:
    setup = await pledge_setup(hotline)
    campaign_id = setup["campaign_id"]
    publisher = hotline.app.state.totals_publisher
    # The second after a totals.updated held open until the test lets it pass.
    publisher.interval = dt.timedelta(hours=1)
    async with streaming(hotline, campaign_id) as stream:
        assert stream.status == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        first = await stream.next()
        assert (first["campaign_id"], first["count"], first["latest"]) == (campaign_id, 0, [])

        # The first pledge: published at once (no totals.updated yet this hour).
        await save(hotline, setup, amount_minor=1000)
        one = await stream.next()
        assert (one["count"], one["promised_minor"]) == (1, 1000)
        assert one["latest"] == []  # no consent, no name
        # A burst of four within the held second, one of them consenting.
        await save(hotline, setup, amount_minor=2000)
        await save(
            hotline,
            setup,
            amount_minor=3000,
            first_name="Léa",
            last_name="Secretlastname",
            city="Lyon",
            postcode="69001",
            consent_board=True,
        )
        await save(hotline, setup, amount_minor=4000)
        await save(hotline, setup, amount_minor=5000, first_name="Paul", city="Nantes")
        assert await totals_events(hotline, campaign_id) == 1  # held back: one so far
        publisher.interval = dt.timedelta(0)
        publisher.nudge()
        burst = await stream.next()
        # The whole burst in one message: nothing of 2, 3 or 4 pledges went out.
        assert (burst["count"], burst["promised_minor"]) == (5, 15000)
        assert burst["latest"] == [{"first_name": "Léa", "city": "Lyon"}]
        assert [m["count"] for m in stream.messages] == [0, 1, 5]
        assert await totals_events(hotline, campaign_id) == 2
        assert set(burst) == {
            "campaign_id",
            "campaign",
            "currency",
            "goal_minor",
            "count",
            "promised_minor",
            "paid_minor",
            "average_minor",
            "last_pledge_minor",
            "latest",
            "updated_at",
        }
    text = stream.raw.decode()
    for personal in (*PERSONAL, "Secretlastname", "Marie", "Paul", "Nantes"):
        assert personal not in text, personal
    # The viewer is gone from the stream's books.
    assert hotline.app.state.board_stream.viewers == 0


async def test_every_viewer_shares_one_encoded_frame(hotline: Hotline) -> None:
    setup = await pledge_setup(hotline)
    board = hotline.app.state.board_stream
    async with (
        streaming(hotline, setup["campaign_id"]) as a,
        streaming(hotline, setup["campaign_id"]) as b,
        streaming(hotline, setup["campaign_id"]) as c,
    ):
        for stream in (a, b, c):
            assert (await stream.next())["count"] == 0
        frames = board.frames
        await save(hotline, setup, amount_minor=2500)
        for stream in (a, b, c):
            assert (await stream.until(lambda m: m["count"] == 1))["promised_minor"] == 2500
        # One read and one encoding for the three viewers.
        assert board.frames == frames + 1
        assert board.viewers == 3


class StalledStream(SseStream):
    """A viewer whose socket is full after its first frame: each later write waits
    until the test lets the socket drain (``drained``), as the server's ``send`` does."""

    def __init__(self, app: Any, path: str) -> None:
        super().__init__(app, path)
        self.drained = asyncio.Event()

    async def _send(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body" and self.raw:
            await self.drained.wait()
        await super()._send(message)


def viewer_of(board: Any, campaign_id: int, stream: SseStream) -> Any:
    """The stream's viewer in the board's books (the one writing with its send)."""
    (viewer,) = [v for v in board._viewers[campaign_id] if v.send == stream._send]
    return viewer


async def test_a_slow_viewer_holds_up_nobody_and_gets_only_the_latest_figure(
    hotline: Hotline,
) -> None:
    """While one viewer's write waits for its socket, the others get every frame; it
    keeps one frame, the newest, and catches up with it once its socket drains."""
    setup = await pledge_setup(hotline)
    campaign_id = setup["campaign_id"]
    board = hotline.app.state.board_stream
    hotline.app.state.totals_publisher.interval = dt.timedelta(0)
    board.interval = 0.0
    path = f"/board/stream?campaign_id={campaign_id}"
    slow = StalledStream(hotline.app, path)
    await slow.open()
    try:
        async with streaming(hotline, campaign_id) as fast:
            assert (await slow.next())["count"] == 0
            assert (await fast.next())["count"] == 0
            for count in (1, 2, 3):
                await save(hotline, setup, amount_minor=1000)
                await fast.until(lambda m, n=count: m["count"] == n)
            # One write waits (the frame of one pledge); of the later two it keeps the last.
            viewer = viewer_of(board, campaign_id, slow)
            assert viewer._waiting is not None and not viewer._waiting.done()
            assert b'"count":3,' in viewer._kept["body"]
            assert [m["count"] for m in fast.messages] == [0, 1, 2, 3]
            slow.drained.set()
            await slow.until(lambda m: m["count"] == 3)
            assert [m["count"] for m in slow.messages] == [0, 1, 3]  # 2 was replaced unsent
            assert viewer._waiting is None and viewer._kept is None
            # Full again, then gone: its waiting write ends with it; the others go on.
            slow.drained.clear()
            await save(hotline, setup, amount_minor=1000)
            await fast.until(lambda m: m["count"] == 4)
            waiting = viewer._waiting
            assert waiting is not None
            await slow.close()
            await asyncio.wait([waiting], timeout=10)
            assert waiting.cancelled() and board.viewers == 1
            await save(hotline, setup, amount_minor=1000)
            assert (await fast.until(lambda m: m["count"] == 5))["promised_minor"] == 5000
    finally:
        await slow.close()
    assert board.viewers == 0


class BrokenStream(SseStream):
    """A viewer whose server fails every write after the first frame."""

    async def _send(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body" and self.raw:
            raise RuntimeError("this viewer's server broke")
        await super()._send(message)


async def test_a_viewer_whose_write_fails_is_dropped_alone(hotline: Hotline) -> None:
    setup = await pledge_setup(hotline)
    campaign_id = setup["campaign_id"]
    board = hotline.app.state.board_stream
    hotline.app.state.totals_publisher.interval = dt.timedelta(0)
    board.interval = 0.0
    broken = BrokenStream(hotline.app, f"/board/stream?campaign_id={campaign_id}")
    await broken.open()
    try:
        async with streaming(hotline, campaign_id) as fine:
            assert (await broken.next())["count"] == 0
            assert (await fine.next())["count"] == 0
            viewer = viewer_of(board, campaign_id, broken)
            for count in (1, 2):
                await save(hotline, setup, amount_minor=1000)
                await fine.until(lambda m, n=count: m["count"] == n)
            assert viewer.gone and [m["count"] for m in broken.messages] == [0]
            assert [m["count"] for m in fine.messages] == [0, 1, 2]
    finally:
        await broken.close()
    assert board.viewers == 0


async def test_the_stream_is_written_with_the_servers_own_send(hotline: Hotline) -> None:
    """A stream that opens is served before the middleware stack: the fan-out calls the
    server's ``send`` itself, and the response has the stream's headers all the same."""
    setup = await pledge_setup(hotline)
    campaign_id = setup["campaign_id"]
    board = hotline.app.state.board_stream
    async with streaming(hotline, campaign_id) as stream:
        assert (await stream.next())["count"] == 0
        assert viewer_of(board, campaign_id, stream).send == stream._send
        assert stream.status == 200
        assert stream.headers == {
            "content-type": "text/event-stream; charset=utf-8",
            "cache-control": "no-store",
            "x-accel-buffering": "no",
            "x-content-type-options": "nosniff",
        }
        assert stream.raw.startswith(b"retry: 2000\n\n")
    # An id the fast path leaves alone (a sign): the ordinary route streams it the same.
    async with streaming_path(hotline, f"/board/stream?campaign_id=%2B{campaign_id}") as other:
        assert (await other.next())["campaign_id"] == campaign_id
        assert other.headers == stream.headers
        (viewer,) = board._viewers[campaign_id]
        assert viewer.send != other._send  # wrapped by the middleware
        await save(hotline, setup, amount_minor=700)
        assert (await other.until(lambda m: m["count"] == 1))["promised_minor"] == 700
    # Without an id: the first campaign, on the fast path.
    first_id = (await hotline.sql("SELECT MIN(id) FROM campaigns"))[0][0]
    async with streaming_path(hotline, "/board/stream") as first:
        assert (await first.next())["campaign_id"] == first_id
        assert viewer_of(board, first_id, first).send == first._send
    assert board.viewers == 0


async def test_refusals_are_the_ordinary_routes(hotline: Hotline) -> None:
    """What is not a stream is answered by the app's own route: JSON refusals."""
    r = await hotline.http.get("/board/stream?campaign_id=999999")
    assert r.status_code == 404, r.text
    assert (r.json()["code"], r.json()["field"]) == ("not_found", "campaign_id")
    for odd in ("abc", "", "99999999999999999999"):
        r = await hotline.http.get(f"/board/stream?campaign_id={odd}")
        assert r.status_code == 422 and r.json()["field"] == "campaign_id", (odd, r.text)
    r = await hotline.http.post("/board/stream?campaign_id=1")
    assert r.status_code == 405, r.text
    assert hotline.app.state.board_stream.viewers == 0


async def test_reconnect_shows_the_figure_of_the_moment(hotline: Hotline) -> None:
    setup = await pledge_setup(hotline)
    campaign_id = setup["campaign_id"]
    async with streaming(hotline, campaign_id) as stream:
        assert (await stream.next())["count"] == 0
        await save(hotline, setup, amount_minor=1500)
        await stream.until(lambda m: m["count"] == 1)
    # Disconnected while two pledges are saved.
    await save(hotline, setup, amount_minor=2500)
    await save(hotline, setup, amount_minor=3500)
    async with streaming(hotline, campaign_id) as again:
        first = await again.next()
        assert (first["count"], first["promised_minor"]) == (3, 7500)
        # A second viewer joining now gets the same figure (the cached frame).
        async with streaming(hotline, campaign_id) as other:
            assert (await other.next())["count"] == 3


async def test_a_new_goal_reaches_the_board(hotline: Hotline) -> None:
    setup = await pledge_setup(hotline)
    campaign_id = setup["campaign_id"]
    async with streaming(hotline, campaign_id) as stream:
        assert (await stream.next())["goal_minor"] is None
        r = await hotline.http.patch(f"/campaigns/{campaign_id}", json={"goal_minor": 5_000_000})
        assert r.status_code == 200 and r.json()["goal_minor"] == 5_000_000, r.text
        assert (await stream.next())["goal_minor"] == 5_000_000
    r = await hotline.http.patch(f"/campaigns/{campaign_id}", json={"goal_minor": 0})
    assert r.status_code == 422 and r.json()["field"] == "goal_minor", r.text
    # The card guard covers the new field as every other (CardGuarded bodies).
    r = await hotline.http.patch(f"/campaigns/{campaign_id}", json={"goal_minor": 4111111111111111})
    assert r.status_code == 422 and r.json()["field"] == "goal_minor", r.text
    assert r.json()["code"] == CARD_CODE, r.text
    r = await hotline.http.patch(f"/campaigns/{campaign_id}", json={"goal_minor": None})
    assert r.status_code == 200 and r.json()["goal_minor"] is None, r.text


async def test_unknown_campaign_is_a_404_not_a_stream(hotline: Hotline) -> None:
    stream = SseStream(hotline.app, "/board/stream?campaign_id=999999")
    await stream.open()
    assert stream.status == 404
    await stream.close()
    assert hotline.app.state.board_stream.viewers == 0


async def test_consent_is_saved_and_corrected(hotline: Hotline) -> None:
    setup = await pledge_setup(hotline)
    r = await hotline.http.post(
        "/pledges",
        json=pledge_body(setup["call_id"], consent_board=True),
        headers={**setup["agent_headers"], **key()},
    )
    assert r.status_code == 201 and r.json()["consent_board"] is True, r.text
    reference = r.json()["reference"]
    board = (await hotline.http.get(f"/board/totals?campaign_id={setup['campaign_id']}")).json()
    assert board["latest"] == [{"first_name": "Marie", "city": "Paris"}]
    # Withdrawn: gone from the board.
    r = await hotline.http.patch(
        f"/pledges/{reference}", json={"consent_board": False}, headers=setup["agent_headers"]
    )
    assert r.status_code == 200 and r.json()["consent_board"] is False, r.text
    board = (await hotline.http.get(f"/board/totals?campaign_id={setup['campaign_id']}")).json()
    assert board["latest"] == []
    r = await hotline.http.post(
        "/pledges",
        json=pledge_body(setup["call_id"], consent_board="yes"),
        headers={**setup["agent_headers"], **key()},
    )
    assert r.status_code == 422 and r.json()["field"] == "consent_board", r.text


async def test_another_process_pledges_reach_this_process_viewers(
    hotline_factory: Callable[..., Awaitable[Hotline]], database_url: str
) -> None:
    """Two app processes on one PostgreSQL database: the pledge saved by one moves
    the board streamed by the other (its totals.updated comes by NOTIFY)."""
    if not database_url.startswith("postgresql"):
        pytest.skip("one process only on SQLite")
    watching = await hotline_factory()
    saving = await hotline_factory()  # empties the database: set up through this one
    setup = await pledge_setup(saving)
    async with streaming(watching, setup["campaign_id"]) as stream:
        assert (await stream.next())["count"] == 0
        await save(saving, setup, amount_minor=4200)
        moved = await stream.until(lambda m: m["count"] == 1)
        assert moved["promised_minor"] == 4200


async def test_an_erased_donor_leaves_the_board_at_once(hotline: Hotline) -> None:
    setup = await pledge_setup(hotline)
    async with streaming(hotline, setup["campaign_id"]) as stream:
        await stream.next()
        await save(hotline, setup, first_name="Zoé", city="Brest", consent_board=True)
        named = await stream.until(lambda m: m["count"] == 1)
        assert named["latest"] == [{"first_name": "Zoé", "city": "Brest"}]
        r = await hotline.http.post(
            "/privacy/donors/erase", json={"email": "marie@example.org", "reason": "request 7"}
        )
        assert r.status_code == 200 and r.json()["pledges"] == 1, r.text
        # No pledge changed its totals: the erasure alone sends the boards a new frame.
        erased = await stream.next()
        assert erased["count"] == 1 and erased["latest"] == []
