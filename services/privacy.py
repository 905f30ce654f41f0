"""Subject keys in PostgreSQL: made when text about a subject is first sealed, read where text
is shown to people, deleted to forget (docs/privacy.md).

The keys never leave PostgreSQL's `subject_keys` table for a topic or the archive; the stream
processors, the ledger and the auditor's replay never need them, so forgetting changes nothing
they compute. Every function here takes an asyncpg connection or pool.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

import asyncpg

from schemas.sealed import new_key, subject_of, subjects_in

__all__ = [
    "ForgetResult",
    "Forgotten",
    "forget",
    "get_or_create_key",
    "insert_key",
    "key_writer",
    "keys_for",
    "privacy_counts",
]


class Forgotten(Exception):
    """The subject was forgotten: no new text about it may be sealed (it would need a new key,
    and "forgotten" would then no longer mean what it says)."""

    def __init__(self, subject: str) -> None:
        super().__init__(f"{subject} was forgotten")
        self.subject = subject


FORGET_POSTINGS_TOPIC = {"volunteer": "pledges.postings", "need": "needs.postings"}
"""Where the postings about a subject are (keyed by the volunteer's or the need's id). A
donation's posting is keyed by its fund and found by the `donation_id` of its answer."""

Kind = Literal["volunteer", "need", "donation"]


async def _lock(conn: Any, subject: str) -> None:
    """Serialise key creation and forgetting of one subject (a transaction-level lock), so a
    key is never created for a subject whose forgetting commits meanwhile."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 7))", subject)


async def insert_key(conn: asyncpg.Connection, subject: str, key: bytes) -> None:
    """Store the key of a new subject (a volunteer or need id the gateway just made), on the
    transaction that writes the first posting sealed under it."""
    await conn.execute("INSERT INTO subject_keys (subject, key) VALUES ($1, $2)", subject, key)


async def insert_keys(conn: asyncpg.Connection, keys: dict[str, bytes]) -> None:
    """`insert_key` for many new subjects in one statement (the bulk import)."""
    await conn.execute(
        "INSERT INTO subject_keys (subject, key) SELECT * FROM unnest($1::text[], $2::bytea[])",
        list(keys),
        list(keys.values()),
    )


def key_writer(subject: str, key: bytes) -> Callable[[asyncpg.Connection], Awaitable[None]]:
    """`insert_key` for this subject and key, to run on a posting's own transaction."""

    async def write(conn: asyncpg.Connection) -> None:
        await insert_key(conn, subject, key)

    return write


async def get_or_create_key(pool: asyncpg.Pool, subject: str) -> bytes:
    """The subject's key, made and committed first if it has none (a volunteer registered before
    sealing existed). Committed before the posting sealed under it, so no posting ever holds a
    ciphertext whose key was not stored; a posting that then fails leaves an unused key, which
    reveals nothing. Raises `Forgotten` for a forgotten subject."""
    async with pool.acquire() as conn, conn.transaction():
        await _lock(conn, subject)
        if await conn.fetchval("SELECT 1 FROM forgotten_subjects WHERE subject = $1", subject):
            raise Forgotten(subject)
        key = await conn.fetchval("SELECT key FROM subject_keys WHERE subject = $1", subject)
        if key is None:
            key = new_key()
            await insert_key(conn, subject, key)
        return bytes(key)


async def keys_for(conn: Any, subjects: Iterable[str]) -> dict[str, bytes]:
    """The keys of these subjects that still exist (a forgotten subject is simply absent)."""
    wanted = sorted(set(subjects))
    if not wanted:
        return {}
    rows = await conn.fetch(
        "SELECT subject, key FROM subject_keys WHERE subject = ANY($1::text[])", wanted
    )
    return {r["subject"]: bytes(r["key"]) for r in rows}


async def keys_in(conn: Any, values: Iterable[object]) -> dict[str, bytes]:
    """The keys of every subject sealed anywhere in these JSON-like values."""
    subjects: set[str] = set()
    for v in values:
        subjects |= subjects_in(v)
    return await keys_for(conn, subjects)


async def all_keys(conn: Any) -> dict[str, bytes]:
    """Every key there is: for reports that show text from the whole log (auditors only)."""
    rows = await conn.fetch("SELECT subject, key FROM subject_keys")
    return {r["subject"]: bytes(r["key"]) for r in rows}


@dataclass(frozen=True)
class ForgetResult:
    """What one `forget` did: the subject, whether a key was deleted, whether it had already
    been forgotten, and how many archived events carry values sealed under it."""

    subject: str
    had_key: bool
    already: bool
    sealed_events: int


async def sealing_subject(conn: asyncpg.Connection, kind: Kind, subject_id: uuid.UUID) -> str:
    """The subject whose key seals this volunteer's or need's text. A need that is a later
    occurrence of a weekly need carries the description of the need as posted, sealed under
    the first occurrence's id; `rm_needs.spec` says which."""
    if kind == "need":
        spec = await conn.fetchval("SELECT spec FROM rm_needs WHERE need_id = $1", subject_id)
        found = subjects_in(spec) if spec is not None else set()
        if len(found) == 1:
            return found.pop()
    return subject_of(kind, subject_id)


