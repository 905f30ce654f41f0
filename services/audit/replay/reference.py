"""Reference data from the log (issue #16): fold reference.events back into the skills and
categories lists, and compare with the `reference_terms` table the gateway checks postings
against. Equal means every term the gateway let postings name (and every retirement) is on the
log as it was decided, so a replay from the log knows the same lists."""

from __future__ import annotations

from dataclasses import dataclass, field

import asyncpg

from schemas.codec import decode
from schemas.topics import REFERENCE_EVENTS
from services.domain.reference import Terms, evolve
from services.reference import load


@dataclass
class ReferenceReplay:
    """How many terms the log defines, and each term where the log and the table differ."""

    terms: int
    differences: list[str] = field(default_factory=list)

    @property
    def equal(self) -> bool:
        """Whether the table is exactly the fold of the log."""
        return not self.differences


def compare(folded: Terms, live: Terms, pending: frozenset[str] = frozenset()) -> list[str]:
    """Each term that differs between the fold of the log and the table, in words; terms
    with an event still on its way to the archive (`pending`, as `kind:code`) are skipped."""
    out = []
    keys = {(t.kind, t.code) for t in folded} | {(t.kind, t.code) for t in live}
    for kind, code in sorted(keys):
        if f"{kind.value}:{code}" in pending:
            continue
        a, b = folded.get(kind, code), live.get(kind, code)
        if a == b:
            continue
        if a is None:
            out.append(f"{kind.value} {code}: in the table, not on the log")
        elif b is None:
            out.append(f"{kind.value} {code}: on the log, not in the table")
        else:
            out.append(f"{kind.value} {code}: the log says {a}, the table {b}")
    return out


async def replay_reference(conn: asyncpg.Connection) -> ReferenceReplay:
    """Fold the archived reference.events in archive order and compare with the table."""
    terms = Terms()
    rows = await conn.fetch(
        "SELECT value, event_type FROM archive WHERE topic = $1 ORDER BY archive_seq",
        REFERENCE_EVENTS.name,
    )
    for row in rows:
        terms = evolve(terms, decode(bytes(row["value"]), row["event_type"]).payload)
    pending = await conn.fetch(
        "SELECT DISTINCT kafka_key FROM postings WHERE topic = $1 AND decided_at IS NULL",
        REFERENCE_EVENTS.name,
    )
    waiting = frozenset(bytes(r["kafka_key"]).decode() for r in pending)
    return ReferenceReplay(len(terms), compare(terms, await load(conn), waiting))
