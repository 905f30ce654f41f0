"""The shape every stream service shares: a pure processor behind a faust agent.

A `Processor` turns one input record into the messages it decides to write, holding its state
in memory. Its state is a fold over its input topics, so it is rebuilt on start by replaying
them (`catch_up`), writing only decisions that are missing from the output topics. Nothing
depends on faust's committed offsets or changelog recovery, which Tansu cannot be trusted with
(end offsets reported short); faust carries the live path with at-least-once delivery and
agent concurrency 1, and redeliveries are recognised by event id.
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Protocol

from schemas.codec import DecodeError, encode
from schemas.common import EARLIEST, LATEST, TEXT_FORBIDDEN, Role
from schemas.envelope import NAMESPACE, Actor, Envelope
from schemas.messages import Message, MessageDeadLettered
from services.domain.outputs import Outgoing
from services.domain.set_aside import SetAside, reason_of, settable_aside
from services.platform.kafka import Record, headers_for, producer, read_all
from services.platform.rollback import RollbackPoint

log = logging.getLogger(__name__)


class Processor(Protocol):
    """A pure stream step: input records in, decided messages out; no I/O."""

    @property
    def name(self) -> str:
        """The processor's name in logs."""
        ...

    @property
    def inputs(self) -> tuple[str, ...]:
        """Topics it reads; its state is a fold over them."""
        ...

    @property
    def outputs(self) -> tuple[str, ...]:
        """Topics it alone writes."""
        ...

    def handle(self, record: Record) -> list[Outgoing]:
        """Decide what one input record produces; raise DecodeError for a poison message.

        Any other exception sets the record aside (`process`); `SetAside` promises that
        nothing was changed before it was raised."""
        ...


def dead_letter(
    record: Record, reason: str, consumer: str, event_id: uuid.UUID | None = None
) -> Outgoing:
    """The message that parks a record its consumer could not handle on its topic's
    dead-letter topic.

    Its id is derived from the topic and the exact bytes (or given: the ledger, which is not
    the topic's processor, derives its own), so a replay parks it once; its time is the original
    record's broker timestamp, so no clock is read here."""
    if event_id is None:
        digest = hashlib.sha256((record.key or b"") + b"\x00" + record.value).hexdigest()
        event_id = uuid.uuid5(NAMESPACE, f"dead-letter/{record.topic}/{digest}")
    at = _moment_of(record.timestamp_ms)
    payload = MessageDeadLettered(
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        consumer=consumer,
        reason=TEXT_FORBIDDEN.sub("\ufffd", reason[:2000]),
        original_key_hex=(record.key or b"").hex(),
        original_value_hex=record.value.hex(),
    )
    envelope = Envelope[Message](
        event_id=event_id,
        event_type=payload.TYPE,
        schema_version=payload.VERSION,
        stream_id=f"dead-letters:{record.topic}",
        stream_seq=0,
        occurred_at=at,
        recorded_at=at,
        actor=Actor(org_id=consumer, role=Role.SYSTEM),
        correlation_id=event_id,
        payload=payload,
    )
    return Outgoing(
        f"{record.topic}.dlq", record.key or b"", event_id, payload.TYPE, encode(envelope)
    )


def _moment_of(timestamp_ms: int) -> datetime:
    """The record's broker timestamp as a time the schemas accept. A producer chooses that
    timestamp, so it may be 0 or year 9999: such a time becomes the window's nearest edge
    (deterministically), because parking a record must never itself fail."""
    try:
        at = datetime.fromtimestamp(timestamp_ms / 1000, UTC)
    except (OverflowError, OSError, ValueError):
        return EARLIEST if timestamp_ms < 0 else LATEST - timedelta(microseconds=1)
    return min(max(at, EARLIEST), LATEST - timedelta(microseconds=1))


DECISION_FAILED = "set aside: "
"""How the reason of an event that decoded but could not be decided begins (a decode error's
reason says what was wrong with the bytes)."""


def process(processor: Processor, record: Record) -> list[Outgoing]:
    """Run the processor on one record; a record it cannot handle becomes a dead letter.

    Undecodable bytes (DecodeError) are parked as they always were. Since one schema-valid
    event must never stop a consumer, any other failure of the pure step sets the record aside
    too: the processor's state is put back as it was before the record (its `rollback` point,
    unless the step raised `SetAside`, which promises nothing changed), and the dead letter
    says why. Deterministic: the same record on the same state fails the same way, so a replay
    or a rebuild sets aside the same records and reaches the same state."""
    point: RollbackPoint | None = getattr(processor, "rollback", None)
    if point is not None:
        point.before()
    started = time.perf_counter()
    try:
        out = processor.handle(record)
    except DecodeError as exc:
        _parked(record, exc.reason, processor.name, "poison message moved to dead-letter topic")
        return [dead_letter(record, exc.reason, processor.name)]
    except Exception as exc:
        if not settable_aside(exc):
            raise
        if point is not None and not isinstance(exc, SetAside):
            point.undo(processor.handle)
        reason = DECISION_FAILED + reason_of(exc)
        _parked(record, reason, processor.name, "event set aside: it could not be decided")
        return [dead_letter(record, reason, processor.name)]
    if point is not None:
        point.applied(record, time.perf_counter() - started)
    return out


def _parked(record: Record, reason: str, consumer: str, message: str) -> None:
    log.warning(
        message,
        extra={
            "consumer": consumer,
            "topic": record.topic,
            "partition": record.partition,
            "offset": record.offset,
            "event_id": str(record.event_id) if record.event_id else None,
            "reason": reason,
        },
    )


def written_ids(bootstrap: str, topics: Iterable[str]) -> set[uuid.UUID]:
    """Event ids already present on `topics` (read from the start until caught up)."""
    return {r.event_id for r in read_all(bootstrap, list(topics)) if r.event_id is not None}


def catch_up(bootstrap: str, processor: Processor, stamp: str | None = None) -> int:
    """Rebuild the processor's state from its inputs and write whatever it decided but lost.

    Returns how many missing messages were written. Must run before the live agent starts and
    while no other instance of this processor runs (the single writer of its outputs).
    `stamp`: the `producer` header to stamp (default: the process's, `set_producer`)."""
    outputs = set(processor.outputs) | {f"{t}.dlq" for t in processor.inputs}
    present = written_ids(bootstrap, outputs)
    writer = producer(bootstrap)
    written = replayed = 0
    try:
        for record in read_all(bootstrap, list(processor.inputs)):
            replayed += 1
            for out in process(processor, record):
                if out.event_id in present:
                    continue
                writer.send(
                    out.topic,
                    key=out.key,
                    value=out.value,
                    headers=headers_for(out.event_id, out.event_type, stamp),
                    partition=out.partition,
                )
                present.add(out.event_id)
                written += 1
        writer.flush()
    finally:
        writer.close()
    log.info(
        "caught up", extra={"processor": processor.name, "replayed": replayed, "rewritten": written}
    )
    return written
