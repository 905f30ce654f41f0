"""The ledger's signed checkpoints: when to record one, recording it, publishing it.

The ledger keeps the Merkle tree of the archive as a frontier (O(log n) hashes), stored with each
checkpoint, resumed from the latest one at start (or rebuilt from every stored content hash when
none stored it) and extended after every committed batch. Every
`checkpoint_every_events` new events, or `checkpoint_every_seconds` after the first event since
the last checkpoint, it signs the head and the chain hash, stores the checkpoint and publishes it
as a CheckpointRecorded event on ledger.checkpoints. A checkpoint stored but not yet published
(a crash in between) is published at the next start: `published_at` says which.

Rows a previous run left unsigned (it crashed) are signed as soon as the ledger starts: `exchange
audit verify` reports an unsigned tail older than three intervals as stale.

Checkpoint events are themselves archived (the ledger reads every topic). They alone never make
a checkpoint due, or an idle exchange would sign a new head for each previous one forever.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

import asyncpg
from aiokafka import AIOKafkaProducer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from schemas.checkpoints import CheckpointRecorded
from schemas.codec import encode
from schemas.envelope import NAMESPACE, SYSTEM_ACTOR, Envelope, originate
from schemas.message import Message
from schemas.topics import LEDGER_CHECKPOINTS
from services.audit.evidence.archive_row import ROW_COLUMNS, row_of
from services.audit.evidence.chain import ArchivedRow, content_hash
from services.audit.evidence.checkpoint import ORIGIN, Checkpoint, TreeHead, sign
from services.audit.evidence.merkle import leaf_hash
from services.ledger.archive import ArchiveTree
from services.platform.kafka import Record, headers_for

log = logging.getLogger(__name__)

TOPIC = LEDGER_CHECKPOINTS.name


def checkpoint_event_id(tree_size: int, root_hash: bytes) -> uuid.UUID:
    """Stable id of the event publishing a checkpoint, so that a re-publication is a duplicate."""
    return uuid.uuid5(NAMESPACE, f"checkpoint/{tree_size}/{root_hash.hex()}")


def checkpoint_envelope(
    checkpoint: Checkpoint, event_id: uuid.UUID, at: datetime
) -> Envelope[Message]:
    """The CheckpointRecorded event of a stored checkpoint (stream position: its tree size)."""
    head = checkpoint.head
    payload = CheckpointRecorded(
        origin=ORIGIN,
        tree_size=head.tree_size,
        root_hash=head.root_hash.hex(),
        chain_hash=head.chain_hash.hex(),
        key_id=checkpoint.key_id.hex(),
        signature=checkpoint.signature.hex(),
    )
    return originate(
        payload,
        event_id=event_id,
        at=at,
        actor=SYSTEM_ACTOR,
        stream_id="checkpoints:ledger",
        stream_seq=head.tree_size,
    )


FIRST_CHECKPOINT_SECONDS = 2.0
"""How soon a new archive's first events are signed."""


