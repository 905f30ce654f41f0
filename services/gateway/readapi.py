"""The read side of the API: needs, funds, volunteers, matches and postings, each shown to
those allowed to see it, paginated by cursor, and stamped with the sequence it reflects."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request, Response
from fastapi.responses import StreamingResponse

from schemas.common import CategoryCode, PlaceName, Role, Urgency
from services.gateway import reads
from services.gateway.deps import Caller, Pool, may_read_private, require_role, still_admitted
from services.gateway.faults import DETAILS
from services.gateway.limits import StreamSlots, check_min_seq
from services.gateway.openapi import EVENT_STREAM
from services.gateway.tokens import TokenCache
from services.gateway.visibility import Visibility
from services.identity import Principal
from services.platform.db import unavailable_reason
from services.settings import Settings

router = APIRouter(prefix="/v1", tags=["read"])

MAX_SEQ = 2**63 - 1

RECHECK_SECONDS = 30.0
"""How often an open event stream asks whether its credentials still hold even when no
revocation was heard (the listener may have been down): the longest a cut-off token's stream
can outlive the cut."""

CUT_OFF = (
    "this token was revoked or replaced, or its organisation suspended, since the stream "
    "opened: the stream ends here"
)
"""Archive sequences are PostgreSQL bigints: a larger number names nothing, and asyncpg cannot
even send it (it was a 500)."""

Limit = Annotated[int, Query(ge=1, le=500)]
After = Annotated[
    int | None, Query(ge=0, le=MAX_SEQ, description="cursor: `next` of the previous page")
]


async def _min_seq(
    request: Request,
    pool: Pool,
    min_seq: Annotated[
        int | None,
        Query(
            ge=0,
            le=MAX_SEQ,
            description="wait (up to 10 s) until the read models reflect this sequence; "
            "far ahead of the log: 409 `min_seq_ahead` at once",
        ),
    ] = None,
) -> int | None:
    """`min_seq`, refused at once (409) when it is too far ahead of the log to wait for."""
    if min_seq:
        settings: Settings = request.app.state.settings
        check_min_seq(min_seq, await reads.as_of(pool), settings.min_seq_ahead_margin)
    return min_seq


MinSeq = Annotated[int | None, Depends(_min_seq)]
NeedStatus = Literal["open", "partially_matched", "matched", "fulfilled", "cancelled"]
"""What `rm_needs.status` holds (services/domain/projection_fold.py `_need_status`)."""


async def _stamp(response: Response, pool: Pool, min_seq: int | None) -> int:
    seq = await (reads.wait_for_seq(pool, min_seq, 10.0) if min_seq else reads.as_of(pool))
    response.headers["X-Exchange-Seq"] = str(seq)
    return seq


def _page(items: list[dict[str, Any]], limit: int, seq: int) -> dict[str, Any]:
    nxt = items[-1]["seq"] if len(items) == limit else None
    return {"items": items, "next": nxt, "as_of_seq": seq}


def _found(item: dict[str, Any] | None, what: str) -> dict[str, Any]:
    if item is None:
        raise HTTPException(
            404, f"no such {what} (yet: postings become visible once decided and archived)"
        )
    return item


@router.get("/postings/{posting_id}")
async def get_posting(posting_id: uuid.UUID, pool: Pool, who: Caller) -> dict[str, Any]:
    """Where one of your postings stands: pending, decided or refused (with the reason), and the
    sequence of the decision (`decided_seq`) to pass as `min_seq` to other reads."""
    item = _found(await reads.posting(pool, posting_id), "posting")
    if who.role is not Role.AUDITOR and item["org_id"] != str(who.id):
        raise HTTPException(403, "this posting was made by another organisation")
    return item


@router.get("/needs")
async def list_needs(
    response: Response,
    pool: Pool,
    who: Caller,
    district: PlaceName | None = None,
    category: CategoryCode | None = None,
    status: NeedStatus | None = None,
    urgency: Urgency | None = None,
    org_id: Annotated[
        uuid.UUID | None, Query(description="only the needs this organisation posted")
    ] = None,
    after: After = None,
    limit: Limit = 50,
    min_seq: MinSeq = None,
) -> dict[str, Any]:
    """Needs (open to every participant: they carry counts, never beneficiaries), newest
    first, filtered by district, category, status, urgency and the organisation that posted
    them (a community's own list: `org_id` = its id)."""
    seq = await _stamp(response, pool, min_seq)
    items = await reads.needs(
        pool,
        district=district,
        category=category,
        status=status,
        urgency=urgency,
        org_id=org_id,
        after=after,
        limit=limit,
    )
    return _page(items, limit, seq)


@router.get("/needs/{need_id}")
async def get_need(
    need_id: uuid.UUID, response: Response, pool: Pool, who: Caller, min_seq: MinSeq = None
) -> dict[str, Any]:
    """A need with its status; its matches for the owning community and auditors."""
    seq = await _stamp(response, pool, min_seq)
    private = await may_read_private(pool, who, "need", need_id)
    return _found(await reads.need(pool, need_id, with_matches=private), "need") | {
        "as_of_seq": seq
    }


@router.get("/funds")
async def list_funds(
    response: Response,
    pool: Pool,
    who: Caller,
    after: After = None,
    limit: Limit = 50,
    min_seq: MinSeq = None,
) -> dict[str, Any]:
    """Funds with their earmarks and balances, newest first."""
    seq = await _stamp(response, pool, min_seq)
    return _page(await reads.funds(pool, after, limit), limit, seq)


@router.get("/funds/{fund_id}")
async def get_fund(
    fund_id: uuid.UUID, response: Response, pool: Pool, who: Caller, min_seq: MinSeq = None
) -> dict[str, Any]:
    """A fund with its balance split into available, reserved and disbursed (from the journal)."""
    seq = await _stamp(response, pool, min_seq)
    return _found(await reads.fund(pool, fund_id), "fund") | {"as_of_seq": seq}


@router.get("/funds/{fund_id}/history")
async def get_fund_history(
    fund_id: uuid.UUID, response: Response, pool: Pool, who: Caller, min_seq: MinSeq = None
) -> dict[str, Any]:
    """Every money movement of the fund (the owning foundation and auditors)."""
    if not await may_read_private(pool, who, "fund", fund_id):
        raise HTTPException(403, "a fund's history is for its foundation and auditors")
    seq = await _stamp(response, pool, min_seq)
    return {"items": await reads.fund_history(pool, fund_id), "as_of_seq": seq}


@router.get("/volunteers")
async def list_volunteers(
    response: Response,
    pool: Pool,
    who: Caller,
    after: After = None,
    limit: Limit = 50,
    min_seq: MinSeq = None,
) -> dict[str, Any]:
    """The volunteers you registered (communities and social organisations; auditors: all),
    newest first: pseudonym, district, and whether the pledge stands (`active`,
    `withdrawn`, or `registered` before the first pledge)."""
    require_role(who, Role.COMMUNITY, Role.SOCIAL_ORG, Role.AUDITOR)
    seq = await _stamp(response, pool, min_seq)
    return _page(await reads.volunteers(pool, who, after, limit), limit, seq)


@router.get("/volunteers/{volunteer_id}")
async def get_volunteer(
    volunteer_id: uuid.UUID, response: Response, pool: Pool, who: Caller, min_seq: MinSeq = None
) -> dict[str, Any]:
    """A volunteer's pledge and shifts (the volunteer, their organisation, auditors)."""
    if not await may_read_private(pool, who, "volunteer", volunteer_id):
        raise HTTPException(
            403, "a volunteer's plans are for them, their organisation and auditors"
        )
    seq = await _stamp(response, pool, min_seq)
    return _found(await reads.volunteer(pool, volunteer_id), "volunteer") | {"as_of_seq": seq}


@router.get("/matches")
async def list_matches(
    response: Response,
    pool: Pool,
    who: Caller,
    after: After = None,
    limit: Limit = 50,
    min_seq: MinSeq = None,
) -> dict[str, Any]:
    """Matches you may see, newest first."""
    seq = await _stamp(response, pool, min_seq)
    return _page(await reads.matches(pool, who, after, limit), limit, seq)


# ---- live events (Server-Sent Events) ----


class _Stream(StreamingResponse):
    """An event stream that holds one of its caller's stream slots until it ends, however it
    ends (finished, client gone, cancelled): the slot is given back here, not in the
    generator, whose clean-up may run only when it is garbage-collected."""

    def __init__(self, body: AsyncIterator[bytes], slots: StreamSlots, who: Principal) -> None:
        super().__init__(
            body, media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
        )
        self.slots = slots
        self.who = who

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.slots.give_back(self.who.id)


@router.get("/events", response_class=StreamingResponse, responses=EVENT_STREAM)
async def events(
    request: Request,
    pool: Pool,
    who: Caller,
    after: Annotated[
        int | None, Query(ge=0, le=MAX_SEQ, description="replay from this sequence")
    ] = None,
    last_event_id: Annotated[
        int | None,
        Header(alias="Last-Event-ID", ge=0, le=MAX_SEQ, description="as `after`, on reconnect"),
    ] = None,
) -> StreamingResponse:
    """New events as Server-Sent Events (`id` is the archive sequence; reconnect with
    `Last-Event-ID` or `after`), filtered to what the caller may see
    (`services/gateway/visibility.py`): the events about their own needs, funds, volunteers,
    matches and postings (auditors: all). At most `EXCHANGE_MAX_STREAMS_PER_TOKEN` streams
    per caller are open at once (429 beyond). With the database
    down the request is answered 503; if it goes down mid-stream, an `unavailable` event
    ends the stream and `retry` tells the client when to reconnect. A token revoked or
    replaced, or an organisation suspended, while its stream is open gets a `refused` event
    and the stream ends (at once when the revocation is heard, within `RECHECK_SECONDS`
    otherwise)."""
    start = after if after is not None else last_event_id
    if start is None:
        start = await reads.as_of(pool)

    retry_after: int = request.app.state.retry_after
    sees = Visibility(pool, who)

    principals: TokenCache = request.app.state.principals

    async def stream() -> AsyncIterator[bytes]:
        cursor, idle = start, 0.0
        heard, asked = principals.generation, time.monotonic()
        yield f"retry: {retry_after * 1000}\n: connected\n\n".encode()
        while not await request.is_disconnected():
            try:
                if principals.generation != heard or time.monotonic() - asked >= RECHECK_SECONDS:
                    heard, asked = principals.generation, time.monotonic()
                    if not await still_admitted(request):
                        # revoked, rotated away or suspended since the stream opened: it ends
                        # here, with the reason, rather than go on serving a cut-off token
                        data = json.dumps({"detail": CUT_OFF, "reason": "token_refused"})
                        yield f"event: refused\ndata: {data}\n\n".encode()
                        return
                rows = await pool.fetch(
                    "SELECT a.archive_seq, a.event_type, a.value FROM projected_events p"
                    " JOIN archive a ON a.archive_seq = p.archive_seq WHERE p.archive_seq > $1"
                    " AND a.topic NOT LIKE '%.postings' ORDER BY p.archive_seq LIMIT 200",
                    cursor,
                )
                visible = [row for row in rows if await sees.may_see_event(bytes(row["value"]))]
            except Exception as exc:
                # the answer has begun (200): say why it ends; the client reconnects after
                # `retry` with Last-Event-ID and misses nothing
                reason = unavailable_reason(exc)
                if reason is None:
                    raise
                data = json.dumps({"detail": DETAILS[reason], "reason": reason})
                yield f"event: unavailable\ndata: {data}\n\n".encode()
                return
            for row in visible:
                data = bytes(row["value"]).decode()
                head = f"id: {row['archive_seq']}\nevent: {row['event_type']}"
                yield f"{head}\ndata: {data}\n\n".encode()
            if rows:
                cursor = rows[-1]["archive_seq"]
                idle = 0.0
                continue
            idle += 0.2
            if idle >= 15:
                idle = 0.0
                yield b": keep-alive\n\n"
            await asyncio.sleep(0.2)

    slots: StreamSlots = request.app.state.streams
    slots.take(who.id)  # 429 when this caller already holds its streams; the last await
    return _Stream(stream(), slots, who)
