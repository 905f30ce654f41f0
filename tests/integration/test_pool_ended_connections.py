"""A pooled connection that the server has ended is never handed out.

When PostgreSQL ends a session (fast shutdown ends them all) it sends an ErrorResponse (57P01)
and closes the socket. asyncpg reads that message on an idle connection as a protocol error and
sits "consuming an error" until it sees the end of the socket on a later turn of the event loop.
The gateway's event stream acquired such a connection in between and failed with
`InternalClientError: cannot switch to state 11; another operation (2) is in progress` (the
intermittent failure of test_gateway_db_down.py under load). Here the in-between is held open
on purpose: the connection's reading is paused, the server's message is handed to asyncpg
exactly as asyncio would hand it, and the end of the socket stays unread in the kernel."""

from __future__ import annotations

import asyncio
import socket
import time

import asyncpg
import pytest

from services.platform.db import connect_pool

pytestmark = pytest.mark.integration


def peek(raw: socket.socket) -> bytes | None:
    """What is waiting on the socket (b"" at its end), None when nothing is."""
    sock = socket.socket(raw.family, raw.type, fileno=raw.fileno())
    try:
        return sock.recv(65536, socket.MSG_PEEK | socket.MSG_DONTWAIT)
    except BlockingIOError:
        return None
    finally:
        sock.detach()


async def test_a_connection_ended_by_the_server_is_replaced_not_handed_out(
    database_url: str,
) -> None:
    pool = await connect_pool(database_url, min_size=1, max_size=1, acquire_timeout=5)
    try:
        async with pool.acquire() as conn:
            pid = await conn.fetchval("SELECT pg_backend_pid()")
            con = conn._con
        transport = con._transport
        raw = transport.get_extra_info("socket")
        # Given an idle pooled connection whose server process is ended
        transport.pause_reading()
        admin = await asyncpg.connect(database_url)
        try:
            assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
        finally:
            await admin.close()
        # wait (deadline, not sleep) until the server's message and the socket's end are in
        deadline = time.monotonic() + 10
        message = b""
        while True:
            waiting = peek(raw)
            if not message and waiting and waiting[:1] == b"E":
                sock = socket.socket(raw.family, raw.type, fileno=raw.fileno())
                try:
                    message = sock.recv(len(waiting))
                finally:
                    sock.detach()
            # the socket's end may arrive a moment after the message (a loaded machine)
            if message and peek(raw) == b"":
                break
            assert time.monotonic() < deadline, "the server did not end the session"
            await asyncio.sleep(0.01)
        # And asyncpg has read the server's message but not yet the end of the socket
        con._protocol.data_received(message)
        assert b"57P01" in message
        # When a query asks the pool for a connection
        # Then it runs on a fresh one (before: InternalClientError, "another operation (2)")
        assert await pool.fetchval("SELECT 1") == 1
        assert con.is_closed()
    finally:
        await pool.close()
