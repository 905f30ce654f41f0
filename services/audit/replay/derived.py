"""`exchange audit verify`'s last step: the derived tables equal a fold of the verified archive.

The hash chain and the signed checkpoints prove that the archive is what the ledger wrote.
Nothing proves the tables the ledger derives from it (the money journal, the read models), and
those are what the exchange shows and decides from: an insider who changes a journal line's
amount, a fund's available money or a need's fill, with everything else consistent, leaves the
archive intact. Only folding the archive again and comparing catches that, so this runs
`replay`'s own fold and comparison (`fold_and_compare`, services/audit/replay/rebuild.py) unchanged:
there is one reading of the projections for both commands.

The fold runs in one snapshot taken after the walk (`scratch_snapshot`). A running ledger may
have archived more rows since the walk, and the live tables in the snapshot include them, so the
fold must too. Those rows were not walked: first, in the same snapshot, the archive must still
hold the walk's last row at its place, and every later row must be hashed and linked after it as
the ledger links rows (`follows`). Then every row the fold reads is part of the verified chain.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from services.audit.evidence.archive_row import ROW_COLUMNS
from services.audit.evidence.database import PAGE, row_at, stored_row
from services.audit.evidence.verify import Finding, Summary, follows
from services.audit.replay.rebuild import (
    Progress,
    ProjectionReport,
    fold_and_compare,
    scratch_snapshot,
)

JOURNAL = "journal_lines"
"""The money journal (money and volunteer minutes); every other derived table is a read model."""


@dataclass(frozen=True)
class DerivedCheck:
    """What comparing the derived tables with a fold of the archive found."""

    finding: Finding | None
    """The archive changed under the check (rows after the walk not linked to it): no fold."""
    report: ProjectionReport | None
    """The comparison, table by table (None when `finding` stopped it)."""
    after_walk: int = 0
    """Rows archived after the walk, checked by `follows` and folded too."""

    @property
    def equal(self) -> bool:
        """Every derived table equals the fold, row for row and column for column."""
        return self.finding is None and self.report is not None and self.report.equal

    @property
    def read_models(self) -> list[str]:
        """The derived tables compared, other than the money journal."""
        tables = self.report.differences if self.report is not None else {}
        return [t for t in tables if t != JOURNAL]


async def verify_derived(
    conn: asyncpg.Connection, walked: Summary, progress: Progress | None = None
) -> DerivedCheck:
    """Compare every derived table with a fold of the archive `walked` verified (plus the rows
    archived since, once they are shown to extend it), as of one snapshot; nothing is written."""
    async with scratch_snapshot(conn):
        after, finding = await _extends(conn, walked)
        if finding is not None:
            return DerivedCheck(finding, None)
        if progress is not None:
            progress.total = walked.events + after
        report = await fold_and_compare(conn, None, progress)
        return DerivedCheck(None, report, after)


async def _extends(conn: asyncpg.Connection, walked: Summary) -> tuple[int, Finding | None]:
    """Whether the archive in this snapshot is the walked one plus rows linked after it: how
    many rows were archived after the walk, and the first thing that says otherwise."""
    last_seq = -(2**63)  # archive_seq can be made zero or negative by hand
    if walked.events:
        r = await row_at(conn, walked.events)
        if r is None or r["chain_hash"] != walked.head.chain_hash:
            return 0, Finding(
                "changed",
                None if r is None else r["archive_seq"],
                None if r is None else r["event_id"],
                None if r is None else r["topic"],
                f"the archive changed while verify ran: event number {walked.events} is no "
                "longer the one the walk verified (run verify again to name the first change)",
            )
        last_seq = r["archive_seq"]
    previous, after = walked.head.chain_hash, 0
    while True:
        rows = [
            stored_row(r)
            for r in await conn.fetch(
                f"SELECT {ROW_COLUMNS} FROM archive WHERE archive_seq > $1"
                " ORDER BY archive_seq LIMIT $2",
                last_seq,
                PAGE,
            )
        ]
        if not rows:
            return after, None
        finding = follows(previous, rows)
        if finding is not None:
            return after, finding
        after += len(rows)
        previous, last_seq = rows[-1].chain_hash or b"", rows[-1].archive_seq
