"""The benchmarks' small HTTP/1.1 client (bench/http1.py) against real servers.

The routing benchmark's load generator sends every request through it, so it must
keep connections alive, frame answers right (Content-Length and chunked, even when
they arrive in pieces), and recover when a server drops an idle connection.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from app.cti.directory_server import DirectoryProcess
from bench.http1 import Http1Pool, HttpError, _dechunk
from bench.routing_load import worker_of

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            await reader.readexactly(int(line.split(b":", 1)[1]))
    return head


@pytest.fixture
async def peer() -> AsyncIterator[Callable[[Handler], Awaitable[str]]]:
    """A plain asyncio TCP server speaking whatever the test writes: its base URL."""
    servers: list[asyncio.Server] = []

    async def start(handler: Handler) -> str:
        server = await asyncio.start_server(handler, "127.0.0.1", 0)
        servers.append(server)
        port = server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


async def test_one_keep_alive_connection_for_many_requests(directory: DirectoryProcess) -> None:
    pool = Http1Pool(directory.base_url, connections=4, timeout=10)
    try:
        listed = await pool.request("GET", "/lookup?number=%2B33123456789")
        assert listed.status_code == 200
        assert listed.json()["name"] == {"first": "Marie", "last": "Dupont"}
        unlisted = await pool.request("GET", "/lookup?number=%2B33612345678")
        assert unlisted.status_code == 404
        assert unlisted.json() == {"number": "+33612345678", "found": False}
        for _ in range(20):
            assert (await pool.request("GET", "/healthz")).status_code == 200
        refused = await pool.request("POST", "/healthz", body=b"{}")
        assert refused.status_code == 405
        assert refused.text == "Method Not Allowed"
        assert pool.opened == 1
    finally:
        await pool.aclose()


async def test_answers_in_pieces_chunked_and_connection_close(
    peer: Callable[[Handler], Awaitable[str]],
) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        # A chunked answer written in awkward pieces, then one that closes the connection.
        for piece in (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n",
            b"\r\n5\r\nhel",
            b"lo\r\n6\r\n world\r\n0\r\n",
            b"\r\n",
        ):
            writer.write(piece)
            await writer.drain()
            await asyncio.sleep(0.01)
        await _read_request(reader)
        writer.write(b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}")
        await writer.drain()
        writer.close()

    pool = Http1Pool(await peer(handler), connections=2, timeout=10)
    try:
        first = await pool.request("GET", "/a")
        assert (first.status_code, first.content) == (200, b"hello world")
        second = await pool.request("POST", "/b", body=b"x")
        assert (second.status_code, second.json()) == (201, {})
        assert pool.opened == 1
        # The server said close: the next request needs (and gets) a new connection.
        third = await pool.request("GET", "/a")
        assert third.content == b"hello world"
        assert pool.opened == 2
    finally:
        await pool.aclose()


async def test_a_connection_the_server_dropped_is_replaced(
    peer: Callable[[Handler], Awaitable[str]],
) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        writer.close()  # keep-alive promised, then dropped (a server's idle timeout)

    pool = Http1Pool(await peer(handler), connections=1, timeout=10)
    try:
        assert (await pool.request("GET", "/")).content == b"ok"
        await asyncio.sleep(0.05)
        assert (await pool.request("GET", "/")).content == b"ok"
        assert pool.opened == 2
    finally:
        await pool.aclose()


async def test_no_answer_is_an_error() -> None:
    pool = Http1Pool("http://127.0.0.1:9", connections=1, timeout=2)  # discard: refused
    with pytest.raises(HttpError):
        await pool.request("GET", "/")


def test_dechunk_waits_for_the_whole_body() -> None:
    whole = bytearray(b"HEAD\r\n\r\n3\r\nabc\r\n0\r\n\r\nNEXT")
    assert _dechunk(whole, 8) == (b"abc", len(whole) - 4)
    assert _dechunk(bytearray(b"HEAD\r\n\r\n3\r\nab"), 8) is None
    assert _dechunk(bytearray(b"HEAD\r\n\r\n3\r\nabc\r\n0\r\n"), 8) is None


def test_offers_go_to_the_worker_named_in_the_call_id() -> None:
    assert worker_of("b1a2b3cw3-17") == 3
    assert worker_of("b1a2b3cw12-0") == 12
    assert worker_of("mp-4") is None
    assert worker_of("b1a2b3cwx-1") is None
