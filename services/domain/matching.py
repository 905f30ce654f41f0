"""The matcher's policy: which supply meets which need, and the life of each proposal, decided
from the ordered input alone.

Rule (the matching issue makes it serious): a need is met by supply in the same zone whose
kind, category (earmark), district and quantity fit. Every decision is a pure function of the
logged input order; "now" is the `recorded_at` of the triggering event, never a clock read.

Ownership: in this version the whole city is one zone, so one ordered stream decides every
balance and calendar and nothing can be double-spent across zones.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from schemas.common import Money, NeedKind, TimeWindow
from schemas.envelope import Envelope, derive_id
from schemas.messages import (
    AcceptMatch,
    ClockTicked,
    ConfirmMatch,
    DeclineMatch,
    DonationReceived,
    DonationRefunded,
    FundOpened,
    MatchAccepted,
    MatchCompleted,
    MatchDeclined,
    MatchExpired,
    MatchProposed,
    MatchWithdrawn,
    Message,
    NeedAmended,
    NeedCancelled,
    NeedPosted,
    NoShowRecorded,
    PledgeAmended,
    PledgeMade,
    PledgeWithdrawn,
    PostingRefused,
    Problem,
    RecordNoShow,
    SupplyKind,
)
from schemas.specs import FundSpec, NeedSpec, PledgeSpec, TravelRange
from services.domain.needs import need_quantity
from services.domain.outputs import derived

CITY_ZONE = "nanjing"
"""The one matching zone of this version; `zone_of` is the seam where districts come in."""

ACTIVE = ("proposed", "accepted")


@dataclass(frozen=True)
class Policy:
    """The matcher's parameters. They are code, not settings: a replay of the log must decide
    with the same values the live run used, so changing one is a release, noted in
    docs/matching.md, not an environment variable."""

    proposal_ttl: timedelta = timedelta(hours=12)
    """A volunteer proposal not accepted within this time expires and the next candidate is
    asked. Money proposals do not expire: the fund's earmarks already said yes."""


DEFAULT_POLICY = Policy()


def zone_of(payload: Message) -> str:
    """The matching zone an input belongs to (its key on matcher.inputs)."""
    return CITY_ZONE


@dataclass
class Proposal:
    """One match and where it stands: proposed, accepted, declined, withdrawn, completed,
    no_show. `quantity` is 1 (a volunteer) or the minor units reserved (a fund)."""

    match_id: uuid.UUID
    need_id: uuid.UUID
    supply: SupplyKind
    quantity: int
    volunteer_id: uuid.UUID | None = None
    fund_id: uuid.UUID | None = None
    shift: TimeWindow | None = None
    proposed_at: datetime | None = None
    status: str = "proposed"
    seq: int = 1

    def next_seq(self) -> int:
        """The next position in this match's stream."""
        self.seq += 1
        return self.seq


@dataclass
class OpenNeed:
    """A need and what is still wanted. `remaining` counts volunteers or minor units."""

    need_id: uuid.UUID
    spec: NeedSpec
    owner: str
    arrival: int
    remaining: int
    cancelled: bool = False
    volunteers: set[uuid.UUID] = field(default_factory=set)
    from_funds: dict[uuid.UUID, int] = field(default_factory=dict)

    def priority(self) -> tuple[int, datetime, int]:
        """Order of service: urgency (highest first), then deadline, then waiting time."""
        return (-self.spec.urgency.rank, self.spec.deadline, self.arrival)

    def is_open(self, now: datetime) -> bool:
        """Still wanting supply: not cancelled, not past its deadline, not fully met."""
        return not self.cancelled and self.remaining > 0 and self.spec.deadline > now


