"""The stream processors in one process, with the log between them as in-memory records.

The router and one `PartitionMatcher` per partition run exactly as their services run them
(`services.platform.processor.process`, dead letters included); every record any of them
writes is kept, in order, as the ledger would read it. Tests feed events in and look at what
came out, without waiting for a broker."""

from __future__ import annotations

import uuid
from collections import defaultdict, deque

from schemas.topics import MATCHER_INPUTS
from services.matcher.processor import PartitionMatcher, Router
from services.platform.kafka import Record, headers_for
from services.platform.processor import process


class Pipeline:
    """Router, matchers and the log of every record (inputs and outputs)."""

    def __init__(self) -> None:
        self.router = Router()
        self.matchers: dict[int, PartitionMatcher] = {}
        self.offsets: dict[tuple[str, int], int] = defaultdict(int)
        self.log: list[Record] = []

    def emit(
        self,
        topic: str,
        key: bytes,
        value: bytes,
        event_id: uuid.UUID,
        event_type: str,
        partition: int | None = None,
    ) -> Record:
        """Append a record to the log (partition 0 unless given) and return it."""
        part = partition or 0
        offset = self.offsets[(topic, part)]
        self.offsets[(topic, part)] += 1
        rec = Record(
            topic,
            part,
            offset,
            key,
            value,
            tuple(headers_for(event_id, event_type)),
            1_700_000_000_000 + len(self.log),
        )
        self.log.append(rec)
        return rec

    def feed(self, first: Record) -> list[Record]:
        """Run `first` and everything it causes to the end; return the records written."""
        written: list[Record] = []
        queue = deque([first])
        while queue:
            rec = queue.popleft()
            if rec.topic == MATCHER_INPUTS.name:
                proc = self.matchers.setdefault(rec.partition, PartitionMatcher(rec.partition))
                outs = process(proc, rec)
            elif rec.topic in self.router.inputs:
                outs = process(self.router, rec)
            else:
                outs = []
            for out in outs:
                made = self.emit(
                    out.topic, out.key, out.value, out.event_id, out.event_type, out.partition
                )
                written.append(made)
                queue.append(made)
        return written
