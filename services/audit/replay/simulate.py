"""A whole exchange's log made in memory: intake events, the router, every matcher partition.

For tests and benchmarks of the auditor's replay: it yields the records the topics would hold
(each with its topic, partition, offset, key, exact bytes and headers) in a causal order, with
no broker and no clock. Pure."""

from __future__ import annotations

import uuid
from collections import defaultdict, deque
from collections.abc import Iterable

from schemas.codec import encode
from schemas.envelope import Envelope
from schemas.messages import Message
from schemas.topics import MATCHER_INPUTS, MATCHES_EVENTS
from services.domain.intake import stream_of
from services.matcher.processor import PartitionMatcher, Router
from services.platform.kafka import Record, headers_for

INTAKE_TOPIC = {
    "NeedPosted": "needs.events",
    "NeedAmended": "needs.events",
    "NeedCancelled": "needs.events",
    "FundOpened": "funds.events",
    "FundReserveSet": "funds.events",
    "DonationReceived": "funds.events",
    "DonationRefunded": "funds.events",
    "VolunteerRegistered": "volunteers.events",
    "PledgeMade": "volunteers.events",
    "PledgeAmended": "volunteers.events",
    "PledgeWithdrawn": "volunteers.events",
}


class SimulatedLog:
    """Appends records to in-memory partitions, numbering offsets as a broker would."""

    def __init__(self) -> None:
        self.records: list[Record] = []
        self.offsets: dict[tuple[str, int], int] = defaultdict(int)

    def append(
        self, topic: str, partition: int, key: bytes, env_id: uuid.UUID, typ: str, value: bytes
    ) -> Record:
        offset = self.offsets[(topic, partition)]
        self.offsets[(topic, partition)] = offset + 1
        headers = tuple(headers_for(env_id, typ))
        rec = Record(topic, partition, offset, key, value, headers, len(self.records))
        self.records.append(rec)
        return rec


def simulate(events: Iterable[Envelope[Message]]) -> list[Record]:
    """The records of all topics after `events` (intake decisions) pass through the router
    and every matcher partition."""
    log = SimulatedLog()
    router = Router()
    matchers = {p: PartitionMatcher(p) for p in range(MATCHER_INPUTS.partitions)}
    queue: deque[Record] = deque()

    def routed(rec: Record) -> None:
        for out in router.handle(rec):
            assert out.partition is not None
            queue.append(
                log.append(out.topic, out.partition, out.key, out.event_id, out.event_type,
                           out.value)
            )  # fmt: skip

    for env in events:
        key = stream_of(env.payload).split(":")[-1].encode()
        rec = log.append(
            INTAKE_TOPIC[env.event_type], 0, key, env.event_id, env.event_type,
            encode(env),
        )  # fmt: skip
        routed(rec)
        while queue:
            inp = queue.popleft()
            for out in matchers[inp.partition].handle(inp):
                if out.topic == MATCHES_EVENTS.name:
                    routed(log.append(out.topic, 0, out.key, out.event_id, out.event_type,
                                      out.value))  # fmt: skip
                else:
                    assert out.partition is not None
                    queue.append(
                        log.append(out.topic, out.partition, out.key, out.event_id,
                                   out.event_type, out.value)
                    )  # fmt: skip
    return log.records
