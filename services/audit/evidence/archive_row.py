"""How an archive row is read from PostgreSQL and which event id it is archived under.

The ledger writes rows and `exchange audit verify` reads them; both must read the same columns
into the same hashed fields (services/audit/evidence/chain.py), so the reading lives here, with
the evidence, and the ledger imports it.
"""

from __future__ import annotations

import hashlib
import uuid

import asyncpg

from schemas.envelope import NAMESPACE
from services.audit.evidence.chain import ArchivedRow
from services.platform.kafka import Record

ROW_COLUMNS = (
    "archive_seq, event_id, topic, kafka_partition, kafka_offset, kafka_key, value, headers,"
    " event_type, stream_id, stream_seq, recorded_at, content_hash, chain_hash"
)
"""The columns every reader of archive rows selects (`row_of` takes them)."""


def row_of(r: asyncpg.Record) -> ArchivedRow:
    """The hashed fields of an archive row as read from PostgreSQL."""
    return ArchivedRow(
        r["event_id"],
        r["topic"],
        r["kafka_partition"],
        r["kafka_offset"],
        r["kafka_key"],
        r["value"],
        r["headers"],
        r["event_type"],
        r["stream_id"],
        r["stream_seq"],
        r["recorded_at"],
    )


def archive_id(record: Record) -> uuid.UUID:
    """The record's event id, or for a message without one (poison) an id from its bytes."""
    if record.event_id is not None:
        return record.event_id
    digest = hashlib.sha256((record.key or b"") + b"\x00" + record.value).hexdigest()
    return uuid.uuid5(NAMESPACE, f"undecodable/{record.topic}/{digest}")
