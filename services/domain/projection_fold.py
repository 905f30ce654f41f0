"""The read models and journal folded in memory: the one meaning of `project`'s changes.

`services.domain.projections.project` says what each event changes, as plain data. This fold
applies those changes to dictionaries with exactly the meaning the read models' SQL has
(insert-if-absent, update-if-present, the need status rule, the journal's line numbering, a
pledge's moves read from the journal's balances). Three callers share it, so they cannot drift:
- the ledger folds each batch over a window: the rows and balances the batch touches, loaded
  first, then written back in a few statements (services/ledger/batch_projection.py);
- the auditor's replay folds the whole log from nothing and copies the result into a scratch
  schema in bulk (services/audit/replay/rebuild.py);
- the audit reports (as-of, trail, disclosure) fold the archive up to a moment and read the
  tables and balances it holds (services/audit/reports/books.py).
Pure: no I/O.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any, get_args

from schemas.envelope import Envelope
from schemas.messages import Message
from services.domain.projections import (
    _PROJECTORS,
    Change,
    JournalLine,
    MatchDelivered,
    MatchEnded,
    MatchTerms,
    NeedCompleted,
    NeedFilled,
    PledgeEnded,
    PledgeSet,
    Row,
    Update,
    match_lines,
    pledge_lines,
    pledged_account,
    project,
    volunteer_account,
    withdrawal_lines,
)
from services.domain.set_aside import reason_of, settable_aside, unstorable

TABLE_KEYS: dict[str, tuple[str, ...]] = {
    "rm_needs": ("need_id",),
    "rm_funds": ("fund_id",),
    "rm_pledges": ("volunteer_id",),
    "rm_matches": ("match_id",),
    "rm_refusals": ("posting_id",),
    "journal_lines": ("event_id", "line_no"),
    "projected_events": ("event_id",),
}
"""Every table the ledger derives from the log, with its primary key."""

WALL_CLOCK_COLUMNS: dict[str, tuple[str, ...]] = {"rm_needs": ("updated_at",)}
"""Columns the ledger fills from its own clock (`now()`): no replay can reproduce them."""

INITIAL: dict[str, dict[str, Any]] = {"rm_needs": {"completed": 0}}
"""Column defaults (as in the migrations) that later changes add to."""


def _types_of(handles: Any) -> set[str]:
    return {c.TYPE for c in (get_args(handles) or (handles,))}


PROJECTED_TYPES: frozenset[str] = frozenset(
    t for handles, _ in _PROJECTORS for t in _types_of(handles)
)
"""Event types that change a read model; any other event can be counted without decoding."""


def projected(env: Envelope[Message]) -> tuple[list[Change], str | None]:
    """An event's changes, or the reason it is set aside instead of projected.

    The ledger asks this before it writes and the auditor's replay before it folds, so both
    set aside the same events: one whose projection raises (goods worth more than `Money`
    holds), or whose changes PostgreSQL would refuse (NUL in text, an instant with no UTC
    time; `unstorable`). Its archive row stays: the archive is the log."""
    try:
        changes = project(env)
    except Exception as exc:
        if not settable_aside(exc):
            raise
        return [], reason_of(exc)
    for change in changes:
        values = getattr(change, "values", None)
        if isinstance(change, JournalLine):
            values = {"amount_minor": change.amount_minor, "account": change.account}
        if isinstance(values, dict):
            table = getattr(change, "table", "journal_lines")
            found = unstorable(values, table)
            if found:
                return [], found
    return changes, None


def _need_status(row: dict[str, Any]) -> str:
    """The ledger's NEED_STATUS rule, in Python (cancelled and fulfilled are final)."""
    status = str(row["status"])
    if status in ("cancelled", "fulfilled"):
        return status
    if row["completed"] >= row["wanted"]:
        return "fulfilled"
    if row["filled"] >= row["wanted"]:
        return "matched"
    return "partially_matched" if row["filled"] > 0 else "open"


def match_terms(row: dict[str, Any]) -> MatchTerms:
    """What an `rm_matches` row holds about its supply, as the journal helpers read it."""
    return MatchTerms(
        row["supply"], row["fund_id"], row["amount_minor"], row["currency"],
        row["volunteer_id"], row["minutes"],
    )  # fmt: skip


