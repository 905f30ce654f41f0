"""The per-event hash chain of the archive: what is hashed, byte for byte, and how rows link.

Each archived row gets

    content_hash = SHA-256(content_bytes(row))
    chain_hash   = SHA-256(previous row's chain_hash || content_hash)   (GENESIS before the first)

in archive_seq order. Changing, deleting, inserting or reordering a row breaks the chain at that
row (or the next one), and the Merkle tree heads over the content hashes (see merkle.py), signed
in checkpoints, make rewriting the whole chain after a change detectable too.

`content_bytes` is a fixed, documented layout (docs/audit.md) so that anyone can recompute it in
any language: a tag, then every field in order, integers big-endian, variable-length fields
prefixed by their length, optional fields by a presence byte. The value and key are hashed as the
exact bytes read from Kafka, never re-serialised. `archive_seq` itself and `archived_at` are not
covered: the order is covered by the chain, and the wall-clock time of archiving is not evidence.
Pure: no I/O.
"""

from __future__ import annotations

import hashlib
import struct
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

CONTENT_TAG = b"community-exchange/archive-row/v1\x00"
"""Domain separation: these bytes can never be confused with another structure's."""

GENESIS = bytes(32)
"""The chain hash that precedes the first archived row."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class ArchivedRow:
    """The fields of an archive row that the content hash covers, as stored."""

    event_id: uuid.UUID
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: Sequence[Sequence[str]]
    event_type: str
    stream_id: str | None = None
    stream_seq: int | None = None
    recorded_at: datetime | None = None


_U32 = struct.Struct(">I").pack
_I64 = struct.Struct(">q").pack
_POSITION = struct.Struct(">iq").pack


def _text(value: str) -> bytes:
    data = value.encode("utf-8")
    return _U32(len(data)) + data


def micros(moment: datetime) -> int:
    """Microseconds since the Unix epoch: PostgreSQL's timestamptz precision, exactly.

    A naive datetime is taken as UTC, as asyncpg does when it stores one."""
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    delta = aware - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def content_bytes(row: ArchivedRow) -> bytes:
    """The canonical byte string of one archived row (layout in docs/audit.md).

    Written flat, not as nested helpers: the ledger runs it for every row it archives."""
    out = [CONTENT_TAG, row.event_id.bytes, _text(row.topic), _POSITION(row.partition, row.offset)]
    if row.key is None:
        out.append(b"\x00")
    else:
        out += (b"\x01", _U32(len(row.key)), row.key)
    out += (_U32(len(row.value)), row.value, _U32(len(row.headers)))
    for name, value in row.headers:
        out += (_text(name), _text(value))
    out.append(_text(row.event_type))
    out.append(b"\x00" if row.stream_id is None else b"\x01" + _text(row.stream_id))
    out.append(b"\x00" if row.stream_seq is None else b"\x01" + _I64(row.stream_seq))
    out.append(b"\x00" if row.recorded_at is None else b"\x01" + _I64(micros(row.recorded_at)))
    return b"".join(out)


def content_hash(row: ArchivedRow) -> bytes:
    """SHA-256 of the row's canonical bytes: what the Merkle tree's leaves are made from."""
    return hashlib.sha256(content_bytes(row)).digest()


def link(previous: bytes, content: bytes) -> bytes:
    """The chain hash of a row whose predecessor's chain hash is `previous`."""
    return hashlib.sha256(previous + content).digest()


def chain(previous: bytes, contents: Iterable[bytes]) -> list[bytes]:
    """The chain hashes of consecutive rows with these content hashes, after `previous`."""
    out = []
    for content in contents:
        previous = link(previous, content)
        out.append(previous)
    return out
