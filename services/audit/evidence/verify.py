"""Checking an archive against its own hashes and its signed checkpoints, row by row.

`ArchiveChecker` is fed the archive's rows in archive_seq order and stops at the first row that
is not what the ledger wrote, saying how it differs as far as the evidence allows:

- **changed**: the row's content no longer matches its content hash; or the rows up to a
  signed checkpoint no longer give the head that was signed (rewritten with hashes recomputed).
- **missing**: the row's chain hash says its predecessor is a row that is not there (deleted);
  or a signed checkpoint covers more rows than the archive holds (deleted at the end).
- **inserted**: a row without hashes (the ledger hashes every row it writes), or a row the chain
  skips over (the next row links to the one before it).
- **reordered**: the row's predecessor in the chain is a later row.
- **checkpoint**: a checkpoint not signed by the trusted key, or two copies that disagree.
- **unsigned**: the archive holds events but no checkpoint signed by the trusted key covers any
  of them (checkpoints deleted, history rewritten and rehashed). Fails closed.

Pure: the caller reads the rows; this module only computes.
"""

from __future__ import annotations

import uuid
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from services.audit.evidence.chain import GENESIS, ArchivedRow, content_hash, link
from services.audit.evidence.checkpoint import Checkpoint, TreeHead
from services.audit.evidence.ledger_head import Head
from services.audit.evidence.merkle import Frontier, leaf_hash
from services.audit.evidence.rotation import KeyRing, Rotation

LOOKBEHIND = 64
"""How many earlier rows are tried as the true predecessor of a row whose link is broken."""


@dataclass(frozen=True)
class StoredRow:
    """One archive row as stored: its place, its hashed fields and the hashes stored with it."""

    archive_seq: int
    row: ArchivedRow
    content_hash: bytes | None
    chain_hash: bytes | None


@dataclass(frozen=True)
class Finding:
    """The first thing found wrong: where, which event, and what."""

    kind: str
    archive_seq: int | None
    event_id: uuid.UUID | None
    topic: str | None
    detail: str

    @classmethod
    def at(cls, kind: str, stored: StoredRow, detail: str) -> Finding:
        """A finding about one row."""
        return cls(kind, stored.archive_seq, stored.row.event_id, stored.row.topic, detail)

    def __str__(self) -> str:
        where = (
            f"archive_seq {self.archive_seq}, event {self.event_id}, topic {self.topic}"
            if self.archive_seq is not None
            else "the archive"
        )
        return f"{self.kind}: {where}: {self.detail}"


@dataclass
class Summary:
    """What a clean verification covered."""

    events: int = 0
    checkpoints: int = 0
    head: TreeHead = field(default_factory=lambda: TreeHead(0, Frontier().root(), GENESIS))
    """The tree head of the whole archive as verified (not necessarily signed yet)."""
    last_signed: Checkpoint | None = None
    handovers: list[Rotation] = field(default_factory=list)
    """The signing key's hand-overs the verification followed from the pinned key."""
    ledger_heads: list[Head] = field(default_factory=list)
    """How far the ledger wrote, by each head file checked (services/audit/evidence/witness.py)."""


def merge_checkpoints(*sources: Iterable[Checkpoint]) -> list[Checkpoint]:
    """Checkpoints from several sources (the checkpoints table, archived CheckpointRecorded
    events) in tree-size order, identical copies once. Copies of one size that differ are all
    kept: each must be validly signed and match the archive."""
    unique = {
        (cp.head.tree_size, cp.key_id, cp.signature, cp.head): cp for s in sources for cp in s
    }
    return sorted(unique.values(), key=lambda cp: cp.head.tree_size)