async def forget(conn: asyncpg.Connection, subject: str, by: str) -> ForgetResult:
    """Delete the subject's key and record that it was forgotten (who, when; no content), in
    one transaction. Nothing is published and nothing in the archive changes: the ciphertexts
    stay, and with the key gone nobody can read them."""
    async with conn.transaction():
        await _lock(conn, subject)
        already = bool(
            await conn.fetchval("SELECT 1 FROM forgotten_subjects WHERE subject = $1", subject)
        )
        deleted = await conn.fetchval(
            "WITH d AS (DELETE FROM subject_keys WHERE subject = $1 RETURNING 1)"
            " SELECT count(*) FROM d",
            subject,
        )
        if not already:
            await conn.execute(
                "INSERT INTO forgotten_subjects (subject, forgotten_by, had_key)"
                " VALUES ($1, $2, $3)",
                subject,
                by,
                bool(deleted),
            )
        # The outbox keeps, for idempotent retries, a SHA-256 of each request's path and body,
        # and the body held the text in plain: with every other field known from the event, a
        # guessed pseudonym could be confirmed against it. So the subject's postings lose it
        # (a retry of one of them is then answered 409, as for a different body).
        kind, _, subject_id = subject.partition(":")
        if kind == "donation":
            await conn.execute(
                "UPDATE postings SET request_hash = 'forgotten' WHERE topic = 'donations.postings'"
                " AND response->>'donation_id' = $1",
                subject_id,
            )
        else:
            await conn.execute(
                "UPDATE postings SET request_hash = 'forgotten'"
                " WHERE topic = $1 AND kafka_key = $2",
                FORGET_POSTINGS_TOPIC[kind],
                subject_id.encode(),
            )
    sealed = await conn.fetchval(
        "SELECT count(*) FROM archive WHERE position(convert_to($1, 'UTF8') IN value) > 0",
        f'"subject":"{subject}"',
    )
    return ForgetResult(subject, bool(deleted), already, int(sealed))


async def plain_text_left(conn: asyncpg.Connection, kind: Kind, subject_id: uuid.UUID) -> list[str]:
    """Where the log holds this subject's personal text in plain (events written before sealing
    existed, docs/privacy.md): what forgetting cannot erase. One line per event type. A
    volunteer's declines (on their matches' streams) are not searched."""
    from schemas.codec import DecodeError, decode

    if kind == "donation":  # on the fund's stream: found by the donation id in the bytes
        rows = await conn.fetch(
            "SELECT event_type, value FROM archive WHERE event_type = ANY($1::text[])"
            " AND position(convert_to($2, 'UTF8') IN value) > 0",
            ["ReceiveDonation", "DonationReceived"],
            str(subject_id),
        )
    else:
        rows = await conn.fetch(
            "SELECT event_type, value FROM archive WHERE stream_id = $1", f"{kind}:{subject_id}"
        )
    found: dict[str, int] = {}
    for r in rows:
        try:
            p = decode(bytes(r["value"]), r["event_type"]).payload
        except DecodeError:
            continue
        spec = getattr(p, "pledge", None) or getattr(p, "need", None)
        gift = getattr(p, "donation", None)
        if gift is not None and getattr(p, "donation_id", None) != subject_id:
            continue
        texts = [
            getattr(p, "pseudonym", None),
            getattr(spec, "pseudonym", None),
            getattr(spec, "description", None),
            getattr(p, "reason", None) if kind == "volunteer" else None,
            getattr(gift, "note", None),
        ]
        if gift is not None and not await _organisation(conn, gift.donor):
            texts.append(gift.donor)  # an organisation's name is public: nothing to erase
        if any(isinstance(t, str) and t for t in texts):
            found[r["event_type"]] = found.get(r["event_type"], 0) + 1
    return [f"{n} archived {t} event(s) with plain text" for t, n in sorted(found.items())]


async def _organisation(conn: asyncpg.Connection, label: object) -> bool:
    return isinstance(label, str) and bool(
        await conn.fetchval("SELECT 1 FROM organisations WHERE name = $1", label)
    )


async def privacy_counts(conn: asyncpg.Connection) -> dict[str, int]:
    """What an auditor may see about forgetting: how many subjects hold keys, how many were
    forgotten (volunteers, needs and donations), never who or what."""
    row = await conn.fetchrow(
        "SELECT (SELECT count(*) FROM subject_keys) AS keys,"
        " (SELECT count(*) FROM forgotten_subjects WHERE subject LIKE 'volunteer:%') AS vol,"
        " (SELECT count(*) FROM forgotten_subjects WHERE subject LIKE 'need:%') AS need,"
        " (SELECT count(*) FROM forgotten_subjects WHERE subject LIKE 'donation:%') AS don"
    )
    return {
        "subject_keys": int(row["keys"]),
        "forgotten_volunteers": int(row["vol"]),
        "forgotten_needs": int(row["need"]),
        "forgotten_donations": int(row["don"]),
    }
