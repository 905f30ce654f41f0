"""The matcher's policy: which supply meets which need, decided from the ordered input alone.

Skeleton rule (the matching issue makes it serious): a need is met by supply in the same
zone whose kind, category (earmark), district and quantity fit. Decisions are pure functions of
the logged input order; time is the `recorded_at` of the triggering event, never a clock read.

Ownership: in this version the whole city is one zone, so one ordered stream decides every
balance and calendar and nothing can be double-spent across zones.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime

from schemas.common import Money, NeedKind, TimeWindow
from schemas.envelope import Envelope, derive_id
from schemas.messages import (
    DonationReceived,
    FundOpened,
    MatchProposed,
    Message,
    NeedPosted,
    PledgeMade,
    SupplyKind,
)
from schemas.specs import FundSpec, NeedSpec, PledgeSpec, TravelRange
from services.domain.needs import need_quantity
from services.domain.outputs import derived

CITY_ZONE = "nanjing"
"""The one matching zone of this version; `zone_of` is the seam where districts come in."""


def zone_of(payload: Message) -> str:
    """The matching zone an input belongs to (its key on matcher.inputs)."""
    return CITY_ZONE


@dataclass
class OpenNeed:
    """A need still wanting supply. `remaining` counts volunteers or minor units."""

    need_id: uuid.UUID
    spec: NeedSpec
    arrival: int
    remaining: int
    volunteers: set[uuid.UUID] = field(default_factory=set)
    from_funds: dict[uuid.UUID, int] = field(default_factory=dict)

    def priority(self) -> tuple[int, datetime, int]:
        """Order of service: urgency (highest first), then deadline, then waiting time."""
        return (-self.spec.urgency.rank, self.spec.deadline, self.arrival)


@dataclass
class Volunteer:
    """A pledged volunteer and the shifts already proposed to them."""

    volunteer_id: uuid.UUID
    spec: PledgeSpec
    arrival: int
    booked: list[TimeWindow] = field(default_factory=list)

    def booked_minutes_in_week(self, at: datetime) -> int:
        """Minutes already booked in the ISO week containing `at` (by shift start)."""
        week = at.isocalendar()[:2]
        return sum(w.minutes for w in self.booked if w.start.isocalendar()[:2] == week)


@dataclass
class Fund:
    """A fund and the money in it not yet reserved for a need."""

    fund_id: uuid.UUID
    spec: FundSpec
    arrival: int
    available: int = 0


@dataclass
class MatcherState:
    """Everything the matcher's decisions depend on; rebuilt by replaying matcher.inputs."""

    seen: set[uuid.UUID] = field(default_factory=set)
    arrivals: int = 0
    needs: dict[uuid.UUID, OpenNeed] = field(default_factory=dict)
    volunteers: dict[uuid.UUID, Volunteer] = field(default_factory=dict)
    funds: dict[uuid.UUID, Fund] = field(default_factory=dict)


def volunteer_fits(need: OpenNeed, vol: Volunteer) -> bool:
    """Skills, travel, availability, no overlapping shift, weekly limit, not already on it."""
    spec, shift = need.spec, need.spec.shift
    if spec.kind is not NeedKind.VOLUNTEER_HOURS or shift is None:
        return False
    if vol.volunteer_id in need.volunteers:
        return False
    if not set(spec.required_skills) <= set(vol.spec.skills):
        return False
    home, place = vol.spec.home, spec.place
    if vol.spec.travel is TravelRange.SAME_DISTRICT and home.district != place.district:
        return False
    if vol.spec.travel is TravelRange.SAME_STREET and (
        home.district != place.district or home.street is None or home.street != place.street
    ):
        return False
    if not any(w.covers(shift) for w in vol.spec.availability):
        return False
    if any(b.overlaps(shift) for b in vol.booked):
        return False
    limit = vol.spec.weekly_hour_limit * 60
    return vol.booked_minutes_in_week(shift.start) + shift.minutes <= limit


def fund_share(need: OpenNeed, fund: Fund, now: datetime) -> int:
    """How much of the need this fund may pay now under its earmarks (0 when none)."""
    wanted = need.spec.money_wanted
    if wanted is None or wanted.currency != fund.spec.currency or fund.available <= 0:
        return 0
    if not fund.spec.allows(need.spec.category, need.spec.place.district, now):
        return 0
    share = min(need.remaining, fund.available)
    if fund.spec.cap_per_need is not None:
        share = min(
            share, fund.spec.cap_per_need.amount_minor - need.from_funds.get(fund.fund_id, 0)
        )
    return max(share, 0)