@dataclass
class Volunteer:
    """A pledged volunteer and the shifts currently held for them."""

    volunteer_id: uuid.UUID
    spec: PledgeSpec
    arrival: int
    booked: dict[uuid.UUID, TimeWindow] = field(default_factory=dict)
    withdrawn: bool = False
    no_shows: int = 0

    def booked_minutes_in_week(self, at: datetime) -> int:
        """Minutes already held in the ISO week containing `at` (by shift start)."""
        week = at.isocalendar()[:2]
        return sum(w.minutes for w in self.booked.values() if w.start.isocalendar()[:2] == week)


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

    policy: Policy = DEFAULT_POLICY
    seen: set[uuid.UUID] = field(default_factory=set)
    arrivals: int = 0
    needs: dict[uuid.UUID, OpenNeed] = field(default_factory=dict)
    volunteers: dict[uuid.UUID, Volunteer] = field(default_factory=dict)
    funds: dict[uuid.UUID, Fund] = field(default_factory=dict)
    proposals: dict[uuid.UUID, Proposal] = field(default_factory=dict)
    # Indexes: derived from the above, kept so that each input costs what it touches rather
    # than the size of the city. None changes any decision (tests compare with a full scan).
    unfilled: dict[str, set[uuid.UUID]] = field(default_factory=dict)
    """Needs that may still want supply, by shelf (money, or shifts by district): every need not
    cancelled with something remaining (a superset; filled and cancelled ones are dropped when
    next met)."""
    by_district: dict[str, dict[uuid.UUID, Volunteer]] = field(default_factory=dict)
    anywhere: dict[uuid.UUID, Volunteer] = field(default_factory=dict)
    by_need: dict[uuid.UUID, list[Proposal]] = field(default_factory=dict)
    by_volunteer: dict[uuid.UUID, list[Proposal]] = field(default_factory=dict)
    by_fund: dict[uuid.UUID, list[Proposal]] = field(default_factory=dict)

    def index_volunteer(self, vol: Volunteer, old_district: str | None = None) -> None:
        """(Re)file a volunteer under the district they serve, or under "anywhere"."""
        if old_district is not None:
            self.by_district.get(old_district, {}).pop(vol.volunteer_id, None)
        self.anywhere.pop(vol.volunteer_id, None)
        if vol.spec.travel is TravelRange.ANYWHERE:
            self.anywhere[vol.volunteer_id] = vol
        else:
            self.by_district.setdefault(vol.spec.home.district, {})[vol.volunteer_id] = vol

    def candidates_for(self, need: OpenNeed) -> list[Volunteer]:
        """Volunteers who could travel to the need (the rest cannot fit it)."""
        near = self.by_district.get(need.spec.place.district, {})
        return [*near.values(), *self.anywhere.values()]

    def index_proposal(self, p: Proposal) -> None:
        """File a new proposal under its need and its supply."""
        self.by_need.setdefault(p.need_id, []).append(p)
        if p.volunteer_id is not None:
            self.by_volunteer.setdefault(p.volunteer_id, []).append(p)
        if p.fund_id is not None:
            self.by_fund.setdefault(p.fund_id, []).append(p)


def volunteer_fits(need: OpenNeed, vol: Volunteer) -> bool:
    """Skills, travel, availability, no overlapping shift, weekly limit, not already on it."""
    spec, shift = need.spec, need.spec.shift
    if spec.kind is not NeedKind.VOLUNTEER_HOURS or shift is None or vol.withdrawn:
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
    if any(b.overlaps(shift) for b in vol.booked.values()):
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
        cap = fund.spec.cap_per_need.amount_minor - need.from_funds.get(fund.fund_id, 0)
        share = min(share, cap)
    return max(share, 0)


