"""Consumers that stop asking the broker when nothing comes, and are woken when work does.

Why: the embedded broker (Tansu) answers a fetch only after about half its wait and never early
when data arrives (`runtime-notes`), so every consumer fetches with a 10 ms wait to keep hops
fast, and an exchange with nothing to do asked the broker some thousand times a second: most of
a core on a laptop, for nothing (issue #18, bench/idle.py).

How: after `idle_after` seconds without a record, a consumer pauses every partition it holds
(aiokafka then sends no fetch at all; its group heartbeats go on). It resumes
- at once when the doorbell rings: the gateway's relay sends a PostgreSQL NOTIFY on
  `DOORBELL_CHANNEL` after it has put postings on their topics (at most one every half second),
  and every stream service listens for it; the whole chain of hops after a posting wakes
  together and stays awake `idle_after` seconds, which covers the hops;
- every `check_every` seconds for a short look (`probe`), so that whatever no doorbell
  announces (the clock's ticks, a doorbell lost while PostgreSQL was away, a record written by a
  tool) is read within `check_every` (2 s by default), never lost: pausing only stops
  fetching, no offset moves.

Nothing about at-least-once changes: pausing skips fetches, not records, and a paused consumer
that is killed restarts from its committed offsets as before. On Apache Kafka, whose fetches
return as soon as data arrives, the same code runs; the doorbell then only saves the idle
fetches.

`QuietClock` is the decision, pure and driven by the times it is given (unit-tested);
`Quiet` runs it on an event loop with the pause and resume of one consumer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from services.platform.kafka import EVENT_TYPE_HEADER

log = logging.getLogger(__name__)

DOORBELL_CHANNEL = "exchange_work"
"""PostgreSQL NOTIFY channel: something was published for the stream services to read."""

Action = Literal["pause", "resume"] | None

CLOCKWORK = frozenset({b"ClockTicked"})
"""Event types that are read but are no reason to stay awake: the clock's ticks come every few
seconds while work flows and once a minute while idle (`tick_due`), and would keep every
consumer on the tick's path fetching for ever. A paused consumer reads them at its next look
(within `idle_check_seconds`); what a tick decides (an expiry, a next candidate) is work and
wakes the consumers that read it."""


def work_in(headers: Iterable[Any]) -> int:
    """How many of these records (given by their headers: pairs, or a mapping) are work."""
    count = 0
    for h in headers:
        pairs = h.items() if isinstance(h, Mapping) else (h or ())
        kind = next((v for k, v in pairs if k == EVENT_TYPE_HEADER), None)
        if kind not in CLOCKWORK:
            count += 1
    return count


@dataclass
class QuietClock:
    """When a consumer should stop fetching and when it should look again.

    `awake_until`: the consumer fetches until then (extended by records and by the doorbell);
    after it, it pauses, and `check_every` later it resumes for `probe` seconds."""

    idle_after: float
    check_every: float
    probe: float
    awake_until: float = float("inf")
    paused: bool = False
    last_heard: float = float("-inf")
    """When work was last read or announced."""

    def heard(self, now: float) -> Action:
        """Records were read, or the doorbell rang: stay awake `idle_after` from now."""
        self.last_heard = max(self.last_heard, now)
        self.awake_until = max(self.awake_until, now + self.idle_after)
        if self.paused:
            self.paused = False
            return "resume"
        return None

    def due(self, now: float) -> tuple[Action, float]:
        """What to do at `now` and when to ask again (absent any record or doorbell)."""
        if not self.paused:
            if now < self.awake_until:
                return None, self.awake_until
            self.paused = True
            return "pause", now + self.check_every
        self.paused = False
        self.awake_until = now + self.probe  # a short look; records found extend it
        return "resume", self.awake_until


class Quiet:
    """Runs a `QuietClock` for one consumer. `pause` and `resume` act on the consumer (they may
    hand the act to the consumer's own thread); `saw` and `ring` are called on this loop."""

    def __init__(
        self,
        pause: Callable[[], None],
        resume: Callable[[], None],
        idle_after: float = 5.0,
        check_every: float = 2.0,
        probe: float = 0.03,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._pause, self._resume, self._now = pause, resume, clock
        self.state = QuietClock(idle_after, check_every, probe, clock() + idle_after)
        self._changed = asyncio.Event()
        self._started = clock()
        self.pauses = 0
        """How many times the consumer stopped fetching (for logs and tests)."""

    def quiet_for(self) -> float:
        """Seconds since work was last read or announced (since start if never)."""
        return self._now() - max(self.state.last_heard, self._started)

    def saw(self, records: int) -> None:
        """The consumer handed over `records` records of work (`work_in`; 0: an empty fetch or
        only ticks, which say nothing)."""
        if records:
            self._act(self.state.heard(self._now()))

    def ring(self) -> None:
        """The doorbell rang: work is on its way."""
        self._act(self.state.heard(self._now()))

    def _act(self, action: Action) -> None:
        """Do `action`; a failure is logged and leaves the consumer fetching (fetching is always
        safe, pausing only saves work), never reaches the consumer's loop that called."""
        try:
            if action == "pause":
                self.pauses += 1
                self._pause()
            elif action == "resume":
                self._resume()
        except Exception as exc:
            log.warning("pausing or resuming a consumer failed", extra={"error": repr(exc)})
            self.state.paused = False
            self.state.awake_until = self._now() + self.state.idle_after
            with contextlib.suppress(Exception):
                self._resume()
        self._changed.set()

    async def run(self) -> None:
        """Pause and resume on time until cancelled."""
        while True:
            self._changed.clear()
            action, until = self.state.due(self._now())
            self._act(action)  # a failed pause leaves it fetching: then look at awake_until
            if not self.state.paused:
                until = self.state.awake_until
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), max(0.0, until - self._now()))


