"""The head of the archive as the ledger last wrote it, kept outside the database.

Whoever can write the database can append rows to `archive` with correctly recomputed hashes.
Without a record of its own, the ledger would take such rows into its Merkle tree at its next
start (or between two batches) and sign a checkpoint covering them: a forgery vouched for by
the exchange's key. So the ledger keeps the head it wrote, `(archive_seq, chain_hash,
tree_size)` of its newest row, in `<witness dir>/ledger-head.json`, and before it archives
or signs anything it checks that the archive's newest row is that head.

A crash can fall between the database commit and the file update, so each batch writes an
intent first: the head the batch *will* produce is recorded as `pending` (durably, fsync'd)
before the transaction commits, and as `committed` after. At start the archive's newest row
must then be either the committed head (the batch rolled back) or the pending one (it
committed); anything else was not written by the ledger, and it refuses to start
(docs/audit.md, "The ledger signs only what it wrote"). The file is replaced atomically
(temporary file + `os.replace`): a reader sees the old or the new record, never half of one.

The record's format and its reading are the evidence's (services/audit/evidence/ledger_head.py,
which `exchange audit verify` reads the file with); the comparison here is pure, and
`LedgerHead` adds writing the file and the queries.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import asyncpg

from services.audit.evidence.chain import GENESIS
from services.audit.evidence.ledger_head import (
    EMPTY,
    Head,
    HeadRecord,
    read_record,
    record_json,
)

log = logging.getLogger(__name__)


def write_record(path: Path, record: HeadRecord, *, durable: bool) -> None:
    """Replace the head file atomically. `durable`: fsync the file and its directory before
    returning (the intent must survive a power loss that the database commit survives; the
    update after the commit need not, since the intent already matches the database)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w") as out:
            json.dump(record_json(record), out)
            out.write("\n")
            if durable:
                out.flush()
                os.fsync(out.fileno())
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    if durable:
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


Verdict = Literal["committed", "pending"]


def same_row(head: Head, newest: tuple[int, bytes | None] | None) -> bool:
    """Whether the archive's newest row `(archive_seq, chain_hash)` (None: no rows) is `head`'s,
    by archive_seq and chain hash."""
    if newest is None:
        return head.tree_size == 0 and head.chain_hash == GENESIS
    return (head.archive_seq, head.chain_hash) == newest


def judge(record: HeadRecord, newest: tuple[int, bytes | None] | None) -> Verdict | None:
    """Which of the recorded heads the archive ends at, or None when it ends at neither: rows
    after the ledger's head that it did not write, or its own rows gone or rewritten."""
    if record.pending is not None and same_row(record.pending, newest):
        return "pending"
    if same_row(record.committed, newest):
        return "committed"
    return None


class ForeignArchive(Exception):
    """The ledger cannot vouch for the archive: it does not end where the ledger left it (or
    the head file cannot be read). The message says where, and what the operator can do."""


NEWEST = "SELECT archive_seq, chain_hash FROM archive ORDER BY archive_seq DESC LIMIT 1"


async def newest_row(conn: asyncpg.Connection) -> tuple[int, bytes | None] | None:
    """The archive's newest row as `(archive_seq, chain_hash)`, None when it is empty."""
    r = await conn.fetchrow(NEWEST)
    return None if r is None else (int(r["archive_seq"]), r["chain_hash"])


RECOVERY = (
    "`exchange audit verify --witness DIR` names the rows. Remove rows the ledger did not "
    "write; or, only if the archive as it stands is right (a database restored from a backup), "
    "record its newest row as the ledger's head with `exchange ledger adopt-head` "
    '(docs/operations.md, "The ledger refuses to start")'
)


