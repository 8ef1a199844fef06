"""The public tote board's push stream: ``GET /board/stream`` (server-sent events).

One ``BoardStream`` per process. It hears ``totals.updated`` (emitted at most once
a second per campaign by ``app/pledges/live.py``, whichever process saved the
pledges) and ``campaign.updated`` (a new goal or name) through the process's event
feed, which reads other processes' events of these types whether or not a screen
here watches (``EventFeed.always_read``: NOTIFY, then the table). For a campaign
with viewers here it then reads the board figures once (``totals.board``), encodes
them once as one SSE frame (a ``bytes`` object) and hands that same object to every
viewer of the campaign: ten thousand viewers, one read and one encoding.

A viewer's mailbox holds one frame: a newer one replaces one not yet sent (only
the latest figure matters), so a slow viewer neither holds up the others nor falls
behind with stale figures. A viewer's first frame is the campaign's current
figures (cached while the campaign has viewers here), so a board that reconnects
shows the figure of that moment.

Each viewer costs one task and a parked ``receive`` (the disconnect watch), not
sse-starlette's ``EventSourceResponse`` (four tasks and a cancel scope per frame
sent: measured about 100 µs a frame a viewer, a second of one core per update for
10,000 viewers; docs/benchmarks.md). The frames are SSE as sse-starlette's
``ServerSentEvent`` writes them; a comment line every ``KEEPALIVE`` seconds, one
shared frame, keeps proxies from closing a quiet stream.

The frames of a campaign are at least ``interval`` apart here too (a goal edited
just after a totals update waits for the rest of the second): at most one message
a second per campaign on every stream.

What a frame carries is ``BoardOut``: campaign figures, the goal, and the first
name and town of the latest donors who consented to be named on air. Nothing else
of anyone, and the stream accepts nothing from its viewers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

import orjson
from sse_starlette import ServerSentEvent
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from app.background import BackgroundTask, FailedPasses
from app.db import Database, utcnow
from app.errors import NotFound
from app.pledges import live, totals
from app.realtime.feed import EventFeed

log = logging.getLogger(__name__)

# Events after which a campaign's board is read again.
REFRESHING = frozenset({live.EVENT, "campaign.updated"})
# A donor erased or personal data purged (no campaign named): every board here is
# read again, so a name no longer held leaves the screens at once.
PRIVACY_PREFIX = "privacy."
# Sent once at the start of a stream: EventSource reconnects after 2 s, not its 3 s default.
RETRY_FRAME = ServerSentEvent(retry=2000, sep="\n").encode()
KEEPALIVE_FRAME = ServerSentEvent(comment="keep-alive", sep="\n").encode()
KEEPALIVE = 15.0
INTERVAL = 1.0
HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-store"),
    (b"x-accel-buffering", b"no"),  # nginx: pass each frame on at once
    (b"x-content-type-options", b"nosniff"),
]


def frame_of(figures: dict[str, Any], at: str) -> bytes:
    """One SSE frame: ``event: totals.updated`` and the figures as JSON (``updated_at``:
    when they were committed)."""
    data = orjson.dumps({**figures, "updated_at": at}).decode()
    return ServerSentEvent(data=data, event=live.EVENT, sep="\n").encode()


class Viewer:
    """One connected board: a one-place mailbox (a newer frame replaces an unsent one)."""

    __slots__ = ("_frame", "_ready", "campaign_id", "gone")

    def __init__(self, campaign_id: int) -> None:
        self.campaign_id = campaign_id
        self._frame: bytes | None = None
        self._ready = asyncio.Event()
        self.gone = False

    def offer(self, frame: bytes) -> None:
        self._frame = frame  # the stale one, if unsent, is dropped
        self._ready.set()

    def idle(self) -> bool:
        return self._frame is None

    def close(self) -> None:
        """The viewer disconnected: its writer wakes and ends."""
        self.gone = True
        self._ready.set()

    async def next(self) -> bytes | None:
        """The next frame to send; None once the viewer is gone."""
        while True:
            await self._ready.wait()
            self._ready.clear()
            if self.gone:
                return None
            frame, self._frame = self._frame, None
            if frame is not None:
                return frame


class BoardResponse(Response):
    """One viewer's stream: the current figures, then each frame its mailbox gets."""

    media_type = "text/event-stream"

    def __init__(self, stream: BoardStream, viewer: Viewer, first: bytes) -> None:
        super().__init__(media_type="text/event-stream")
        self.stream, self.viewer, self.first = stream, viewer, first

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        viewer = self.viewer
        watch = asyncio.create_task(self._watch(receive))
        try:
            await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
            frame: bytes | None = RETRY_FRAME + self.first
            while frame is not None:
                await send({"type": "http.response.body", "body": frame, "more_body": True})
                frame = await viewer.next()
        except OSError:
            pass  # the viewer went away mid-send (servers of ASGI spec 2.4 may say so)
        finally:
            watch.cancel()
            self.stream.leave(viewer)

    async def _watch(self, receive: Receive) -> None:
        """Wait for the viewer's disconnect (nothing else comes on a GET)."""
        while (await receive())["type"] != "http.disconnect":
            pass
        self.viewer.close()