class ArchiveChecker:
    """Recomputes content hashes, the chain and tree heads; checks them as rows are fed."""

    def __init__(
        self,
        checkpoints: Sequence[Checkpoint],
        trusted: Ed25519PublicKey | KeyRing,
        sources: Mapping[Checkpoint, str] | None = None,
    ) -> None:
        self.ring = trusted if isinstance(trusted, KeyRing) else KeyRing(trusted, [])
        """The pinned key and the keys its valid hand-overs reach
        (services/audit/evidence/rotation.py)."""
        self.sources = dict(sources or {})
        """Where a checkpoint held outside the database came from (a witness file), to name it."""
        self.pending = deque(sorted(checkpoints, key=lambda c: c.head.tree_size))
        self.tree = Frontier()
        self.previous = GENESIS
        self.recent: deque[StoredRow] = deque(maxlen=LOOKBEHIND)
        self.summary = Summary()
        self._first_seq: int | None = None
        self._skip_empty()

    def _skip_empty(self) -> None:
        while self.pending and self.pending[0].head.tree_size == 0:
            cp = self.pending[0]  # the empty tree: nothing to compare but the signature
            if self.ring.problem(cp) is not None:
                return  # left pending: finish() reports it
            self.pending.popleft()
            self.summary.checkpoints += 1

    def check(self, rows: Sequence[StoredRow], upto: int | None = None) -> Finding | None:
        """Check `rows[:upto]` in order (all by default); later rows are only looked at to tell
        a reordering from a deletion. Returns the first finding, or None."""
        end = len(rows) if upto is None else upto
        for i in range(end):
            finding = self._one(rows[i], rows[i + 1 :])
            if finding is not None:
                return finding
        return None

    def _one(self, stored: StoredRow, later: Sequence[StoredRow]) -> Finding | None:
        if stored.content_hash is None or stored.chain_hash is None:
            return Finding.at(
                "inserted", stored, "the row has no hashes: the ledger did not write it"
            )
        content = content_hash(stored.row)
        if content != stored.content_hash:
            return Finding.at(
                "changed",
                stored,
                "its content no longer matches the content hash it was archived with",
            )
        if link(self.previous, content) != stored.chain_hash:
            return self._broken_link(stored, content, later)
        self.tree.append(leaf_hash(content))
        if self._first_seq is None:
            self._first_seq = stored.archive_seq
        self.previous = stored.chain_hash
        self.recent.append(stored)
        self.summary.events += 1
        self.summary.head = TreeHead(self.tree.size, self.tree.root(), self.previous)
        while self.pending and self.pending[0].head.tree_size == self.tree.size:
            finding = self._checkpoint(self.pending.popleft(), stored)
            if finding is not None:
                return finding
        return None

    def _broken_link(
        self, stored: StoredRow, content: bytes, later: Sequence[StoredRow]
    ) -> Finding:
        earlier = list(self.recent)
        for back in range(len(earlier) - 2, -1, -1):  # the chain skips rows: they were inserted
            if link(earlier[back].chain_hash or b"", content) == stored.chain_hash:
                first = earlier[back + 1]
                return Finding.at(
                    "inserted",
                    first,
                    f"the chain goes from archive_seq {earlier[back].archive_seq} straight to "
                    f"{stored.archive_seq}: this row is not part of it",
                )
        if (
            earlier
            and earlier[0].archive_seq == self._first_seq
            and (link(GENESIS, content) == stored.chain_hash)
        ):  # the chain starts at this row: every row before it was inserted
            return Finding.at(
                "inserted", earlier[0], f"the chain starts at archive_seq {stored.archive_seq}"
            )
        for after in later:
            if (
                after.chain_hash is not None
                and link(after.chain_hash, content) == stored.chain_hash
            ):
                return Finding.at(
                    "reordered",
                    stored,
                    f"it was archived after archive_seq {after.archive_seq}, which now follows it",
                )
        gap = ""
        if earlier and stored.archive_seq != earlier[-1].archive_seq + 1:
            gap = f" (archive_seq jumps from {earlier[-1].archive_seq} to {stored.archive_seq})"
        return Finding.at(
            "missing",
            stored,
            f"the event archived before it is gone{gap}: its chain hash links to a row the "
            "archive no longer holds",
        )

    def _held_in(self, cp: Checkpoint) -> str:
        """` (held in FILE)` for a checkpoint from outside the database, else nothing."""
        source = self.sources.get(cp)
        return "" if source is None else f" (held in {source})"

    def _checkpoint(self, cp: Checkpoint, stored: StoredRow) -> Finding | None:
        size = cp.head.tree_size
        why = self.ring.problem(cp)
        if why is not None:
            detail = f"the checkpoint at tree size {size}{self._held_in(cp)} is {why}"
            return Finding("checkpoint", stored.archive_seq, None, None, detail)
        since = self.summary.last_signed.head.tree_size if self.summary.last_signed else 0
        if cp.head.root_hash != self.tree.root() or cp.head.chain_hash != self.previous:
            return Finding.at(
                "changed",
                stored,
                f"the first {size} events no longer give the tree head signed at that size"
                f"{self._held_in(cp)}: an event among numbers {since + 1}–{size} was rewritten "
                "(hashes recomputed)",
            )
        self.summary.checkpoints += 1
        self.summary.last_signed = cp
        return None

    def finish(self) -> Finding | None:
        """After the last row: a signed checkpoint covering more rows means rows were deleted;
        events that no checkpoint covers at all mean the signed history is gone."""
        if self.pending and self.pending[0].head.tree_size == 0:
            why = self.ring.problem(self.pending[0])
            return Finding(
                "checkpoint", None, None, None, f"the checkpoint at tree size 0 is {why}"
            )
        if self.pending:
            cp = self.pending[0]
            if self.ring.problem(cp) is not None:
                return Finding(
                    "checkpoint",
                    None,
                    None,
                    None,
                    f"the checkpoint at tree size {cp.head.tree_size}{self._held_in(cp)} is "
                    "not signed by the exchange's key",
                )
            last = self.recent[-1] if self.recent else None
            return Finding(
                "missing",
                last.archive_seq if last else None,
                last.row.event_id if last else None,
                last.row.topic if last else None,
                f"the archive holds {self.tree.size} events but a signed checkpoint"
                f"{self._held_in(cp)} covers {cp.head.tree_size}: events after this one were "
                "deleted",
            )
        if self.summary.events and self.summary.last_signed is None:
            return Finding(
                "unsigned",
                None,
                None,
                None,
                f"the archive holds {self.summary.events} events (from archive_seq "
                f"{self._first_seq} on) but no checkpoint signed by the trusted key: the "
                "signed history was removed, or the key is not this archive's (a new "
                "exchange signs its first checkpoint EXCHANGE_CHECKPOINT_EVERY_SECONDS after its "
                "first event, or at a clean stop: until then nothing is verified)",
            )
        return None


def follows(previous: bytes, rows: Sequence[StoredRow]) -> Finding | None:
    """Rows archived after a verified row whose chain hash is `previous`, in archive_seq order:
    the first that is not hashed and linked as the ledger writes it, or None. For the rows a
    running ledger archives while `verify` walks (services/audit/replay/derived.py); the walk's
    finer diagnosis (inserted, missing, reordered) is left to the next `verify`."""
    for stored in rows:
        if stored.content_hash is None or stored.chain_hash is None:
            return Finding.at(
                "inserted",
                stored,
                "archived during the check without hashes: the ledger did not write it",
            )
        if content_hash(stored.row) != stored.content_hash:
            return Finding.at(
                "changed",
                stored,
                "archived during the check, its content no longer matches its content hash",
            )
        if link(previous, stored.content_hash) != stored.chain_hash:
            return Finding.at(
                "changed",
                stored,
                "archived during the check, it does not link to the row "
                "before it: rows were deleted, inserted or reordered meanwhile (run verify "
                "again to name the first)",
            )
        previous = stored.chain_hash
    return None