class LedgerHead:
    """The ledger's record of its own head: checked at start and before every batch, written
    as an intent before every commit and as committed after it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.record: HeadRecord | None = None
        """None until `resume`/`settle` have run (or when the file did not exist yet)."""

    async def resume(self, conn: asyncpg.Connection) -> None:
        """At start, before the tree is loaded: the archive must end at the recorded committed
        or pending head. Raises ForeignArchive otherwise; does nothing when there is no head
        file yet (`settle` then trusts the archive as it is)."""
        try:
            record = await asyncio.to_thread(read_record, self.path)
        except ValueError as exc:
            raise ForeignArchive(
                f"{exc}: restore it, or record the archive's head with `exchange ledger "
                "adopt-head` after checking the archive"
            ) from None
        except OSError as exc:  # unreachable or unreadable: not the same as "none yet"
            raise ForeignArchive(
                f"cannot read the ledger's head file {self.path} ({exc}): without it the ledger "
                "cannot tell its own rows from rows someone else added; make it readable"
            ) from None
        if record is None:
            return
        newest = await newest_row(conn)
        verdict = judge(record, newest)
        if verdict is None:
            raise ForeignArchive(await explain(conn, record, newest, self.path))
        head = record.pending if verdict == "pending" else record.committed
        assert head is not None
        self.record = HeadRecord(head)
        if record != self.record:  # a crash left an intent: settle it now
            await asyncio.to_thread(write_record, self.path, self.record, durable=True)
            log.info(
                "ledger head: settled an intent a crash left",
                extra={"archive_seq": head.archive_seq, "committed": verdict == "pending"},
            )

    async def settle(self, conn: asyncpg.Connection, tree_size: int, last_seq: int) -> None:
        """After the tree is loaded: with no head file yet (a new archive, or an upgrade), trust
        the archive as it is and record its head; with one, check the tree agrees with it."""
        if self.record is not None:
            if self.record.committed.tree_size != tree_size:
                raise ForeignArchive(
                    f"the archive up to the ledger's head (archive_seq "
                    f"{self.record.committed.archive_seq}) holds {tree_size} rows, but the "
                    f"ledger wrote {self.record.committed.tree_size} ({self.path}): rows were "
                    f"inserted or deleted below it. {RECOVERY}"
                )
            return
        newest = await newest_row(conn)
        if newest is not None and newest[1] is None:
            raise ForeignArchive(
                f"the archive's newest row, archive_seq {newest[0]}, has no hashes: the ledger "
                f"did not write it, and there is no head file ({self.path}) yet. {RECOVERY}"
            )
        if newest is not None and newest[0] != last_seq:
            raise RuntimeError(f"the tree ends at archive_seq {last_seq}, the archive at {newest}")
        head = EMPTY if newest is None else Head(newest[0], newest[1] or GENESIS, tree_size)
        self.record = HeadRecord(head)
        await asyncio.to_thread(write_record, self.path, self.record, durable=True)
        log.log(  # a new archive is trivially the ledger's; an upgrade's is taken on trust
            logging.INFO if newest is None else logging.WARNING,
            "ledger head: no head file yet; trusting the archive as it is and recording its head",
            extra={"path": str(self.path), "archive_seq": head.archive_seq, "tree_size": tree_size},
        )

    async def check(self, conn: asyncpg.Connection) -> None:
        """Inside a batch's transaction, under the archive lock: the archive still ends at the
        ledger's head (or at the intent of a batch whose commit it did not hear back from)."""
        record = self._required()
        newest = await newest_row(conn)
        verdict = judge(record, newest)
        if verdict is None:
            raise ForeignArchive(await explain(conn, record, newest, self.path))
        if verdict == "pending" and record.pending is not None:  # it did commit after all
            self.record = HeadRecord(record.pending)
        elif record.pending is not None:  # it did not
            self.record = HeadRecord(record.committed)

    @property
    def committed(self) -> Head:
        """The head of everything the ledger has committed."""
        return self._required().committed

    async def intend(self, head: Head) -> None:
        """Before a batch commits: record the head it will produce, durably. A failure raises:
        a batch whose head cannot be recorded is not committed (it would look foreign at the
        next start)."""
        record = HeadRecord(self.committed, head)
        try:
            await asyncio.to_thread(write_record, self.path, record, durable=True)
        except OSError as exc:
            log.error(
                "cannot record the batch's head outside the database; not committing it",
                extra={"path": str(self.path), "error": repr(exc)},
            )
            raise
        self.record = record

    async def commit(self) -> None:
        """After the batch committed: its head is the committed one. A failure to write is only
        logged: the intent on disk already matches the database."""
        record = self._required()
        if record.pending is None:
            return
        self.record = HeadRecord(record.pending)
        try:
            await asyncio.to_thread(write_record, self.path, self.record, durable=False)
        except OSError as exc:
            log.warning("ledger head not updated after a commit", extra={"error": repr(exc)})

    def _required(self) -> HeadRecord:
        if self.record is None:
            raise RuntimeError("the ledger head is used before resume() and settle()")
        return self.record


