"""Web sessions: a random id in an HttpOnly cookie, its hash in PostgreSQL, a CSRF secret each.

Why server-side sessions and not the token in a cookie: the token is the person's long-lived
credential (an API client uses it too); a session can expire, be signed out, and never shows
the token to the browser again after sign-in. The session resolves to a principal through the
token's hash, so revoking the token (`exchange orgs revoke`, a volunteer's new sign-in) ends
every session opened with it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta

import asyncpg

from services.identity import Principal, principal_for_hash, token_hash

COOKIE = "cx_session"
LANG_COOKIE = "cx_lang"
LIFETIME = timedelta(hours=12)
"""A working day; then the person signs in again."""


@dataclass(frozen=True)
class Session:
    """A signed-in person: who they act as, and the secret their forms must echo."""

    principal: Principal
    csrf: str
    id: str


def _hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


async def open_session(pool: asyncpg.Pool, token: str) -> str | None:
    """A new session for the holder of `token`; its id, or None when the token is not valid."""
    who = await principal_for_hash(pool, token_hash(token))
    if who is None:
        return None
    session_id = secrets.token_urlsafe(32)
    await pool.execute(
        "INSERT INTO web_sessions (session_hash, token_hash, csrf, expires_at)"
        " VALUES ($1, $2, $3, now() + $4)",
        _hash(session_id),
        token_hash(token),
        secrets.token_urlsafe(32),
        LIFETIME,
    )
    await pool.execute("DELETE FROM web_sessions WHERE expires_at < now()")
    return session_id


async def session_of(pool: asyncpg.Pool, session_id: str | None) -> Session | None:
    """The live session behind a cookie value, or None (unknown, expired, token revoked)."""
    if not session_id or len(session_id) > 100:
        return None
    row = await pool.fetchrow(
        "SELECT token_hash, csrf FROM web_sessions WHERE session_hash = $1 AND expires_at > now()",
        _hash(session_id),
    )
    if row is None:
        return None
    who = await principal_for_hash(pool, row["token_hash"])
    if who is None:
        return None
    return Session(who, row["csrf"], session_id)


async def close_session(pool: asyncpg.Pool, session_id: str | None) -> None:
    """Sign out: the session id is worthless from now on."""
    if session_id:
        await pool.execute("DELETE FROM web_sessions WHERE session_hash = $1", _hash(session_id))


def csrf_ok(session: Session, submitted: str | None) -> bool:
    """Whether a form carried this session's CSRF secret (compared in constant time)."""
    return bool(submitted) and hmac.compare_digest(session.csrf, submitted or "")