class _Proposals:
    """Collects the proposals one input causes, numbering them for their derived ids."""

    def __init__(self, cause: Envelope[Message]) -> None:
        self.cause = cause
        self.out: list[Envelope[Message]] = []

    def add(self, payload_fields: dict[str, object], need: OpenNeed, rule: str) -> None:
        n = len(self.out)
        match_id = derive_id(self.cause.event_id, f"match/{n}")
        proposal = MatchProposed(
            match_id=match_id,
            need_id=need.need_id,
            zone=CITY_ZONE,
            rule=rule,
            **payload_fields,
        )
        self.out.append(
            derived(
                self.cause,
                proposal,
                label=f"proposal/{n}",
                stream_id=f"match:{match_id}",
                stream_seq=1,
            )
        )


def _book_volunteer(p: _Proposals, need: OpenNeed, vol: Volunteer) -> None:
    shift = need.spec.shift
    assert shift is not None
    vol.booked.append(shift)
    need.volunteers.add(vol.volunteer_id)
    need.remaining -= 1
    p.add(
        {
            "supply": SupplyKind.VOLUNTEER,
            "volunteer_id": vol.volunteer_id,
            "shift": shift,
            "minutes": shift.minutes,
        },
        need,
        "skills, availability, travel and weekly limit fit",
    )


def _reserve_fund(p: _Proposals, need: OpenNeed, fund: Fund, share: int) -> None:
    fund.available -= share
    need.remaining -= share
    need.from_funds[fund.fund_id] = need.from_funds.get(fund.fund_id, 0) + share
    p.add(
        {
            "supply": SupplyKind.FUND,
            "fund_id": fund.fund_id,
            "amount": Money(amount_minor=share, currency=fund.spec.currency),
        },
        need,
        "fund earmarks allow this category, district and period",
    )


def _close_if_met(state: MatcherState, need: OpenNeed) -> None:
    if need.remaining <= 0:
        del state.needs[need.need_id]


def _serve_need(state: MatcherState, need: OpenNeed, p: _Proposals, now: datetime) -> None:
    """Give one need what the supply can: volunteers least booked first, funds expiring first."""
    if need.spec.kind is NeedKind.VOLUNTEER_HOURS:
        for vol in sorted(state.volunteers.values(), key=lambda v: (len(v.booked), v.arrival)):
            if need.remaining <= 0:
                break
            if volunteer_fits(need, vol):
                _book_volunteer(p, need, vol)
    else:
        far = datetime.max.replace(tzinfo=now.tzinfo)
        for fund in sorted(
            state.funds.values(), key=lambda f: (f.spec.valid_until or far, f.arrival)
        ):
            if need.remaining <= 0:
                break
            share = fund_share(need, fund, now)
            if share > 0:
                _reserve_fund(p, need, fund, share)
    _close_if_met(state, need)


def _open_needs(state: MatcherState, now: datetime) -> list[OpenNeed]:
    """Open needs in order of service, dropping those whose deadline has passed."""
    for need in [n for n in state.needs.values() if n.spec.deadline <= now]:
        del state.needs[need.need_id]
    return sorted(state.needs.values(), key=OpenNeed.priority)


def apply(state: MatcherState, event: Envelope[Message]) -> list[Envelope[Message]]:
    """Fold one input into the state and return the proposals it makes possible, in order."""
    if event.event_id in state.seen:
        return []
    state.seen.add(event.event_id)
    state.arrivals += 1
    now, payload, p = event.recorded_at, event.payload, _Proposals(event)
    if isinstance(payload, NeedPosted):
        need = OpenNeed(
            payload.need_id, payload.need, state.arrivals, need_quantity(payload.need)[0]
        )
        if need.remaining > 0 and payload.need.deadline > now:
            state.needs[need.need_id] = need
            _serve_need(state, need, p, now)
    elif isinstance(payload, PledgeMade):
        vol = Volunteer(payload.volunteer_id, payload.pledge, state.arrivals)
        state.volunteers[vol.volunteer_id] = vol
        for need in _open_needs(state, now):
            if need.spec.kind is NeedKind.VOLUNTEER_HOURS and volunteer_fits(need, vol):
                _book_volunteer(p, need, vol)
                _close_if_met(state, need)
    elif isinstance(payload, FundOpened):
        state.funds[payload.fund_id] = Fund(payload.fund_id, payload.fund, state.arrivals)
    elif isinstance(payload, DonationReceived):
        fund = state.funds.get(payload.fund_id)
        if fund is not None:
            fund.available += payload.donation.amount.amount_minor
            for need in _open_needs(state, now):
                share = fund_share(need, fund, now)
                if share > 0:
                    _reserve_fund(p, need, fund, share)
                    _close_if_met(state, need)
    return p.out
