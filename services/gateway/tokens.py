"""The gateway's token cache, and how a revoked token stops working at once.

Looking a token up in PostgreSQL on every request costs a round trip, so known tokens are
cached for a few seconds. A revocation (`exchange orgs revoke`, a rotation) must not wait for
that: `services.identity.revoke_tokens` sends a NOTIFY naming the principal when its
transaction commits, and every gateway, listening on its own connection, drops that
principal's cached tokens. While that connection is down nothing is cached, so a missed
notification can never keep a revoked token alive; when it comes back the cache starts empty.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

import asyncpg

from services.identity import TOKEN_CHANNEL, Principal, principal_for
from services.platform.db import connect

log = logging.getLogger(__name__)

TTL = 5.0
"""Seconds a known token is trusted without asking PostgreSQL again (revocations end it
earlier, see the module doc)."""

MAX_ENTRIES = 10_000
"""More cached tokens than this and the cache starts over."""


class TokenCache:
    """Token → principal, for `TTL` seconds, while revocations can be heard."""

    def __init__(self, dsn: str, connect_timeout: float = 5.0, ping_every: float = 5.0) -> None:
        self.dsn = dsn
        self.connect_timeout = connect_timeout
        self.ping_every = ping_every
        self._entries: dict[str, tuple[Principal, float]] = {}
        self._listening = False
        self._task: asyncio.Task[None] | None = None
        self.generation = 0
        """Bumped by every revocation heard: a look-up that began before one is not cached."""
        self.channels: dict[str, Callable[[str], None]] = {}
        """Other caches heard on the same connection: channel -> what to call with a NOTIFY's
        payload (and with "" whenever the link is made or lost, when anything may have
        changed unheard)."""

    @property
    def listening(self) -> bool:
        """Whether revocations are being heard (only then is anything cached)."""
        return self._listening

    def get(self, token: str) -> Principal | None:
        """The cached principal of `token`, or None (ask PostgreSQL)."""
        hit = self._entries.get(token)
        if hit is None or not self._listening:
            return None
        if hit[1] <= time.monotonic():
            self._entries.pop(token, None)
            return None
        return hit[0]

    def put(self, token: str, who: Principal, generation: int) -> None:
        """Remember a token PostgreSQL vouched for in a look-up that began at `generation`
        (only while listening, and only if no revocation was heard since)."""
        if not self._listening or generation != self.generation:
            return
        if len(self._entries) >= MAX_ENTRIES:
            self._entries.clear()
        self._entries[token] = (who, time.monotonic() + TTL)

    def forget(self, principal_id: uuid.UUID | str) -> None:
        """Drop every cached token of a principal (its tokens were revoked)."""
        pid = str(principal_id)
        self.generation += 1
        for token in [t for t, (who, _) in self._entries.items() if str(who.id) == pid]:
            self._entries.pop(token, None)

    def start(self) -> None:
        """Listen for revocations in the background, reconnecting whenever the link drops."""
        self._task = asyncio.create_task(self._listen_forever())

    async def stop(self) -> None:
        """Stop listening."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _listen_forever(self) -> None:
        delay = 0.5
        while True:
            try:
                await self._listen_once()
                delay = 0.5
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("token revocation listener lost", extra={"error": repr(exc)})
            finally:
                self._listening = False
                self._entries.clear()
                self.generation += 1
                for drop in self.channels.values():
                    drop("")
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    async def _listen_once(self) -> None:
        conn = await asyncio.wait_for(connect(self.dsn), self.connect_timeout)
        lost = asyncio.Event()

        def heard(_c: Any, _pid: int, _channel: str, payload: str) -> None:
            self.forget(payload)

        try:
            conn.add_termination_listener(lambda _c: lost.set())
            await conn.add_listener(TOKEN_CHANNEL, heard)
            for channel, drop in self.channels.items():
                await conn.add_listener(channel, lambda _c, _p, _ch, payload, d=drop: d(payload))
                drop("")
            self._entries.clear()
            self._listening = True
            while not lost.is_set() and not conn.is_closed():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(lost.wait(), self.ping_every)
                if not lost.is_set():  # a silent network would never say it is gone
                    await conn.fetchval("SELECT 1", timeout=self.ping_every)
        finally:
            self._listening = False
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), 1.0)


async def principal_of(cache: TokenCache, pool: asyncpg.Pool, token: str) -> Principal | None:
    """The principal behind `token` (cached, or from PostgreSQL), or None."""
    who = cache.get(token)
    if who is not None:
        return who
    generation = cache.generation
    who = await principal_for(pool, token)
    if who is not None:
        cache.put(token, who, generation)
    return who