class Decisions:
    """Collects what one input causes, numbering each kind for its derived ids."""

    def __init__(self, cause: Envelope[Message]) -> None:
        self.cause = cause
        self.out: list[Envelope[Message]] = []
        self._n: dict[str, int] = {}

    def _label(self, kind: str) -> str:
        n = self._n.get(kind, 0)
        self._n[kind] = n + 1
        return f"{kind}/{n}"

    def propose(
        self, state: MatcherState, need: OpenNeed, fields: dict[str, object], rule: str
    ) -> Proposal:
        """A new proposal for `need`."""
        label = self._label("proposal")
        match_id = derive_id(self.cause.event_id, label.replace("proposal", "match"))
        payload = MatchProposed(
            match_id=match_id, need_id=need.need_id, zone=CITY_ZONE, rule=rule, **fields
        )
        self.out.append(
            derived(self.cause, payload, label=label, stream_id=f"match:{match_id}", stream_seq=1)
        )
        amount = payload.amount.amount_minor if payload.amount else 1
        proposal = Proposal(
            match_id,
            need.need_id,
            payload.supply,
            amount,
            payload.volunteer_id,
            payload.fund_id,
            payload.shift,
            proposed_at=self.cause.recorded_at,
        )
        state.proposals[match_id] = proposal
        state.index_proposal(proposal)
        return proposal

    def about(self, proposal: Proposal, payload: Message, kind: str) -> None:
        """A decision on an existing match (accepted, declined, withdrawn, ...)."""
        label = "decided" if kind == "decided" else self._label(kind)
        self.out.append(
            derived(
                self.cause,
                payload,
                label=label,
                stream_id=f"match:{proposal.match_id}",
                stream_seq=proposal.next_seq(),
            )
        )

    def refuse(self, reason: str, fld: str | None = None) -> None:
        """The command cannot be done now; the poster reads why on the posting's status."""
        payload = PostingRefused(
            posting_id=self.cause.event_id,
            posting_type=self.cause.event_type,
            problems=[Problem(field=fld, reason=reason)],
        )
        self.out.append(
            derived(
                self.cause, payload, label="decided", stream_id=self.cause.stream_id, stream_seq=1
            )
        )


# ---- supply meets demand ----


def _book_volunteer(state: MatcherState, d: Decisions, need: OpenNeed, vol: Volunteer) -> None:
    shift = need.spec.shift
    assert shift is not None
    proposal = d.propose(
        state,
        need,
        {
            "supply": SupplyKind.VOLUNTEER,
            "volunteer_id": vol.volunteer_id,
            "shift": shift,
            "minutes": shift.minutes,
        },
        "skills, availability, travel and weekly limit fit",
    )
    vol.booked[proposal.match_id] = shift
    need.volunteers.add(vol.volunteer_id)
    need.remaining -= 1


def _reserve_fund(
    state: MatcherState, d: Decisions, need: OpenNeed, fund: Fund, share: int
) -> None:
    d.propose(
        state,
        need,
        {
            "supply": SupplyKind.FUND,
            "fund_id": fund.fund_id,
            "amount": Money(amount_minor=share, currency=fund.spec.currency),
        },
        "fund earmarks allow this category, district and period",
    )
    fund.available -= share
    need.remaining -= share
    need.from_funds[fund.fund_id] = need.from_funds.get(fund.fund_id, 0) + share


def _serve_need(state: MatcherState, need: OpenNeed, d: Decisions, now: datetime) -> None:
    """Give one need what the supply can: volunteers least booked (and most reliable) first,
    funds expiring first."""
    if not need.is_open(now):
        return
    if need.spec.kind is NeedKind.VOLUNTEER_HOURS:
        candidates = sorted(
            state.candidates_for(need), key=lambda v: (v.no_shows, len(v.booked), v.arrival)
        )
        for vol in candidates:
            if need.remaining <= 0:
                break
            if volunteer_fits(need, vol):
                _book_volunteer(state, d, need, vol)
    else:
        far = datetime.max.replace(tzinfo=now.tzinfo)
        for fund in sorted(
            state.funds.values(), key=lambda f: (f.spec.valid_until or far, f.arrival)
        ):
            if need.remaining <= 0:
                break
            share = fund_share(need, fund, now)
            if share > 0:
                _reserve_fund(state, d, need, fund, share)


