"""Who may see what: one place decides, for the REST reads and the event stream alike.

A caller sees a resource's private side (a fund's donors, a need's matches, a volunteer's plans)
when it is theirs: auditors see everything; an organisation its own needs and funds, the
volunteers it registered, its own postings and itself; a volunteer themself. A match belongs
to everyone it concerns: the need's owner, the fund's owner, the volunteer and the organisation
that registered them (who already read it through `GET /v1/volunteers/{id}`).

Why resources and never the envelope's `actor`: derived events copy the actor of their cause
(`docs/architecture.md`, "Events, ids and time"), so the proposal made after one volunteer
declined carries that volunteer as actor. The stream once showed callers every event they were
the actor of, and so sent a volunteer who declined a shift the next volunteer's proposal.

The event stream shows an event when the caller may read a resource it concerns (below); the
matcher's own traffic, clock ticks, dead letters and checkpoints are for auditors only, and so
is any event type this module does not know (a new type is hidden until someone decides).
Public catalogues (every need, every fund's balance) are read through `GET /v1/needs` and
`/v1/funds`; the stream is each caller's own business.
"""

from __future__ import annotations

import json
import uuid
from typing import Any, Literal

import asyncpg

from schemas.common import Role
from services.identity import Principal

Resource = Literal["need", "fund", "volunteer", "match", "organisation", "posting"]

NEED_EVENTS = ("NeedPosted", "NeedAmended", "NeedCancelled", "NeedExpired", "NeedFulfilled")
FUND_EVENTS = (
    "FundOpened",
    "FundReserveSet",
    "DonationReceived",
    "DonationRefunded",
    "ReservationReleased",
)
VOLUNTEER_EVENTS = ("VolunteerRegistered", "PledgeMade", "PledgeAmended", "PledgeWithdrawn")
MATCH_EVENTS = (
    "MatchProposed",
    "MatchAccepted",
    "MatchDeclined",
    "MatchExpired",
    "MatchCompleted",
    "MatchWithdrawn",
    "NoShowRecorded",
)

ORGANISATION_EVENTS = (
    "OrganisationRegistered",
    "OrganisationSuspended",
    "OrganisationReinstated",
    "OrganisationTokenRotated",
    "OrganisationTokensRevoked",
)

CONCERNS: dict[str, tuple[tuple[Resource, str], ...]] = {
    **{t: (("organisation", "org_id"),) for t in ORGANISATION_EVENTS},
    **{t: (("need", "need_id"),) for t in NEED_EVENTS},
    **{t: (("fund", "fund_id"),) for t in FUND_EVENTS},
    # money promised or paid to a need: the fund's foundation and the need's community
    "FundsReserved": (("fund", "fund_id"), ("need", "need_id")),
    "FundsDisbursed": (("fund", "fund_id"), ("need", "need_id")),
    **{t: (("volunteer", "volunteer_id"),) for t in VOLUNTEER_EVENTS},
    **{t: (("match", "match_id"),) for t in MATCH_EVENTS},
    "PostingRefused": (("posting", "posting_id"),),
}
"""For each event type the stream shows to more than auditors: the resources it is about, by
payload field. The caller sees the event when they may read any one of them. `EventCorrected`
is shown to whoever sees the event it corrects."""

CACHE_LIMIT = 10_000
"""Answers kept per `Visibility` (one per open stream). Owners never change, so an answer holds
for the stream's life; the bound only keeps a long stream's memory flat."""


class Visibility:
    """What one caller may see, answering from PostgreSQL and remembering each answer (owners,
    registrars and a match's parties never change once recorded)."""

    def __init__(self, pool: asyncpg.Pool, who: Principal) -> None:
        self.pool = pool
        self.who = who
        self._known: dict[tuple[str, uuid.UUID], bool] = {}

    async def may_read(self, resource: Resource, rid: uuid.UUID) -> bool:
        """Whether the caller may read `resource` `rid` in full (see the module's rules)."""
        if self.who.role is Role.AUDITOR:
            return True
        key = (resource, rid)
        if key not in self._known:
            if len(self._known) >= CACHE_LIMIT:
                self._known.clear()
            self._known[key] = await self._decide(resource, rid)
        return self._known[key]

    async def _decide(self, resource: Resource, rid: uuid.UUID) -> bool:
        who = self.who.id
        if resource in ("need", "fund"):
            owner = await self.pool.fetchval(
                "SELECT org_id FROM ownership WHERE resource = $1 AND resource_id = $2",
                resource,
                rid,
            )
            return bool(owner == who)
        if resource == "volunteer":
            if rid == who:
                return True
            registrar = await self.pool.fetchval(
                "SELECT registered_by FROM volunteers WHERE volunteer_id = $1", rid
            )
            return bool(registrar == who)
        if resource == "organisation":
            return rid == who
        if resource == "posting":
            poster = await self.pool.fetchval(
                "SELECT org_id FROM postings WHERE posting_id = $1", rid
            )
            return bool(poster == str(who))
        row = await self.pool.fetchrow(
            "SELECT need_id, fund_id, volunteer_id FROM rm_matches WHERE match_id = $1", rid
        )
        if row is None:
            return False
        return (
            await self.may_read("need", row["need_id"])
            or (row["fund_id"] is not None and await self.may_read("fund", row["fund_id"]))
            or (
                row["volunteer_id"] is not None
                and await self.may_read("volunteer", row["volunteer_id"])
            )
        )

    async def may_see_event(self, value: bytes, depth: int = 0) -> bool:
        """Whether the caller may see this archived event (its stored bytes) on the stream."""
        if self.who.role is Role.AUDITOR:
            return True
        event: dict[str, Any] = json.loads(value)
        event_type = event.get("event_type")
        payload: dict[str, Any] = event.get("payload") or {}
        if event_type == "EventCorrected" and depth < 2:
            corrected = await self.pool.fetchval(
                "SELECT a.value FROM projected_events p JOIN archive a"
                " ON a.archive_seq = p.archive_seq WHERE p.event_id = $1",
                _uuid(payload.get("corrects_event_id")),
            )
            return corrected is not None and await self.may_see_event(bytes(corrected), depth + 1)
        for resource, field in CONCERNS.get(str(event_type), ()):
            rid = _uuid(payload.get(field))
            if rid is not None and await self.may_read(resource, rid):
                return True
        return False


def _uuid(value: object) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value)) if value else None
    except ValueError:
        return None
