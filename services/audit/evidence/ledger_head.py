"""The ledger's head record: the archive's newest row as the ledger wrote it, and its file.

The ledger writes `<witness dir>/ledger-head.json` (services/ledger/head.py) and
`exchange audit verify --witness` reads it to find rows the ledger did not write
(services/audit/evidence/witness.py). The format and its reading are pure and belong to the
evidence, so both sides read the file with the same code and the evidence needs nothing from the
ledger.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from services.audit.evidence.chain import GENESIS

HEAD_FILE = "ledger-head.json"
"""The head file's name inside the witness directory."""


@dataclass(frozen=True)
class Head:
    """The archive as of one row the ledger wrote: its archive_seq, its chain hash, and how
    many rows the archive holds up to and including it (the Merkle tree's size)."""

    archive_seq: int
    chain_hash: bytes
    tree_size: int


EMPTY = Head(0, GENESIS, 0)
"""The head of an archive with no rows."""


@dataclass(frozen=True)
class HeadRecord:
    """What the head file holds: the last committed head and, while a batch is being
    committed (or if the ledger crashed while committing one), the head it will produce."""

    committed: Head
    pending: Head | None = None


def head_json(head: Head) -> dict[str, Any]:
    """A head as JSON (hex hashes, like CheckpointRecorded)."""
    return {
        "archive_seq": head.archive_seq,
        "chain_hash": head.chain_hash.hex(),
        "tree_size": head.tree_size,
    }


def head_from_json(doc: dict[str, Any]) -> Head:
    """The inverse of `head_json`; ValueError, KeyError or TypeError on anything else."""
    chain = bytes.fromhex(doc["chain_hash"])
    if len(chain) != 32:
        raise ValueError("chain_hash is not 32 bytes")
    return Head(int(doc["archive_seq"]), chain, int(doc["tree_size"]))


def record_json(record: HeadRecord) -> dict[str, Any]:
    """The head file's document."""
    return {
        "committed": head_json(record.committed),
        "pending": None if record.pending is None else head_json(record.pending),
        "updated_at": datetime.now(UTC).isoformat(),
    }


def record_from_json(doc: dict[str, Any]) -> HeadRecord:
    """The inverse of `record_json` (`updated_at` is for people only)."""
    pending = doc.get("pending")
    return HeadRecord(
        head_from_json(doc["committed"]), None if pending is None else head_from_json(pending)
    )


def read_record(path: Path) -> HeadRecord | None:
    """The head file at `path`, or None when there is none. A file that cannot be parsed is
    a ValueError: never silently treated as absent, which would trust the archive again."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    try:
        return record_from_json(json.loads(text))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"{path} is not a ledger head file: {exc!r}") from None