def tick_due(
    since_tick: float, quiet_for: float, busy_every: float, idle_every: float, quiet_after: float
) -> bool:
    """Whether the clock should write a tick now, `since_tick` seconds after the last one, with
    no work for `quiet_for` seconds; it is asked every `busy_every` seconds.

    While work flows the clock ticks every `busy_every`; once nothing but ticks has happened for
    `quiet_after` (when consumers pause), only every `idle_every` (half a period of slack
    absorbs the timer's jitter).
    Every tick is a logged event that the router copies to each matcher partition, the matchers
    read and the ledger archives with its hashes: at 5 s, ticks were most of what an idle
    exchange did. What ticks decide (an expiry) then comes at most `idle_every` late, and the
    first work after a quiet spell brings the 5-s ticks back."""
    if idle_every <= busy_every or quiet_for < quiet_after:
        return True
    return since_tick >= idle_every - busy_every / 2


def pausing(consumer_of: Callable[[], Any]) -> tuple[Callable[[], None], Callable[[], None]]:
    """Pause and resume for an aiokafka consumer used on this loop, looked up at each act
    (a worker that rejoins its group makes a new consumer). Only what is assigned at the moment
    is paused; a rebalance meanwhile gives partitions that fetch until the next pause."""

    def pause() -> None:
        consumer = consumer_of()
        if consumer is not None and consumer.assignment():
            consumer.pause(*consumer.assignment())

    def resume() -> None:
        consumer = consumer_of()
        if consumer is not None and consumer.paused():
            consumer.resume(*consumer.paused())

    return pause, resume


def start(quiet: Quiet | None, dsn: str) -> list[asyncio.Task[None]]:
    """Run `quiet` and a doorbell listener that rings it, in the background of this loop
    (cancel the tasks to stop them); nothing when `quiet` is None (pausing is off)."""
    if quiet is None:
        return []
    from services.platform.doorbell import listen

    return [asyncio.create_task(quiet.run()), asyncio.create_task(listen(dsn, quiet.ring))]


def from_settings(
    settings: Any, pause: Callable[[], None], resume: Callable[[], None]
) -> Quiet | None:
    """A `Quiet` with the settings' times, or None when `idle_after_seconds` is 0 (off)."""
    if settings.idle_after_seconds <= 0:
        return None
    return Quiet(
        pause,
        resume,
        idle_after=settings.idle_after_seconds,
        check_every=settings.idle_check_seconds,
    )