@dataclass
class ProjectionFold:
    """Tables as {primary key: row}, and for each row the events that wrote it, in order."""

    tables: dict[str, dict[tuple[Any, ...], dict[str, Any]]] = field(
        default_factory=lambda: {t: {} for t in TABLE_KEYS}
    )
    writers: dict[tuple[str, tuple[Any, ...]], list[uuid.UUID]] = field(default_factory=dict)
    watch: frozenset[tuple[str, tuple[Any, ...]]] | None = None
    """Whose writers to note: every row's (None), or only these (table, key) rows. Noting every
    row costs a list per row; the replay folds with none, and folds again watching the rows it
    found different, to name the events behind them."""
    balances: dict[str, int] = field(default_factory=dict)
    """Journal balance per account (the ledger reads balances back for pledge moves)."""
    events: int = 0
    """Events applied (each once)."""
    set_aside: dict[uuid.UUID, str] = field(default_factory=dict)
    """Events whose changes were not applied, with the reason (`projected`, `try_apply`)."""
    _undo: list[tuple[Any, ...]] | None = field(default=None, repr=False)
    read: int = 0
    """Records read from the log, copies on several topics included."""

    def first_seen(self, event_id: uuid.UUID, archive_seq: int) -> None:
        """Record an event's first appearance in the archive (the ledger's projected_events)."""
        self.tables["projected_events"][(event_id,)] = {
            "event_id": event_id,
            "archive_seq": archive_seq,
        }

    def apply(self, env: Envelope[Message]) -> None:
        """Apply one event's projected changes, or set it aside (`projected`, `try_apply`)."""
        changes, reason = projected(env)
        if reason is not None:
            self.set_aside[env.event_id] = reason
            return
        self.try_apply(env.event_id, changes)

    def try_apply(self, event_id: uuid.UUID, changes: list[Change]) -> str | None:
        """Apply one event's changes whole, or not at all: on a failure the rows it touched
        are put back as they were (copy-on-write of the touched entries) and the reason is
        returned and noted in `set_aside`. Deterministic, like the fold itself."""
        try:
            self.apply_changes(event_id, changes)
        except Exception as exc:
            if not settable_aside(exc):
                raise
            reason = reason_of(exc)
            self.set_aside[event_id] = reason
            return reason
        return None

    def apply_changes(self, event_id: uuid.UUID, changes: list[Change]) -> None:
        """Apply the changes `project` gave for one event, in order; all or nothing (a
        failure undoes what this event changed, then raises)."""
        self._undo = []
        try:
            self._apply_changes(event_id, changes)
        except BaseException:
            self._roll_back(self._undo)
            raise
        finally:
            self._undo = None
        self.events += 1

    def _roll_back(self, undo: list[tuple[Any, ...]]) -> None:
        for entry in reversed(undo):
            kind = entry[0]
            if kind == "new":  # a row this event inserted
                self.tables[entry[1]].pop(entry[2], None)
            elif kind == "row":  # a row this event changed: its columns as they were
                row = self.tables[entry[1]][entry[2]]
                row.clear()
                row.update(entry[3])
            elif kind == "balance":  # the balance as it was (absent: None)
                if entry[2] is None:
                    self.balances.pop(entry[1], None)
                else:
                    self.balances[entry[1]] = entry[2]
            elif kind == "writer":
                self.writers[entry[1]].pop()
                if entry[2]:  # the list was made for this event
                    del self.writers[entry[1]]

    def _apply_changes(self, event_id: uuid.UUID, changes: list[Change]) -> None:
        line_no = 0
        for change in changes:
            if isinstance(change, Row):
                self._insert(change.table, change.values, event_id)
            elif isinstance(change, Update):
                row = self._row(change.table, (change.key_value,), event_id)
                if row is not None:
                    row.update(change.values)
            elif isinstance(change, JournalLine):
                line_no += 1
                self._post(event_id, line_no, change.account, change.amount_minor,
                           change.currency)  # fmt: skip
            elif isinstance(change, NeedFilled | NeedCompleted):
                done = isinstance(change, NeedCompleted)
                self._need_delta(change.need_id, event_id, change.amount, done)
            elif isinstance(change, MatchEnded | MatchDelivered):
                line_no = self._match_moves(change, event_id, line_no)
            elif isinstance(change, PledgeSet | PledgeEnded):
                line_no = self._pledge_moves(change, event_id, line_no)

    def _insert(self, table: str, values: dict[str, Any], event_id: uuid.UUID) -> None:
        key = tuple(values[k] for k in TABLE_KEYS[table])
        rows = self.tables[table]
        if key not in rows:  # ON CONFLICT DO NOTHING
            rows[key] = {**INITIAL.get(table, {}), **values}
            if self._undo is not None:
                self._undo.append(("new", table, key))
        self._wrote(table, key, event_id)

    def _row(self, table: str, key: tuple[Any, ...], event_id: uuid.UUID) -> dict[str, Any] | None:
        row = self.tables[table].get(key)
        if row is not None:
            if self._undo is not None:  # the caller changes it in place: keep it as it was
                self._undo.append(("row", table, key, dict(row)))
            self._wrote(table, key, event_id)
        return row

    def _wrote(self, table: str, key: tuple[Any, ...], event_id: uuid.UUID) -> None:
        if self.watch is None or (table, key) in self.watch:
            if self._undo is not None:
                self._undo.append(("writer", (table, key), (table, key) not in self.writers))
            self.writers.setdefault((table, key), []).append(event_id)

    def _post(
        self, event_id: uuid.UUID, line_no: int, account: str, amount: int, currency: str
    ) -> None:
        key = (event_id, line_no)
        lines = self.tables["journal_lines"]
        if key in lines:  # ON CONFLICT DO NOTHING
            return
        lines[key] = {
            "event_id": event_id,
            "line_no": line_no,
            "account": account,
            "amount_minor": amount,
            "currency": currency,
        }
        if self._undo is not None:
            self._undo.append(("new", "journal_lines", key))
            self._undo.append(("balance", account, self.balances.get(account)))
        self.balances[account] = self.balances.get(account, 0) + amount
        self._wrote("journal_lines", key, event_id)

    def _need_delta(
        self, need_id: uuid.UUID, event_id: uuid.UUID, amount: int, completed: bool
    ) -> None:
        row = self._row("rm_needs", (need_id,), event_id)
        if row is None:
            return
        row["completed" if completed else "filled"] += amount
        row["status"] = _need_status(row)

    def _match_moves(
        self, change: MatchEnded | MatchDelivered, event_id: uuid.UUID, line_no: int
    ) -> int:
        m = self._row("rm_matches", (change.match_id,), event_id)
        if m is None:  # the ledger moves nothing for a match it never saw proposed
            return line_no
        quantity = m["amount_minor"] if m["supply"] == "fund" else 1
        if isinstance(change, MatchEnded):
            m["status"] = change.status
            self._need_delta(m["need_id"], event_id, -quantity, completed=False)
        else:
            m["status"] = "completed"
            m["minutes_served"] = change.minutes_served
            self._need_delta(m["need_id"], event_id, quantity, completed=True)
        return self._post_lines(event_id, line_no, match_lines(match_terms(m), change))

    def _pledge_moves(
        self, change: PledgeSet | PledgeEnded, event_id: uuid.UUID, line_no: int
    ) -> int:
        """As the ledger: what the pledge offered before is read from the journal."""
        v = change.volunteer_id
        pledged = -self.balances.get(pledged_account(v), 0)
        if isinstance(change, PledgeSet):
            lines = pledge_lines(v, pledged, change.minutes)
        else:
            offered = self.balances.get(volunteer_account(v, "offered"), 0)
            lines = withdrawal_lines(v, offered, pledged)
        return self._post_lines(event_id, line_no, lines)

    def _post_lines(self, event_id: uuid.UUID, line_no: int, lines: list[JournalLine]) -> int:
        for line in lines:
            line_no += 1
            self._post(event_id, line_no, line.account, line.amount_minor, line.currency)
        return line_no

    def rows(self, table: str) -> list[dict[str, Any]]:
        """The table's rows (in no particular order)."""
        return list(self.tables[table].values())