class Checkpointer:
    """Decides when the ledger signs a checkpoint, and records and publishes it."""

    def __init__(
        self, key: Ed25519PrivateKey, every_events: int, every_seconds: float, tree: ArchiveTree
    ) -> None:
        self.key = key
        self.every_events = max(every_events, 1)
        self.every_seconds = every_seconds
        self.tree = tree
        self.pending = 0
        """Events archived since the last checkpoint (checkpoint events alone excepted)."""
        self.pending_since: float | None = None
        self.signed_any = True
        """Whether the archive holds a checkpoint; until it does, the first one is due within
        FIRST_CHECKPOINT_SECONDS (`load` says which)."""

    @classmethod
    async def load(
        cls,
        conn: asyncpg.Connection,
        key: Ed25519PrivateKey,
        every_events: int,
        every_seconds: float,
    ) -> Checkpointer:
        """Resume the tree from the latest checkpoint that stored its frontier (or rebuild it
        from every content hash when there is none), extend it with the rows archived after,
        and find what is unsigned."""
        signed = await conn.fetchval("SELECT coalesce(max(tree_size), 0) FROM checkpoints")
        tree, after = await _resume(conn)
        resumed, pending = tree.size, 0
        async with conn.transaction():
            async for r in conn.cursor(
                "SELECT archive_seq, topic, content_hash FROM archive WHERE archive_seq > $1"
                " ORDER BY archive_seq",
                after,
                prefetch=10_000,
            ):
                content = r["content_hash"] or await _recompute(conn, r["archive_seq"])
                tree.append(leaf_hash(content))
                tree.last_seq = r["archive_seq"]
                if tree.size > signed and r["topic"] != TOPIC:
                    pending += 1
        log.info(
            "merkle tree loaded",
            extra={"tree_size": tree.size, "resumed_at": resumed},
        )
        self = cls(key, every_events, every_seconds, tree)
        self.signed_any = signed > 0
        self.count(pending)
        if pending:  # left unsigned by an earlier run (a crash): sign at once, not an interval
            # later, so that downtime does not leave a tail `verify` calls stale
            self.pending_since = time.monotonic() - every_seconds
        return self

    def count(self, archived: int, records: Sequence[Record] = ()) -> None:
        """Note `archived` new events (from `records`, when known)."""
        if archived and (not records or any(r.topic != TOPIC for r in records)):
            self.pending += archived
            if self.pending_since is None:
                self.pending_since = time.monotonic()

    def due(self) -> bool:
        """Enough events, or enough time since the first unsigned one. The very first checkpoint
        is due within FIRST_CHECKPOINT_SECONDS: `verify` fails closed on events that no
        checkpoint covers, and a new exchange should not spend its first minute that way."""
        if not self.pending or self.pending_since is None:
            return False
        waited = time.monotonic() - self.pending_since
        interval = (
            self.every_seconds
            if self.signed_any
            else min(self.every_seconds, FIRST_CHECKPOINT_SECONDS)
        )
        return self.pending >= self.every_events or waited >= interval

    async def record(self, conn: asyncpg.Connection) -> Checkpoint | None:
        """Sign and store the head of everything archived so far (None when nothing is new)."""
        self.pending, self.pending_since = 0, None
        self.signed_any = True
        last = await conn.fetchval("SELECT coalesce(max(tree_size), 0) FROM checkpoints")
        if self.tree.size <= last:
            return None
        # the chain hash of the tree's last row, which another writer's rows may follow
        chained = await conn.fetchval(
            "SELECT chain_hash FROM archive WHERE archive_seq = $1", self.tree.last_seq
        )
        if chained is None:
            raise RuntimeError(f"archive row {self.tree.last_seq} has no chain hash")
        head = TreeHead(self.tree.size, self.tree.root(), chained)
        checkpoint = sign(head, self.key)
        await conn.execute(
            "INSERT INTO checkpoints (tree_size, root_hash, chain_hash, signature, key_id,"
            " event_id, frontier, last_seq) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
            " ON CONFLICT (tree_size) DO NOTHING",
            head.tree_size,
            head.root_hash,
            head.chain_hash,
            checkpoint.signature,
            checkpoint.key_id,
            checkpoint_event_id(head.tree_size, head.root_hash),
            self.tree.peaks,
            self.tree.last_seq,
        )
        log.info("checkpoint recorded", extra={"tree_size": head.tree_size})
        return checkpoint

    async def publish_pending(self, conn: asyncpg.Connection, producer: AIOKafkaProducer) -> int:
        """Publish every stored checkpoint not yet published, oldest first; return how many."""
        rows = await conn.fetch(
            "SELECT tree_size, root_hash, chain_hash, signature, key_id, created_at, event_id"
            " FROM checkpoints WHERE published_at IS NULL ORDER BY tree_size"
        )
        for r in rows:
            checkpoint = Checkpoint(
                TreeHead(r["tree_size"], r["root_hash"], r["chain_hash"]),
                r["key_id"],
                r["signature"],
            )
            env = checkpoint_envelope(checkpoint, r["event_id"], r["created_at"])
            await producer.send_and_wait(
                TOPIC,
                encode(env),
                key=b"ledger",
                partition=0,
                headers=headers_for(
                    env.event_id, env.event_type, producer=LEDGER_CHECKPOINTS.owner
                ),
            )
            await conn.execute(
                "UPDATE checkpoints SET published_at = $2 WHERE tree_size = $1",
                r["tree_size"],
                datetime.now(UTC),
            )
        return len(rows)


async def _resume(conn: asyncpg.Connection) -> tuple[ArchiveTree, int]:
    """The tree as of the latest checkpoint with a stored frontier, and the archive_seq it
    covers up to; an empty tree and 0 when there is none to trust.

    Trusted when the stored peaks give the signed root and the row at `last_seq` still has the
    signed chain hash. An archive edited below that point is not re-read here: the tree goes on
    from what was signed, so the next checkpoint still disagrees with the edited rows and
    `exchange audit verify` names the first one."""
    r = await conn.fetchrow(
        "SELECT c.tree_size, c.root_hash, c.chain_hash, c.frontier, c.last_seq,"
        " a.chain_hash AS row_chain FROM checkpoints c"
        " LEFT JOIN archive a ON a.archive_seq = c.last_seq"
        " WHERE c.frontier IS NOT NULL ORDER BY c.tree_size DESC LIMIT 1"
    )
    if r is None:
        return ArchiveTree(), 0
    tree: ArchiveTree | None
    try:
        tree = ArchiveTree.resume(r["tree_size"], r["frontier"])
    except ValueError:
        tree = None
    if tree is None or tree.root() != r["root_hash"] or r["row_chain"] != r["chain_hash"]:
        log.warning(
            "stored frontier does not match its checkpoint; rebuilding the tree from every row",
            extra={"tree_size": r["tree_size"]},
        )
        return ArchiveTree(), 0
    tree.last_seq = int(r["last_seq"])
    return tree, tree.last_seq


async def _recompute(conn: asyncpg.Connection, archive_seq: int) -> bytes:
    """The content hash of a row stored without one (it was not written by the ledger)."""
    r = await conn.fetchrow(
        f"SELECT {ROW_COLUMNS} FROM archive WHERE archive_seq = $1", archive_seq
    )
    row: ArchivedRow = row_of(r)
    return content_hash(row)
