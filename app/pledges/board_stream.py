"""The public tote board's push stream: ``GET /board/stream`` (server-sent events).

One ``BoardStream`` per process. It hears ``totals.updated`` (emitted at most once
a second per campaign by ``app/pledges/live.py``, whichever process saved the
pledges) and ``campaign.updated`` (a new goal or name) through the process's event
feed, which reads other processes' events of these types whether or not a screen
here watches (``EventFeed.always_read``: NOTIFY, then the table). For a campaign
with viewers here it then reads the board figures once (``totals.board``), encodes
them once as one SSE frame (a ``bytes`` object, in one ASGI message) and writes that
same message to every viewer of the campaign in turn, from its one task: ten
thousand viewers, one read, one encoding, no task woken per viewer.

The writes use each viewer's server ``send`` directly: a stream that opens is served
by ``BoardStreamRoute``, the outermost ASGI app, not through the middleware stack
whose three ``send`` wrappers cost more than the write itself (docs/benchmarks.md).
A write runs until the server would wait (``write_now``): a viewer whose socket is
full gets a task that finishes that write, and while it waits the viewer keeps only
the latest frame (one pending write and one kept frame at most), so a slow viewer
neither holds up the others nor falls behind with stale figures. A viewer's first
frame is the campaign's current figures (cached while the campaign has viewers
here), so a board that reconnects shows the figure of that moment; the frames carry
no ``id``, so a reconnect's ``Last-Event-ID`` has nothing to resume: the current
figures are the whole state. Each viewer costs its request's own task, parked on
``receive`` for the disconnect, and nothing per frame but the write. The frames are
SSE as sse-starlette's ``ServerSentEvent`` writes them; a comment line every
``KEEPALIVE`` seconds, one shared frame, keeps proxies from closing a quiet stream.

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
import re
import time
import types
from collections.abc import Callable, Coroutine, Generator
from typing import Any
from urllib.parse import parse_qsl

import orjson
from sqlalchemy import select
from sse_starlette import ServerSentEvent
from starlette.datastructures import State
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.acd.models import Campaign
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


def body_message(frame: bytes) -> Message:
    """The ASGI message of a frame: built once per frame and handed to every viewer's
    ``send`` (servers read messages, they do not change them)."""
    return {"type": "http.response.body", "body": frame, "more_body": True}


KEEPALIVE_MESSAGE = body_message(KEEPALIVE_FRAME)


def write_now(send: Send, message: Message) -> asyncio.Task[None] | None:
    """Call ``send`` and run it here until it first waits: None if it finished (the
    usual case: the server wrote to the socket at once), else a task that finishes it
    (the server waits for the viewer's socket to drain).

    A task per write would cost a wake-up per viewer and frame; this is what Python
    3.12's eager tasks do (``eager_start``), written out for 3.11.
    """
    call = send(message)
    if not isinstance(call, types.CoroutineType):  # not an ``async def``: no stepping it
        return asyncio.ensure_future(call)
    try:
        waits_on = call.send(None)
    except StopIteration:
        return None
    return asyncio.ensure_future(_rest_of(call, waits_on))


@types.coroutine
def _rest_of(call: Coroutine[Any, Any, None], waits_on: Any) -> Generator[Any, Any, None]:
    """The rest of a coroutine already run until it waited on ``waits_on``: what
    ``yield from`` does, from its first wait on (the task running this hands each
    future the coroutine waits on to the event loop, and its outcome back)."""
    while True:
        try:
            outcome = yield waits_on
        except BaseException as error:  # cancelled, or the awaited future failed
            try:
                waits_on = call.throw(error)
            except StopIteration:
                return
        else:
            try:
                waits_on = call.send(outcome)
            except StopIteration:
                return


class Viewer:
    """One connected board, written to by the campaign's fan-out with the server's own
    ``send``. While a write waits for the viewer's socket to drain, later frames are
    not queued: the latest replaces the one kept (a slow viewer costs one pending
    write and one kept frame, and catches up with the latest figure)."""

    __slots__ = ("_kept", "_started", "_waiting", "campaign_id", "gone", "send")

    def __init__(self, campaign_id: int) -> None:
        self.campaign_id = campaign_id
        self.send: Send | None = None  # the response's, once it starts
        self._started = False  # the head and the first frame sent by the response
        self._waiting: asyncio.Task[None] | None = None  # a write waiting for the socket
        self._kept: Message | None = None  # the latest frame not yet written
        self.gone = False

    def offer(self, message: Message) -> None:
        """Write this frame now or, if the viewer cannot take it yet, keep it as the latest."""
        if self.gone:
            return
        if self._waiting is not None or not self._started:
            self._kept = message  # a stale one kept is dropped
        else:
            self._write(message)

    def ping(self, message: Message) -> None:
        """A keep-alive comment, only to a viewer with nothing under way."""
        if self._started and self._waiting is None and not self.gone:
            self._write(message)

    def start(self, send: Send, first: bytes) -> None:
        """The response sent the head and ``first``: from now on frames are written."""
        self.send, self._started = send, True
        kept, self._kept = self._kept, None
        if kept is not None and kept["body"] is not first:
            self._write(kept)  # a frame newer than the first came meanwhile

    def close(self) -> None:
        self.gone = True
        self._kept = None
        if self._waiting is not None:
            self._waiting.cancel()

    def _write(self, message: Message) -> None:
        assert self.send is not None
        try:
            self._waiting = write_now(self.send, message)
        except OSError:
            self.close()  # the viewer went away (servers of ASGI spec 2.4 may say so)
            return
        except Exception:
            # One viewer's failure is its own: the fan-out goes on to the others.
            log.exception("board stream: a write to a viewer failed; the viewer is dropped")
            self.close()
            return
        if self._waiting is not None:
            self._waiting.add_done_callback(self._drained)

    def _drained(self, write: asyncio.Task[None]) -> None:
        self._waiting = None
        if write.cancelled() or write.exception() is not None:
            self.close()
            return
        kept, self._kept = self._kept, None
        if kept is not None:
            self._write(kept)


class BoardResponse(Response):
    """One viewer's stream: the head and the current figures, then whatever the
    campaign's fan-out writes, until the viewer disconnects."""

    media_type = "text/event-stream"

    def __init__(self, stream: BoardStream, viewer: Viewer, first: bytes) -> None:
        super().__init__(media_type="text/event-stream")
        self.stream, self.viewer, self.first = stream, viewer, first

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        viewer = self.viewer
        try:
            await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
            await send(body_message(RETRY_FRAME + self.first))
            viewer.start(send, self.first)
            # This request's own task parks here: nothing else comes on a GET.
            while (await receive())["type"] != "http.disconnect":
                pass
        except OSError:
            pass  # the viewer went away mid-send (servers of ASGI spec 2.4 may say so)
        finally:
            viewer.close()
            self.stream.leave(viewer)


async def board_campaign(db: Database, campaign_id: int | None) -> int:
    """The campaign a board shows: the one asked for, else the first."""
    if campaign_id is not None:
        return campaign_id
    async with db.read() as session:
        first = await session.scalar(select(Campaign.id).order_by(Campaign.id).limit(1))
    if first is None:
        raise NotFound("no campaign yet", field="campaign_id")
    return int(first)


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
                for viewer in tuple(group):
                    viewer.ping(KEEPALIVE_MESSAGE)

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

    async def open(self, campaign_id: int | None) -> BoardResponse:
        """A viewer of the campaign (the first one if None) and its response, which
        starts with the current figures. NotFound for an unknown campaign."""
        campaign_id = await board_campaign(self.db, campaign_id)
        # Joined before the first read: an update while it reads is kept for it.
        viewer = self.join(campaign_id)
        try:
            first = await self.current(campaign_id)
        except BaseException:
            self.leave(viewer)
            raise
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
        # Written to each viewer in turn, from this one task: a viewer whose socket is
        # full keeps the frame (the latest only) and the others go on.
        message = body_message(frame)
        for viewer in tuple(viewers):
            viewer.offer(message)


# --- the route, outside the middleware stack ---------------------------------------

PATH = "/board/stream"
# A campaign id the fast path takes as is; anything else (a sign, spaces, 19 digits
# that may pass 64 bits, several ids) is left to the ordinary route's validation.
PLAIN_ID = re.compile(r"[0-9]{1,18}")


class BoardStreamRoute:
    """``GET /board/stream`` served before the app's middleware stack: the outermost
    ASGI app of ``create_app`` (app/main.py), so the fan-out writes with the server's
    own ``send``, not through the three ``send`` wrappers of Starlette's and FastAPI's
    middleware (ServerErrorMiddleware, ExceptionMiddleware, AsyncExitStackMiddleware:
    most of a frame's cost for 10,000 viewers, docs/benchmarks.md).

    Only a stream that opens is served here, with the same response as the ordinary
    route (``BoardResponse``: its headers, the current figures first). Any other
    answer is the ordinary route's (``app/pledges/endpoints.py``), so refusals keep
    their JSON body in the viewer's language, their logs and the OpenAPI contract:
    an unknown campaign, an id that is not a plain number, a database error."""

    def __init__(self, app: ASGIApp, state: State) -> None:
        self.app, self.state = app, state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = None
        if scope["type"] == "http" and scope["method"] == "GET" and _route_path(scope) == PATH:
            response = await self._open(scope["query_string"])
        if response is None:
            await self.app(scope, receive, send)
        else:
            await response(scope, receive, send)

    async def _open(self, query_string: bytes) -> BoardResponse | None:
        stream: BoardStream | None = getattr(self.state, "board_stream", None)
        ids = [v for k, v in parse_qsl(query_string.decode("latin-1"), True) if k == "campaign_id"]
        if stream is None or len(ids) > 1 or (ids and not PLAIN_ID.fullmatch(ids[0])):
            return None
        try:
            return await stream.open(int(ids[0]) if ids else None)
        except Exception:
            return None  # the ordinary route answers, with its refusal


def _route_path(scope: Scope) -> str:
    """The path without the app's mount point (``root_path``), as Starlette routes it."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and path.startswith(root + "/"):
        return path[len(root) :]
    return path