MONEY_SHELF = "money"


def _shelf(need: OpenNeed) -> str:
    """Where an unfilled need is filed: money and goods together, shifts by district."""
    if need.spec.kind is NeedKind.VOLUNTEER_HOURS:
        return f"shift:{need.spec.place.district}"
    return MONEY_SHELF


def _mark_unfilled(state: MatcherState, need: OpenNeed) -> None:
    state.unfilled.setdefault(_shelf(need), set()).add(need.need_id)


def _open_needs(state: MatcherState, now: datetime, shelves: Iterable[str]) -> list[OpenNeed]:
    """Open needs on these shelves, in order of service."""
    found = []
    for shelf in shelves:
        ids = state.unfilled.get(shelf, set())
        for need_id in list(ids):
            need = state.needs[need_id]
            if need.cancelled or need.remaining <= 0:
                ids.discard(need_id)  # back only through _release or an amendment
            elif need.is_open(now):
                found.append(need)
    return sorted(found, key=OpenNeed.priority)


def _serve_volunteer(state: MatcherState, vol: Volunteer, d: Decisions, now: datetime) -> None:
    if vol.spec.travel is TravelRange.ANYWHERE:
        shelves = [s for s in state.unfilled if s != MONEY_SHELF]
    else:
        shelves = [f"shift:{vol.spec.home.district}"]
    for need in _open_needs(state, now, shelves):
        if volunteer_fits(need, vol):
            _book_volunteer(state, d, need, vol)


def _serve_fund(state: MatcherState, fund: Fund, d: Decisions, now: datetime) -> None:
    for need in _open_needs(state, now, [MONEY_SHELF]):
        share = fund_share(need, fund, now)
        if share > 0:
            _reserve_fund(state, d, need, fund, share)


# ---- supply goes back ----


def _release(state: MatcherState, p: Proposal) -> None:
    """Give a proposal's supply back and reopen its part of the need."""
    need = state.needs[p.need_id]
    if p.supply is SupplyKind.VOLUNTEER:
        assert p.volunteer_id is not None
        vol = state.volunteers.get(p.volunteer_id)
        if vol is not None:
            vol.booked.pop(p.match_id, None)
        need.remaining += 1
    else:
        assert p.fund_id is not None
        state.funds[p.fund_id].available += p.quantity
        need.remaining += p.quantity
        need.from_funds[p.fund_id] -= p.quantity
    _mark_unfilled(state, need)


def _withdraw(state: MatcherState, d: Decisions, p: Proposal, reason: str) -> None:
    _release(state, p)
    p.status = "withdrawn"
    d.about(p, MatchWithdrawn(match_id=p.match_id, need_id=p.need_id, reason=reason), "withdrawal")


def _active(
    state: MatcherState,
    need_id: uuid.UUID | None = None,
    volunteer_id: uuid.UUID | None = None,
    fund_id: uuid.UUID | None = None,
) -> list[Proposal]:
    """Active proposals of one need, volunteer or fund (or all), newest first."""
    if need_id is not None:
        pool: Iterable[Proposal] = state.by_need.get(need_id, [])
    elif volunteer_id is not None:
        pool = state.by_volunteer.get(volunteer_id, [])
    elif fund_id is not None:
        pool = state.by_fund.get(fund_id, [])
    else:
        pool = state.proposals.values()
    return list(reversed([p for p in pool if p.status in ACTIVE]))


# ---- the inputs ----


