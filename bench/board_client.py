"""The board benchmark's load client: many tote-board viewers in one process.

``python -m bench.board_client`` speaks JSON lines (commands on stdin, answers on
stdout), as ``bench/fanout_client.py`` does, and is started by ``bench/board.py``
(through ``bench.fanout.Child``). Each viewer is one plain HTTP/1.1 connection
holding ``GET /board/stream`` open, read with asyncio streams (no SSE library: ten
thousand of them must cost the client little). A viewer notes, for every
``totals.updated`` frame, when it arrived (``time.time()``), the figures' ``count``
and their ``updated_at`` (when the server wrote the totals event, just before its
commit).

``python -m bench.board_client bare PORT`` is the raw ceiling the app is compared with
in the same run: a bare asyncio server holding the same viewers, which writes one
frame of the same size to every socket on each ``push`` (chunked HTTP, no framework,
no database): what the machine and the kernel allow one Python process.

Commands: ``connect`` {host, port, path, viewers, concurrency, first_frame_timeout} opens the
viewers and waits for each one's first frame (the current figures); ``measure``
starts the window; ``report`` {acks: {count: ack time}} answers the delivery
samples of the window (ms after ``updated_at``, and after the acknowledgement of the
pledge that made the count), the viewers' last counts and errors; ``close`` drops
the viewers; ``exit``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import sys
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import orjson

from bench.fanout_client import raise_nofile, reply, stdin_reader, until

FRAME_END = b"\n\n"
DATA = b"data: "


class Viewer:
    """One board: a connection on ``/board/stream`` and what it received."""

    __slots__ = ("arrivals", "closed", "error", "frames", "last_count", "writer")

    def __init__(self) -> None:
        self.frames = 0
        self.last_count = -1
        self.error: str | None = None
        self.closed = False
        self.writer: asyncio.StreamWriter | None = None
        # (arrival time, count, updated_at) of the frames of the measured window.
        self.arrivals: list[tuple[float, int, str]] | None = None

    async def run(self, host: str, port: int, path: str) -> None:
        try:
            reader, writer = await asyncio.open_connection(host, port)
            self.writer = writer
            writer.write(
                f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
                "Accept: text/event-stream\r\nCache-Control: no-cache\r\n\r\n".encode()
            )
            head = await reader.readuntil(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 200"):
                raise RuntimeError(head.split(b"\r\n", 1)[0].decode())
            buffer = b""
            while True:
                chunk = await reader.read(65536)
                if not chunk:
                    break
                now = time.time()
                buffer += chunk
                # Each frame went out as one chunk of the chunked body: the chunk sizes
                # sit between frames, never inside one.
                while (end := buffer.find(FRAME_END)) >= 0:
                    frame, buffer = buffer[:end], buffer[end + 2 :]
                    start = frame.find(DATA)
                    if start >= 0:
                        self._frame(now, frame[start + len(DATA) :])
        except (OSError, RuntimeError, asyncio.IncompleteReadError) as exc:
            self.error = f"{type(exc).__name__}: {exc}"[:200]
        finally:
            self.closed = True

    def _frame(self, now: float, data: bytes) -> None:
        figures = orjson.loads(data)
        self.frames += 1
        self.last_count = figures["count"]
        if self.arrivals is not None:
            self.arrivals.append((now, figures["count"], figures["updated_at"]))

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


class Viewers:
    def __init__(self) -> None:
        self.viewers: list[Viewer] = []
        self.tasks: list[asyncio.Task[None]] = []

    async def connect(self, command: dict[str, Any]) -> dict[str, Any]:
        host, port, path = command["host"], int(command["port"]), command["path"]
        gate = asyncio.Semaphore(int(command.get("concurrency", 64)))
        started = time.monotonic()

        async def one() -> None:
            viewer = Viewer()
            self.viewers.append(viewer)
            async with gate:
                task = asyncio.create_task(viewer.run(host, port, path))
                self.tasks.append(task)
                # The next connection opens once this one shows its first figures.
                await until(
                    lambda: viewer.frames > 0 or viewer.closed, command["first_frame_timeout"], 0.01
                )

        await asyncio.gather(*(one() for _ in range(int(command["viewers"]))))
        return {
            "viewers": len(self.viewers),
            "with_first_frame": sum(v.frames > 0 for v in self.viewers),
            "errors": dict(Counter(v.error for v in self.viewers if v.error)),
            "seconds": round(time.monotonic() - started, 1),
        }

    def measure(self) -> None:
        for viewer in self.viewers:
            viewer.arrivals = []

    def report(self, acks: dict[str, float]) -> dict[str, Any]:
        after_commit: list[float] = []
        after_pledge: list[float] = []
        messages = 0
        frames_per_viewer: list[int] = []
        parsed: dict[str, float] = {}
        fromiso: Callable[[str], dt.datetime] = dt.datetime.fromisoformat
        for viewer in self.viewers:
            arrivals = viewer.arrivals or []
            frames_per_viewer.append(len(arrivals))
            for at, count, updated_at in arrivals:
                messages += 1
                stamp = parsed.get(updated_at)
                if stamp is None:
                    stamp = parsed[updated_at] = fromiso(updated_at).timestamp()
                after_commit.append(round((at - stamp) * 1000, 2))
                ack = acks.get(str(count))
                if ack is not None:
                    after_pledge.append(round((at - ack) * 1000, 2))
        return {
            "messages": messages,
            "after_commit_ms": after_commit,
            "after_pledge_ack_ms": after_pledge,
            "frames_per_viewer": dict(Counter(frames_per_viewer)),
            "last_counts": dict(Counter(v.last_count for v in self.viewers)),
            "open": sum(not v.closed for v in self.viewers),
            "errors": dict(Counter(v.error for v in self.viewers if v.error)),
        }

    async def close(self) -> None:
        for viewer in self.viewers:
            viewer.close()
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


async def client_main() -> None:
    nofile = raise_nofile()
    viewers = Viewers()
    reader = await stdin_reader()
    reply({"ok": True, "nofile": nofile})
    while True:
        line = await reader.readline()
        if not line:
            break
        command = json.loads(line)
        name = command["cmd"]
        if name == "connect":
            reply(await viewers.connect(command))
        elif name == "measure":
            viewers.measure()
            reply({"ok": True})
        elif name == "report":
            reply(viewers.report(command["acks"]))
        elif name == "close":
            await viewers.close()
            viewers = Viewers()
            reply({"ok": True})
        elif name == "exit":
            reply({"ok": True})
            break
    await viewers.close()


# --- the bare server ------------------------------------------------------------------


def chunk(frame: bytes) -> bytes:
    """One chunk of a chunked HTTP body."""
    return b"%x\r\n%s\r\n" % (len(frame), frame)


def bare_frame(count: int, size: int) -> bytes:
    figures = {"count": count, "updated_at": dt.datetime.now(dt.UTC).isoformat(), "pad": ""}
    figures["pad"] = "x" * max(0, size - len(orjson.dumps(figures)))
    return b"event: totals.updated\ndata: " + orjson.dumps(figures) + b"\n\n"


async def bare_main(port: int) -> None:
    raise_nofile()
    writers: set[asyncio.StreamWriter] = set()
    size = 400
    head = (
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
        b"cache-control: no-store\r\ntransfer-encoding: chunked\r\n\r\n"
    )

    async def viewer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(head + chunk(bare_frame(0, size)))
            writers.add(writer)
            await reader.read()  # until the viewer goes
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            writers.discard(writer)
            writer.close()

    server = await asyncio.start_server(viewer, "127.0.0.1", port, backlog=4096)
    reader = await stdin_reader()
    reply({"ok": True})
    while True:
        line = await reader.readline()
        if not line:
            break
        command = json.loads(line)
        if command["cmd"] == "push":
            size = int(command.get("size", size))
            # Encoded once, written to every socket: the least a broadcast can cost.
            data = chunk(bare_frame(int(command["count"]), size))
            for writer in list(writers):
                writer.transport.write(data)
            reply({"ok": True, "writes": len(writers)})
        elif command["cmd"] == "exit":
            reply({"ok": True})
            break
    server.close()


def main() -> int:
    bare = sys.argv[1:2] == ["bare"]
    try:
        import uvloop

        runner: Callable[[Any], Any] = uvloop.run
    except ImportError:  # pragma: no cover
        runner = asyncio.run
    runner(bare_main(int(sys.argv[2])) if bare else client_main())
    return 0


if __name__ == "__main__":
    sys.exit(main())
