"""A small HTTP/1.1 client over asyncio, for load generators that must stay cheap.

httpx costs a few hundred microseconds of CPU per request (its request and
response models, header normalisation, the transport's locks): at 150 calls/s and
five requests a call, that alone would take a sizeable share of a 2-core machine
from the servers being measured. This client does only what the benchmarks need:
keep-alive connections (a pool per server, bounded), a request written in one
``write``, a response parsed from the status line, ``Content-Length`` or chunked
framing, and ``Connection: close``. No redirects, no cookies, no TLS, no
decompression (the benchmarks' servers send none of those).

A request that finds its pooled connection closed by the server before an answer
started (the server's keep-alive timeout) is sent once more on a new connection;
anything else fails with :class:`HttpError`.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any
from urllib.parse import urlsplit

import orjson


class HttpError(Exception):
    """The request got no answer (connection refused or lost, timeout)."""


class Response:
    """The parts of an answer the benchmarks read (names as in httpx)."""

    __slots__ = ("content", "status_code")

    def __init__(self, status_code: int, content: bytes) -> None:
        self.status_code = status_code
        self.content = content

    def json(self) -> Any:
        return orjson.loads(self.content)

    @property
    def text(self) -> str:
        return self.content.decode(errors="replace")


class _Connection(asyncio.Protocol):
    """One keep-alive connection; one request at a time on it."""

    def __init__(self) -> None:
        self.transport: Any = None
        self.buffer = bytearray()
        self.waiter: asyncio.Future[Response] | None = None
        self.closed = False
        self.keep_alive = True
        self.got_bytes = False

    # asyncio.Protocol callbacks ----------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # uvloop: not an asyncio.Transport subclass

    def data_received(self, data: bytes) -> None:
        self.got_bytes = True
        self.buffer += data
        if self.waiter is not None and not self.waiter.done():
            response = self._parse()
            if response is not None:
                self.waiter.set_result(response)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(HttpError(f"connection lost: {exc!r}"))

    # --------------------------------------------------------------------------------------

    def _parse(self) -> Response | None:
        """A whole response from the buffer (and take it out), or None: not all here yet."""
        buffer = self.buffer
        head_end = buffer.find(b"\r\n\r\n")
        if head_end < 0:
            return None
        head = bytes(buffer[:head_end]).split(b"\r\n")
        status = int(head[0][9:12])
        length: int | None = None
        chunked = False
        keep_alive = True
        for line in head[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
            elif name == b"connection":
                keep_alive = b"close" not in value.lower()
        body_start = head_end + 4
        if chunked:
            parsed = _dechunk(buffer, body_start)
            if parsed is None:
                return None
            content, end = parsed
        else:
            if length is None:
                length = 0  # the benchmarks' servers always frame their answers
            end = body_start + length
            if len(buffer) < end:
                return None
            content = bytes(buffer[body_start:end])
        del buffer[:end]
        self.keep_alive = keep_alive
        return Response(status, content)

    async def exchange(self, payload: bytes, timeout: float) -> Response:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.got_bytes = False
        self.transport.write(payload)
        try:
            return await asyncio.wait_for(self.waiter, timeout)
        except TimeoutError as exc:
            self.close()
            raise HttpError("timeout") from exc
        finally:
            self.waiter = None

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


def _dechunk(buffer: bytearray, start: int) -> tuple[bytes, int] | None:
    """A chunked body from ``start``: (content, end offset), or None when incomplete."""
    parts: list[bytes] = []
    position = start
    while True:
        line_end = buffer.find(b"\r\n", position)
        if line_end < 0:
            return None
        size = int(bytes(buffer[position:line_end]).split(b";", 1)[0], 16)
        chunk_start = line_end + 2
        if size == 0:
            trailer_end = buffer.find(b"\r\n\r\n", line_end)
            if trailer_end < 0:
                return None
            return b"".join(parts), trailer_end + 4
        if len(buffer) < chunk_start + size + 2:
            return None
        parts.append(bytes(buffer[chunk_start : chunk_start + size]))
        position = chunk_start + size + 2


class Http1Pool:
    """Keep-alive connections to one server, at most ``connections`` open at once."""

    def __init__(
        self,
        base_url: str,
        *,
        connections: int = 64,
        timeout: float = 60.0,
        headers: dict[str, str] | None = None,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme != "http" or parts.hostname is None:
            raise ValueError(f"plain http:// URLs only, not {base_url!r}")
        self.host = parts.hostname
        self.port = parts.port or 80
        self.timeout = timeout
        self._fixed = (
            f"Host: {self.host}:{self.port}\r\n"
            + "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        ).encode()
        self._idle: deque[_Connection] = deque()
        self._slots = asyncio.Semaphore(connections)
        self.opened = 0

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            transport, protocol = await asyncio.wait_for(
                loop.create_connection(_Connection, self.host, self.port), self.timeout
            )
        except (OSError, TimeoutError) as exc:
            raise HttpError(f"connect: {exc!r}") from exc
        protocol.transport = transport  # uvloop calls connection_made a moment later
        self.opened += 1
        return protocol

    def _encode(
        self, method: str, path: str, body: bytes | None, headers: dict[str, str] | None
    ) -> bytes:
        head = f"{method} {path} HTTP/1.1\r\n".encode() + self._fixed
        if headers:
            head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()).encode()
        if body is not None:
            head += b"Content-Length: %d\r\n\r\n" % len(body)
            return head + body
        return head + b"\r\n"

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Response:
        payload = self._encode(method, path, body, headers)
        async with self._slots:
            for _attempt in range(2):
                conn = None
                while self._idle and conn is None:
                    candidate = self._idle.pop()
                    conn = None if candidate.closed else candidate
                reused = conn is not None
                if conn is None:
                    conn = await self._connect()
                try:
                    response = await conn.exchange(payload, self.timeout)
                except HttpError:
                    conn.close()
                    # A reused connection the server closed before answering: once more.
                    if reused and not conn.got_bytes:
                        continue
                    raise
                if conn.keep_alive and not conn.closed:
                    self._idle.append(conn)
                else:
                    conn.close()
                return response
            raise HttpError("the server closed the connection twice")

    async def aclose(self) -> None:
        while self._idle:
            self._idle.pop().close()


def json_body(value: Any) -> bytes:
    return orjson.dumps(value)