async def explain(
    conn: asyncpg.Connection,
    record: HeadRecord,
    newest: tuple[int, bytes | None] | None,
    path: Path,
) -> str:
    """Why the archive does not end at the ledger's head, naming the first row concerned."""
    for head in (record.pending, record.committed):
        if head is None or not await _holds(conn, head):
            continue
        first, count = await conn.fetchrow(
            "SELECT min(archive_seq), count(*) FROM archive WHERE archive_seq > $1",
            head.archive_seq,
        )
        if first is not None:
            return (
                f"archive_seq {first} (and {count - 1} rows after it) was not written by the "
                f"ledger: its own head ({path}) is archive_seq {head.archive_seq}, tree size "
                f"{head.tree_size}. Refusing to start, so that no checkpoint signs those rows. "
                f"{RECOVERY}"
            )
    head = record.committed
    if newest is None or newest[0] < head.archive_seq:
        ends = "is empty" if newest is None else f"ends at archive_seq {newest[0]}"
        return (
            f"the archive {ends}, before the ledger's own head, archive_seq {head.archive_seq} "
            f"(tree size {head.tree_size}, {path}): rows the ledger wrote were deleted, or the "
            f"database was restored from an older backup. Refusing to start. {RECOVERY}"
        )
    return (
        f"archive_seq {head.archive_seq}, the ledger's own head ({path}), no longer holds the "
        "row the ledger wrote there (its chain hash differs): the archive was rewritten. "
        f"Refusing to start. {RECOVERY}"
    )


async def _holds(conn: asyncpg.Connection, head: Head) -> bool:
    """Whether the archive still has the row `head` names, with the chain hash it had."""
    if head.tree_size == 0:
        return head.chain_hash == GENESIS
    chain = await conn.fetchval(
        "SELECT chain_hash FROM archive WHERE archive_seq = $1", head.archive_seq
    )
    return bool(chain == head.chain_hash)


async def adopt(conn: asyncpg.Connection, path: Path) -> tuple[HeadRecord | None, HeadRecord]:
    """Record the archive's newest row as the ledger's head (the operator's explicit decision
    that the archive as it stands is right). The file it replaces is kept beside it, renamed,
    as evidence. Returns (the old record or None, the new one)."""
    newest = await newest_row(conn)
    if newest is not None and newest[1] is None:
        raise ForeignArchive(
            f"the archive's newest row, archive_seq {newest[0]}, has no hashes: the ledger did "
            "not write it; remove it first"
        )
    size = int(await conn.fetchval("SELECT count(*) FROM archive"))
    new = HeadRecord(EMPTY if newest is None else Head(newest[0], newest[1] or GENESIS, size))
    return await asyncio.to_thread(_replace_keeping, path, new), new


def _replace_keeping(path: Path, new: HeadRecord) -> HeadRecord | None:
    """Write `new` to `path`, the file it replaces renamed beside it; return what that held."""
    try:
        old = read_record(path)
    except ValueError:
        old = None
    if path.exists():
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        path.rename(path.with_name(f"{path.name}.replaced-{stamp}"))
    write_record(path, new, durable=True)
    return old