def _on_need(state: MatcherState, event: Envelope[Message], d: Decisions) -> None:
    now, payload = event.recorded_at, event.payload
    if isinstance(payload, NeedPosted):
        need = OpenNeed(
            payload.need_id,
            payload.need,
            event.actor.org_id,
            state.arrivals,
            need_quantity(payload.need)[0],
        )
        state.needs[need.need_id] = need
        _mark_unfilled(state, need)
        _serve_need(state, need, d, now)
    elif isinstance(payload, NeedCancelled) and payload.need_id in state.needs:
        need = state.needs[payload.need_id]
        for p in _active(state, need_id=need.need_id):
            _withdraw(state, d, p, "the need was cancelled")
        need.cancelled = True
    elif isinstance(payload, NeedAmended) and payload.need_id in state.needs:
        need = state.needs[payload.need_id]
        moved = payload.need.shift != need.spec.shift
        for p in _active(state, need_id=need.need_id):
            if moved and p.supply is SupplyKind.VOLUNTEER:
                _withdraw(state, d, p, "the shift changed")
        held = need_quantity(need.spec)[0] - need.remaining
        need.spec = payload.need
        need.remaining = need_quantity(payload.need)[0] - held
        _mark_unfilled(state, need)
        for p in _active(state, need_id=need.need_id):  # newest first
            if need.remaining >= 0:
                break
            _withdraw(state, d, p, "the need now asks for less")
        _serve_need(state, need, d, now)


def _on_supply(state: MatcherState, event: Envelope[Message], d: Decisions) -> None:
    now, payload = event.recorded_at, event.payload
    if isinstance(payload, PledgeMade):
        vol = Volunteer(payload.volunteer_id, payload.pledge, state.arrivals)
        state.volunteers[vol.volunteer_id] = vol
        state.index_volunteer(vol)
        _serve_volunteer(state, vol, d, now)
    elif isinstance(payload, PledgeAmended) and payload.volunteer_id in state.volunteers:
        vol = state.volunteers[payload.volunteer_id]
        old_district = vol.spec.home.district
        vol.spec = payload.pledge
        state.index_volunteer(vol, old_district)
        _serve_volunteer(state, vol, d, now)
    elif isinstance(payload, PledgeWithdrawn) and payload.volunteer_id in state.volunteers:
        vol = state.volunteers[payload.volunteer_id]
        vol.withdrawn = True
        for p in _active(state, volunteer_id=vol.volunteer_id):
            if p.status == "proposed":  # accepted shifts end through the match lifecycle
                _withdraw(state, d, p, "the volunteer withdrew their pledge")
                _serve_need(state, state.needs[p.need_id], d, now)
    elif isinstance(payload, FundOpened):
        state.funds[payload.fund_id] = Fund(payload.fund_id, payload.fund, state.arrivals)
    elif isinstance(payload, DonationReceived) and payload.fund_id in state.funds:
        fund = state.funds[payload.fund_id]
        fund.available += payload.donation.amount.amount_minor
        _serve_fund(state, fund, d, now)
    elif isinstance(payload, DonationRefunded) and payload.fund_id in state.funds:
        fund = state.funds[payload.fund_id]
        fund.available -= payload.amount.amount_minor
        for p in _active(state, fund_id=fund.fund_id):  # never leave the fund over-spent
            if fund.available >= 0:
                break
            if p.status == "proposed":
                _withdraw(state, d, p, "the fund refunded a donation")