class BoardStream(BackgroundTask):
    def __init__(
        self,
        db: Database,
        interval: float = INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.db = db
        self.interval = interval
        self.clock = clock
        self._viewers: dict[int, set[Viewer]] = {}
        # The latest frame of each campaign with viewers here (dropped with its last viewer).
        self._current: dict[int, bytes] = {}
        # Bumped by each refresh: a first read that started before one does not cache.
        self._generation: dict[int, int] = {}
        self._reads: dict[int, asyncio.Task[bytes]] = {}
        self._dirty: dict[int, str] = {}  # campaign -> time of the event that marked it
        self._last_sent: dict[int, float] = {}
        self._last_keepalive: dict[int, float] = {}
        self._wake = asyncio.Event()
        self._keepalive: asyncio.Task[None] | None = None
        self.frames = 0  # frames encoded (each shared by all of a campaign's viewers)

    # --- life ----------------------------------------------------------------------

    def attach(self, feed: EventFeed) -> None:
        """Hear every process's ``totals.updated`` and campaign changes (before ``feed.start``)."""
        feed.subscribe(self.on_messages)
        feed.always_read((*REFRESHING, PRIVACY_PREFIX))

    def start(self) -> None:
        self._launch(self._run, name="board-stream")
        self._keepalive = asyncio.create_task(self._keep_alive(), name="board-keepalive")

    async def stop(self) -> None:
        if self._keepalive is not None:
            self._keepalive.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._keepalive
        await super().stop()

    async def _keep_alive(self) -> None:
        """A comment line to the viewers of campaigns quiet for ``KEEPALIVE`` seconds."""
        while True:
            await asyncio.sleep(KEEPALIVE / 3)
            quiet_since = self.clock() - KEEPALIVE
            for campaign_id, group in self._viewers.items():
                last = max(
                    self._last_sent.get(campaign_id, float("-inf")),
                    self._last_keepalive.get(campaign_id, float("-inf")),
                )
                if last > quiet_since:
                    continue
                self._last_keepalive[campaign_id] = self.clock()
                for viewer in group:
                    if viewer.idle():
                        viewer.offer(KEEPALIVE_FRAME)

    @property
    def viewers(self) -> int:
        return sum(len(group) for group in self._viewers.values())

    # --- viewers -------------------------------------------------------------------

    def join(self, campaign_id: int) -> Viewer:
        viewer = Viewer(campaign_id)
        self._viewers.setdefault(campaign_id, set()).add(viewer)
        return viewer

    def leave(self, viewer: Viewer) -> None:
        group = self._viewers.get(viewer.campaign_id)
        if group is None:
            return
        group.discard(viewer)
        if not group:
            # Nobody here watches it: its frame would go stale unrefreshed.
            del self._viewers[viewer.campaign_id]
            self._current.pop(viewer.campaign_id, None)

    async def current(self, campaign_id: int) -> bytes:
        """The campaign's current frame: cached, or read once for all who ask at once."""
        frame = self._current.get(campaign_id)
        if frame is not None:
            return frame
        task = self._reads.get(campaign_id)
        if task is None:
            task = self._reads[campaign_id] = asyncio.create_task(self._first_read(campaign_id))
            task.add_done_callback(lambda _: self._reads.pop(campaign_id, None))
        return await asyncio.shield(task)

    async def _first_read(self, campaign_id: int) -> bytes:
        generation = self._generation.get(campaign_id, 0)
        frame = await self._read(campaign_id, utcnow().isoformat())
        if self._generation.get(campaign_id, 0) == generation and campaign_id in self._viewers:
            self._current[campaign_id] = frame
        return frame

    async def _read(self, campaign_id: int, at: str) -> bytes:
        async with self.db.read() as session:
            figures = await totals.board(session, campaign_id)
        self.frames += 1
        return frame_of(figures, at)

    def response(self, viewer: Viewer, first: bytes) -> BoardResponse:
        return BoardResponse(self, viewer, first)

    # --- updates -------------------------------------------------------------------

    def on_messages(self, messages: list[dict[str, Any]]) -> None:
        """Committed events, every process's: mark the watched campaigns they change."""
        for message in messages:
            if message["type"].startswith(PRIVACY_PREFIX):
                self._current.clear()
                for watched in self._viewers:
                    self._dirty[watched] = message["at"]
                self._wake.set()
                continue
            if message["type"] not in REFRESHING:
                continue
            campaign_id = message["data"].get("campaign_id")
            if campaign_id in self._viewers:
                self._dirty[campaign_id] = message["at"]
                self._wake.set()
            elif campaign_id is not None:
                self._current.pop(campaign_id, None)

    async def _run(self) -> None:
        failures = FailedPasses("board stream")
        wait: float | None = None
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)
            self._wake.clear()
            try:
                wait = await self.flush()
                failures.succeeded()
            except Exception:
                wait = max(self.interval, failures.failed())  # the marks stay: tried again

    async def flush(self) -> float | None:
        """Send each marked campaign that is due; seconds until the next one is."""
        wait: float | None = None
        for campaign_id in sorted(self._dirty):
            due = self._last_sent.get(campaign_id, float("-inf")) + self.interval
            now = self.clock()
            if now < due:
                wait = due - now if wait is None else min(wait, due - now)
                continue
            at = self._dirty[campaign_id]
            await self.refresh(campaign_id, at)
            if self._dirty.get(campaign_id) == at:  # not marked again meanwhile
                del self._dirty[campaign_id]
        return wait

    async def refresh(self, campaign_id: int, at: str) -> None:
        """Read, encode once, and hand the same frame to every viewer of the campaign."""
        self._generation[campaign_id] = self._generation.get(campaign_id, 0) + 1
        try:
            frame = await self._read(campaign_id, at)
        except NotFound:
            return  # the campaign is gone; its viewers keep the last figures
        self._last_sent[campaign_id] = self.clock()
        viewers = self._viewers.get(campaign_id)
        if not viewers:
            return
        self._current[campaign_id] = frame
        for viewer in viewers:
            viewer.offer(frame)
