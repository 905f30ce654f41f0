"""The doorbell: PostgreSQL NOTIFY telling paused consumers that postings were published.

Consumers with nothing to read stop fetching (`services/platform/quiet.py`); the gateway's relay
rings after it put postings on their topics, and every stream service listens, so the first
posting after a quiet hour is read at once instead of at the next periodic look. PostgreSQL is
already every service's neighbour; a ring is one statement, and a listener one idle connection.

A doorbell is only a hint: one lost (PostgreSQL restarting, a listener reconnecting) delays the
read until the next periodic look, never loses a record. So a listener that loses its
connection calls `on_ring` when it is back (whatever was rung meanwhile), and retries forever.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from services.platform.db import connect
from services.platform.quiet import DOORBELL_CHANNEL

log = logging.getLogger(__name__)


class Ringer:
    """Rings at most once every `every` seconds: consumers woken by a ring stay awake longer
    than that (`Quiet.idle_after`), so a ring skipped within it reaches no one asleep."""

    def __init__(self, every: float = 0.5, clock: Callable[[], float] = time.monotonic) -> None:
        self.every = every
        self._clock = clock
        self._last = float("-inf")
        self.rung = 0

    def due(self) -> bool:
        """Whether a ring now would not be within `every` of the last one (and count it)."""
        now = self._clock()
        if now - self._last < self.every:
            return False
        self._last = now
        self.rung += 1
        return True

    async def ring(self, db: Any) -> None:
        """NOTIFY on `db` (a pool or a connection) if due; failures are logged, never raised:
        the postings are published whatever becomes of the ring."""
        if not self.due():
            return
        try:
            await db.execute("SELECT pg_notify($1, '')", DOORBELL_CHANNEL)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.debug("doorbell not rung", extra={"error": repr(exc)})


async def listen(dsn: str, on_ring: Callable[[], None], retry: float = 2.0) -> None:
    """Call `on_ring` at each ring until cancelled, reconnecting after any loss."""
    while True:
        try:
            conn = await connect(dsn)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.debug("doorbell listener cannot connect", extra={"error": repr(exc)})
            await asyncio.sleep(retry)
            continue
        lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def heard(*_: object) -> None:
            on_ring()

        def ended(*_: object, lost: asyncio.Future[None] = lost) -> None:
            if not lost.done():
                lost.set_result(None)

        try:
            conn.add_termination_listener(ended)
            await conn.add_listener(DOORBELL_CHANNEL, heard)
            on_ring()  # a ring may have come while nobody listened
            while not lost.done():  # a silent loss shows at the next check
                await asyncio.wait([lost], timeout=30)
                if not lost.done():
                    await conn.execute("SELECT 1")
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.debug("doorbell listener lost", extra={"error": repr(exc)})
        finally:
            if not conn.is_closed():
                conn.terminate()
        await asyncio.sleep(retry)
