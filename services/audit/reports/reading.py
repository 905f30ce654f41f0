"""Thin readers from PostgreSQL for the audit reports: the archived events, decoded, in the
order the ledger first saw them (each event once), and organisation names.

Everything else is computed by the pure modules (books, asof, trail, disclosure)."""

from __future__ import annotations

from datetime import datetime

import asyncpg

from schemas.codec import DecodeError, decode
from schemas.envelope import Envelope
from schemas.messages import Message
from schemas.sealed import open_sealed, parse_sealed, subject_of
from services.audit.reports.books import Books, fold
from services.privacy import keys_for


async def first_sightings(
    conn: asyncpg.Connection | asyncpg.Pool, until: datetime | None = None
) -> list[Envelope[Message]]:
    """Every decodable archived event once (its first appearance), in archive order; with
    `until`, only those recorded at or before it."""
    rows = await conn.fetch(
        "SELECT a.value FROM projected_events p JOIN archive a ON a.archive_seq = p.archive_seq"
        " WHERE $1::timestamptz IS NULL OR a.recorded_at <= $1 ORDER BY p.archive_seq",
        until,
    )
    out: list[Envelope[Message]] = []
    for r in rows:
        try:
            out.append(decode(bytes(r["value"])))
        except DecodeError:
            continue  # parked on a dead-letter topic; it changed no balance
    return out


async def organisation_names(conn: asyncpg.Connection | asyncpg.Pool) -> dict[str, str]:
    """organisation id -> registered name."""
    rows = await conn.fetch("SELECT org_id, name FROM organisations")
    return {str(r["org_id"]): r["name"] for r in rows}


async def load_books(
    conn: asyncpg.Connection | asyncpg.Pool, until: datetime | None = None
) -> tuple[Books, list[Envelope[Message]]]:
    """The books folded up to `until` and the events they were folded from."""
    events = await first_sightings(conn, until)
    books = fold(events)
    for org_id, name in (await organisation_names(conn)).items():
        books.organisations.setdefault(org_id, name)
    await reveal_pseudonyms(conn, books)
    await reveal_donations(conn, books)
    return books, events


async def reveal_pseudonyms(conn: asyncpg.Connection | asyncpg.Pool, books: Books) -> None:
    """Show each volunteer's sealed pseudonym in these books as its text, or as the forgotten
    marker once the volunteer's key is deleted (docs/privacy.md). The books are a report's own
    copy and the fold's row keeps the sealed value: showing text here changes no check."""
    sealed = {vid: parse_sealed(v.pseudonym) for vid, v in books.volunteers.items()}
    keys = await keys_for(conn, {s.subject for s in sealed.values() if s is not None})
    for vid, value in sealed.items():
        if value is not None:
            books.pseudonyms[vid] = open_sealed(
                value, keys.get(value.subject), subject_of("volunteer", vid)
            )


async def reveal_donations(conn: asyncpg.Connection | asyncpg.Pool, books: Books) -> None:
    """Replace each donation's sealed donor label and note in these books by its text, or by
    the forgotten marker once the donation's key is deleted (docs/privacy.md). `donor_sealed`
    stays set, so an opened label is never named as an organisation's."""
    sealed = {
        did: (parse_sealed(d.donor), parse_sealed(d.note)) for did, d in books.donations.items()
    }
    keys = await keys_for(conn, {s.subject for pair in sealed.values() for s in pair if s})
    for did, (donor, note) in sealed.items():
        subject = subject_of("donation", did)
        if donor is not None:
            books.donations[did].donor = open_sealed(donor, keys.get(subject), subject)
        if note is not None:
            books.donations[did].note = open_sealed(note, keys.get(subject), subject)
