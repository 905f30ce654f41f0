"""Comparing the archive with the topics it was read from, partition by partition.

Independent evidence only where the topics are: on the embedded broker, topics lost with the
broker are rebuilt *from the archive* (services/restore.py), and then agree with it by
construction. Against a real Kafka cluster, whose log the exchange cannot rewrite, this finds a
changed, missing, inserted or reordered row even where the archive's own hashes were recomputed.

The ledger archives each (topic, event id) once, at its first appearance, in partition order; a
redelivered duplicate on the topic is expected, and the topic may run ahead of the archive (the
ledger has not read it yet). Offsets are not compared: a restored topic renumbers them. Pure.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from services.audit.evidence.verify import Finding


@dataclass(frozen=True)
class Copy:
    """One event's bytes: an archive row (position = archive_seq) or a record (offset)."""

    event_id: uuid.UUID
    key: bytes | None
    value: bytes
    position: int


@dataclass(frozen=True)
class PartitionReport:
    """The first finding in one partition, and how many topic records are not archived yet."""

    finding: Finding | None
    unarchived: int


def compare_partition(
    topic: str, partition: int, archived: Sequence[Copy], logged: Sequence[Copy]
) -> PartitionReport:
    """Archive rows of one topic partition (archive_seq order) against its records (offsets)."""
    first: dict[uuid.UUID, Copy] = {}
    for copy in logged:
        first.setdefault(copy.event_id, copy)
    on_topic = list(first.values())
    in_archive = {a.event_id for a in archived}

    def finding(kind: str, row: Copy, detail: str) -> PartitionReport:
        where = f"{topic}[{partition}]"
        return PartitionReport(
            Finding(kind, row.position, row.event_id, topic, f"{where}: {detail}"), 0
        )

    for j, row in enumerate(archived):
        if row.event_id not in first:
            return finding("inserted", row, "the event is in the archive but not on the topic")
        record = on_topic[j] if j < len(on_topic) else None
        if record is not None and record.event_id == row.event_id:
            if (record.key, record.value) != (row.key, row.value):
                return finding(
                    "changed", row, f"its bytes differ from the topic's (offset {record.position})"
                )
            continue
        if record is not None and record.event_id not in in_archive:
            return finding(
                "missing",
                row,
                f"event {record.event_id} (offset {record.position}) comes before it on the "
                "topic but is not in the archive",
            )
        return finding(
            "reordered",
            row,
            f"the topic has it at offset {first[row.event_id].position}, in another order",
        )
    return PartitionReport(None, max(len(on_topic) - len(archived), 0))
