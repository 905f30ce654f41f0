"""Undo one input's partial change to a processor's in-memory state, exactly.

Why: a processor that raises half-way through an input may already have changed its state (a
fund debited, a volunteer filed) without writing the decision that goes with it. Setting the
input aside must leave the state as it was *before* that input, or the partition would go on
from a state no replay reaches. The processors' states are large graphs of mutable objects, so
tracking each write is not practical; instead a processor keeps a rollback point: a pickled
copy of its state and the records it applied since. To undo, the copy is unpickled and those
records are applied again (their outputs were written already and are dropped). Decisions are
a pure function of the state and the input, so this reaches exactly the state before the bad
input, wherever the rollback point happens to be.

Cost: one pickle of the state now and then. A new point is taken once the time spent handling
records since the last one is `RATIO` times what that pickle took (so pickling costs at most
about 1/RATIO of handling), or once the records kept reach `MAX_BYTES` (so memory stays
bounded). The clock read here only decides when to pickle; it never reaches a decision.
"""

from __future__ import annotations

import pickle
import time
from collections.abc import Callable, Sequence
from typing import Any

from services.platform.kafka import Record

RATIO = 20.0
MAX_BYTES = 64 * 1024 * 1024


class RollbackPoint:
    """A processor's state as it was at some record, and the records applied after it."""

    def __init__(
        self,
        owner: Any,
        attributes: Sequence[str],
        ratio: float = RATIO,
        max_bytes: int = MAX_BYTES,
    ) -> None:
        self.owner = owner
        self.attributes = tuple(attributes)
        self.ratio = ratio
        self.max_bytes = max_bytes
        self.saved: bytes | None = None
        self.since: list[Record] = []
        self.since_bytes = 0
        self.handled_seconds = 0.0
        self.pickle_seconds = 0.0
        self.taken = 0
        """Rollback points taken (for tests and logs)."""

    def save(self) -> None:
        """Take a new rollback point at the processor's current state."""
        started = time.perf_counter()
        state = {name: getattr(self.owner, name) for name in self.attributes}
        self.saved = pickle.dumps(state, pickle.HIGHEST_PROTOCOL)
        self.pickle_seconds = time.perf_counter() - started
        self.since, self.since_bytes, self.handled_seconds = [], 0, 0.0
        self.taken += 1

    def before(self) -> None:
        """Called before each record: the first record of all needs a point to return to."""
        if self.saved is None:
            self.save()

    def applied(self, record: Record, seconds: float) -> None:
        """`record` was applied whole, in `seconds`: keep it, and move the point if due."""
        self.since.append(record)
        self.since_bytes += len(record.value) + len(record.key or b"") + 64
        self.handled_seconds += seconds
        if (
            self.handled_seconds >= self.ratio * self.pickle_seconds
            or self.since_bytes >= self.max_bytes
        ):
            self.save()

    def undo(self, reapply: Callable[[Record], object]) -> None:
        """Put the state back as it was before the record that just failed."""
        assert self.saved is not None, "before() was not called"
        for name, value in pickle.loads(self.saved).items():
            setattr(self.owner, name, value)
        for record in self.since:
            reapply(record)  # decided before; what it writes is on the topics already
