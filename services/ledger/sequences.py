"""Per-stream sequence checking: every gap, late arrival or repeated number is recorded.

Which streams are numbered densely (1, 2, 3 … with nothing skipped) is a property of their
writer, so the rule lives here, in one place (docs/audit.md, "Which streams are checked"):

- `need:`, `fund:`, `volunteer:` are numbered by their intake service, one number per decided
  posting or occurrence; `match:` by the matcher that owns the match; `organisation:` by the
  operator (1 is the registration; then each suspension, reinstatement, token rotation or
  revocation, `services/operator.py`); `reference:<kind>:<code>` by the gateway (1 is the
  term's definition, 2 its retirement, `services/reference.py`).
- Sequence 0 means "unsequenced": commands (`*.postings`, numbered when decided, not when
  posted), clock ticks (`clock…`), dead letters (`dead-letters:…`).
- `listing:…` carries the supply's version (sparse by design), `checkpoints:ledger` the tree
  size, `bench:` load generators: not checked.
- A `PostingRefused` on a `match:` stream (written by versions before 0.2, which numbered a
  matcher's refusal 1 on the match's stream) is not a step of the match, so it is not checked.

Each stream is checked on its home topic, the one its single writer writes it to (`HOME`):
there, one partition holds the stream in the order it was written. Copies elsewhere (as
matcher.inputs repeats intake events) are not checked: the ledger reads topics side by side,
so a copy may well be archived before its predecessor's home copy, which is no fault.

`check` is pure; `record_sequences` runs inside the ledger's archive transaction, over the
home-topic events archived there, in archive order.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

HOME = {
    "need": "needs.events",
    "fund": "funds.events",
    "volunteer": "volunteers.events",
    "match": "matches.events",
    "organisation": "organisations.events",
    "reference": "reference.events",
}
"""The topic each numbered stream is written to by its single writer."""
SEQUENCED = frozenset(HOME)


def is_sequenced(
    stream_id: str | None, stream_seq: int | None, event_type: str, topic: str
) -> bool:
    """Whether this copy of an event is checked: a numbered stream, on its home topic."""
    if stream_id is None or stream_seq is None or stream_seq <= 0:
        return False
    kind = stream_id.split(":", 1)[0]
    if HOME.get(kind) != topic:
        return False
    return not (kind == "match" and event_type == "PostingRefused")


@dataclass(frozen=True)
class Seen:
    """One sequenced event as archived."""

    event_id: uuid.UUID
    event_type: str
    stream_id: str
    stream_seq: int
    archive_seq: int
    topic: str


@dataclass(frozen=True)
class Anomaly:
    """`gap`: numbers expected_seq … got_seq-1 were skipped; `late`: got_seq arrived after a
    higher number (it fills an earlier gap: a reordering); `repeat`: got_seq was already
    taken by another event of the stream."""

    kind: str
    expected_seq: int
    seen: Seen


def check(last: int | None, seen: Seen, numbered_before: bool) -> tuple[int, Anomaly | None]:
    """The stream's new last number and what, if anything, is wrong with `seen`.

    `last` is the highest number seen so far (None: a new stream); `numbered_before` says
    whether another event of the stream already carries `seen.stream_seq`."""
    expected = 1 if last is None else last + 1
    got = seen.stream_seq
    if got == expected:
        return got, None
    if got > expected:
        return got, Anomaly("gap", expected, seen)
    return (last or 0), Anomaly("repeat" if numbered_before else "late", expected, seen)


def check_all(events: Sequence[Seen]) -> tuple[dict[str, int], list[Anomaly]]:
    """Check a whole history in archive order (the rescan): last numbers and anomalies."""
    last: dict[str, int] = {}
    numbers: set[tuple[str, int]] = set()
    found: list[Anomaly] = []
    for s in events:
        new, anomaly = check(last.get(s.stream_id), s, (s.stream_id, s.stream_seq) in numbers)
        last[s.stream_id] = new
        numbers.add((s.stream_id, s.stream_seq))
        if anomaly is not None:
            found.append(anomaly)
    return last, found


async def record_sequences(conn: asyncpg.Connection, events: Sequence[Seen]) -> list[Anomaly]:
    """Advance `stream_positions` and insert anomalies for `events` (in archive order).

    Runs in the caller's transaction (the archive batch), so positions and anomalies commit
    with the rows they describe, or not at all."""
    if not events:
        return []
    streams = sorted({s.stream_id for s in events})
    last: dict[str, int] = {
        r["stream_id"]: r["last_seq"]
        for r in await conn.fetch(
            "SELECT stream_id, last_seq FROM stream_positions WHERE stream_id = ANY($1::text[])",
            streams,
        )
    }
    counts: dict[str, tuple[uuid.UUID, int, int]] = {}
    n: dict[str, int] = {}
    found: list[Anomaly] = []
    for s in events:
        before = last.get(s.stream_id)
        numbered = False
        if before is not None and s.stream_seq <= before:  # rare: ask the archive
            numbered = bool(
                await conn.fetchval(
                    "SELECT EXISTS (SELECT 1 FROM archive a WHERE a.stream_id = $1"
                    " AND a.stream_seq = $2 AND a.event_id <> $3 AND a.archive_seq < $4"
                    " AND a.topic = $5)",
                    s.stream_id,
                    s.stream_seq,
                    s.event_id,
                    s.archive_seq,
                    s.topic,
                )
            )
        new, anomaly = check(before, s, numbered)
        last[s.stream_id] = new
        n[s.stream_id] = n.get(s.stream_id, 0) + 1
        if new == s.stream_seq:
            counts[s.stream_id] = (s.event_id, s.archive_seq, new)
        if anomaly is not None:
            found.append(anomaly)
    await conn.executemany(
        "INSERT INTO stream_positions (stream_id, last_seq, last_event, archive_seq, events)"
        " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (stream_id) DO UPDATE SET"
        " last_seq = greatest(stream_positions.last_seq, EXCLUDED.last_seq),"
        " last_event = CASE WHEN EXCLUDED.last_seq > stream_positions.last_seq"
        " THEN EXCLUDED.last_event ELSE stream_positions.last_event END,"
        " archive_seq = CASE WHEN EXCLUDED.last_seq > stream_positions.last_seq"
        " THEN EXCLUDED.archive_seq ELSE stream_positions.archive_seq END,"
        " events = stream_positions.events + EXCLUDED.events",
        [
            (sid, last[sid], *(counts[sid][:2] if sid in counts else (None, None)), n[sid])
            for sid in streams
        ],
    )
    if found:
        await conn.executemany(
            "INSERT INTO sequence_anomalies (stream_id, kind, expected_seq, got_seq, event_id,"
            " event_type, archive_seq, topic) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
            " ON CONFLICT DO NOTHING",
            [
                (
                    a.seen.stream_id,
                    a.kind,
                    a.expected_seq,
                    a.seen.stream_seq,
                    a.seen.event_id,
                    a.seen.event_type,
                    a.seen.archive_seq,
                    a.seen.topic,
                )
                for a in found
            ],
        )
    return found