def _on_answer(state: MatcherState, event: Envelope[Message], d: Decisions) -> None:
    """A volunteer's answer or a community's confirmation about one match."""
    now, cmd, actor = event.recorded_at, event.payload, event.actor.org_id
    assert isinstance(cmd, AcceptMatch | DeclineMatch | ConfirmMatch | RecordNoShow)
    p = state.proposals.get(cmd.match_id)
    if p is None:
        d.refuse("no match has this id", "match_id")
        return
    need = state.needs[p.need_id]
    if isinstance(cmd, AcceptMatch | DeclineMatch):
        if p.supply is not SupplyKind.VOLUNTEER or actor != str(p.volunteer_id):
            d.refuse("only the volunteer it was proposed to may answer a shift", "match_id")
        elif isinstance(cmd, AcceptMatch) and p.status == "proposed":
            p.status = "accepted"
            d.about(p, MatchAccepted(match_id=p.match_id, need_id=p.need_id), "decided")
        elif isinstance(cmd, DeclineMatch) and p.status in ACTIVE:
            _release(state, p)
            p.status = "declined"
            d.about(
                p,
                MatchDeclined(match_id=p.match_id, need_id=p.need_id, reason=cmd.reason),
                "decided",
            )
            _serve_need(state, need, d, now)
        else:
            d.refuse(f"the match is {p.status}", "match_id")
        return
    if actor != need.owner:
        d.refuse("only the community that posted the need may confirm it", "match_id")
    elif p.status not in ACTIVE:
        d.refuse(f"the match is {p.status}", "match_id")
    elif isinstance(cmd, RecordNoShow):
        if p.supply is not SupplyKind.VOLUNTEER:
            d.refuse("a no-show is recorded for a volunteer's shift", "match_id")
            return
        _release(state, p)
        p.status = "no_show"
        assert p.volunteer_id is not None
        state.volunteers[p.volunteer_id].no_shows += 1
        d.about(
            p,
            NoShowRecorded(match_id=p.match_id, need_id=p.need_id, volunteer_id=p.volunteer_id),
            "decided",
        )
        if p.shift is not None and now < p.shift.end:  # time still allows someone else
            _serve_need(state, need, d, now)
    else:
        _complete(p, cmd, d)


def _complete(p: Proposal, cmd: ConfirmMatch, d: Decisions) -> None:
    if p.supply is SupplyKind.VOLUNTEER:
        assert p.shift is not None
        if cmd.minutes_served is None or cmd.minutes_served > p.shift.minutes:
            d.refuse(
                f"minutes_served must be between 1 and the shift's {p.shift.minutes}",
                "minutes_served",
            )
            return
        done = MatchCompleted(
            match_id=p.match_id, need_id=p.need_id, minutes_served=cmd.minutes_served
        )
    else:
        got = cmd.amount_received
        if got is None or got.amount_minor != p.quantity:
            d.refuse(
                f"amount_received must equal the {p.quantity} minor units reserved",
                "amount_received",
            )
            return
        done = MatchCompleted(match_id=p.match_id, need_id=p.need_id, amount=got)
    p.status = "completed"
    d.about(p, done, "decided")


def _on_tick(state: MatcherState, at: datetime, d: Decisions) -> None:
    """Time passed: unanswered shifts expire (the next candidate is asked) and needs past their
    deadline give back what they hold unconfirmed."""
    reopened: dict[uuid.UUID, OpenNeed] = {}
    for p in _active(state):
        need = state.needs[p.need_id]
        if p.status != "proposed":
            continue
        if need.spec.deadline <= at:
            _withdraw(state, d, p, "the need's deadline passed")
        elif (
            p.supply is SupplyKind.VOLUNTEER
            and p.proposed_at is not None
            and p.proposed_at + state.policy.proposal_ttl <= at
        ):
            _release(state, p)
            p.status = "expired"
            d.about(p, MatchExpired(match_id=p.match_id, need_id=p.need_id), "expiry")
            reopened[need.need_id] = need
    for need in sorted(reopened.values(), key=OpenNeed.priority):
        _serve_need(state, need, d, at)


def apply(state: MatcherState, event: Envelope[Message]) -> list[Envelope[Message]]:
    """Fold one input into the state and return the decisions it causes, in order."""
    if event.event_id in state.seen:
        return []
    state.seen.add(event.event_id)
    state.arrivals += 1
    d = Decisions(event)
    payload = event.payload
    if isinstance(payload, ClockTicked):
        _on_tick(state, payload.at, d)
    elif isinstance(payload, NeedPosted | NeedCancelled | NeedAmended):
        _on_need(state, event, d)
    elif isinstance(payload, AcceptMatch | DeclineMatch | ConfirmMatch | RecordNoShow):
        _on_answer(state, event, d)
    else:
        _on_supply(state, event, d)
    return d.out
