"""The matcher's policy: which supply meets which need, and the life of each proposal, decided
from the ordered input alone.

Every decision is a pure function of the logged input order; "now" is the `recorded_at` of the
triggering event, never a clock read.

Ownership (services.domain.zones): each partition of matcher.inputs has its own `MatcherState`
and alone decides on the needs, funds and volunteers it owns. Supply another partition owns is
known here only as a listing; a need asks for it with `SupplyRequested` and the owner answers
on the log (schemas.reservations). With one partition, everything is local and no request is
ever made.
"""

from __future__ import annotations

import heapq
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from schemas.common import Money, NeedKind, Place, TimeWindow
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
from schemas.reservations import (
    SupplyGranted,
    SupplyListed,
    SupplyRefused,
    SupplyReleased,
    SupplyRequested,
    SupplyRevoked,
)
from schemas.specs import FundSpec, NeedSpec, PledgeSpec, TravelRange
from services.domain.needs import need_quantity
from services.domain.outputs import derived
from services.domain.zones import distance_km, need_zone, travels_across_districts

ACTIVE = ("proposed", "accepted")

CHINA = timezone(timedelta(hours=8))
"""Weeks (weekly limits, fairness) are the communities' weeks: China has one offset and no
summer time, so a fixed offset is exact and needs no time-zone database."""


def local_week(at: datetime) -> tuple[int, int]:
    """The ISO (year, week) of `at` in Nanjing."""
    year, week, _ = at.astimezone(CHINA).isocalendar()
    return year, week


CROSS_PARTITION = (
    SupplyListed,
    SupplyRequested,
    SupplyGranted,
    SupplyRefused,
    SupplyReleased,
    SupplyRevoked,
)


@dataclass(frozen=True)
class Policy:
    """The matcher's parameters. They are code, not settings: a replay of the log must decide
    with the same values the live run used, so changing one is a release, noted in
    docs/matching.md, not an environment variable."""

    proposal_ttl: timedelta = timedelta(hours=12)
    """A volunteer proposal not accepted within this time expires and the next candidate is
    asked. Money proposals do not expire: the fund's earmarks already said yes."""

    asks_per_listing: int = 8
    """How many open needs ask a newly listed volunteer from another partition at once. The
    owner refuses what no longer fits; a cap keeps one listing from setting aside half a city
    of needs while the answers travel."""


DEFAULT_POLICY = Policy()


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
    hold_id: uuid.UUID | None = None
    """Set when the supply is owned by another partition, which holds it under this id."""
    owner_partition: int | None = None
    order: int = 0
    """Position among all proposals of the partition (ticks handle the newest first)."""

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
    zone: str = ""
    refused: dict[uuid.UUID, int] = field(default_factory=dict)
    """Supply owned elsewhere that refused this need, with the listing version it refused at:
    asked again only once its listing changes."""
    _week: tuple[datetime, tuple[int, int]] | None = field(default=None, repr=False)

    @property
    def deadline_week(self) -> tuple[int, int]:
        """The Nanjing week of the deadline (fairness compares needs due the same week)."""
        if self._week is None or self._week[0] != self.spec.deadline:
            self._week = (self.spec.deadline, local_week(self.spec.deadline))
        return self._week[1]

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
        """Minutes already held in the week containing `at` (by shift start). Weeks are
        Nanjing's ISO weeks whatever offset a time was written in, so the same shift counts
        in the same week for everyone."""
        week = local_week(at)
        return sum(w.minutes for w in self.booked.values() if local_week(w.start) == week)


@dataclass
class Fund:
    """A fund and the money in it not yet reserved for a need."""

    fund_id: uuid.UUID
    spec: FundSpec
    arrival: int
    available: int = 0


@dataclass
class Listing:
    """Supply owned by another partition, as its listing last described it."""

    supply: SupplyKind
    supply_id: uuid.UUID
    owner_partition: int
    version: int
    active: bool
    arrival: int
    pledge: PledgeSpec | None = None
    fund: FundSpec | None = None
    net_minor: int = 0


@dataclass
class Ask:
    """A request this partition sent for supply owned elsewhere; its quantity is set aside on
    the need until the answer comes."""

    need_id: uuid.UUID
    supply: SupplyKind
    supply_id: uuid.UUID
    quantity: int
    owner_partition: int
    shift: TimeWindow | None


@dataclass
class Hold:
    """Supply this partition owns, held for a need owned by another partition."""

    hold_id: uuid.UUID
    need_id: uuid.UUID
    supply: SupplyKind
    supply_id: uuid.UUID
    quantity: int
    partition: int
    revoked: bool = False


@dataclass
class MatcherState:
    """Everything one partition's decisions depend on; rebuilt by replaying its part of
    matcher.inputs."""

    policy: Policy = DEFAULT_POLICY
    partition: int = 0
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
    due: list[tuple[datetime, int, uuid.UUID]] = field(default_factory=list)
    """A heap of when each proposal may next need a tick's attention (its need's deadline, or
    its expiry), so a tick costs what falls due rather than every open proposal."""
    # Cross-partition: listings of supply owned elsewhere, requests in flight, holds lent out.
    listings: dict[uuid.UUID, Listing] = field(default_factory=dict)
    listed_by_district: dict[str, dict[uuid.UUID, Listing]] = field(default_factory=dict)
    listed_anywhere: dict[uuid.UUID, Listing] = field(default_factory=dict)
    asks: dict[uuid.UUID, Ask] = field(default_factory=dict)
    holds: dict[uuid.UUID, Hold] = field(default_factory=dict)
    by_hold: dict[uuid.UUID, Proposal] = field(default_factory=dict)

    def index_listing(self, listing: Listing) -> None:
        """(Re)file a listing: volunteers by the district they serve, funds as they are."""
        old = self.listings.get(listing.supply_id)
        if old is not None and old.pledge is not None:
            self.listed_by_district.get(old.pledge.home.district, {}).pop(old.supply_id, None)
        self.listed_anywhere.pop(listing.supply_id, None)
        self.listings[listing.supply_id] = listing
        if listing.pledge is None:
            return
        if travels_across_districts(listing.pledge):
            self.listed_anywhere[listing.supply_id] = listing
        else:
            district = listing.pledge.home.district
            self.listed_by_district.setdefault(district, {})[listing.supply_id] = listing

    def index_volunteer(self, vol: Volunteer, old_district: str | None = None) -> None:
        """(Re)file a volunteer under the district they serve, or under "anywhere"."""
        if old_district is not None:
            self.by_district.get(old_district, {}).pop(vol.volunteer_id, None)
        self.anywhere.pop(vol.volunteer_id, None)
        if travels_across_districts(vol.spec):
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
        if p.hold_id is not None:
            self.by_hold[p.hold_id] = p


def pledge_fits(spec: NeedSpec, pledge: PledgeSpec) -> bool:
    """What a pledge alone decides: skills, travel and availability (calendars aside)."""
    shift = spec.shift
    if spec.kind is not NeedKind.VOLUNTEER_HOURS or shift is None:
        return False
    if not set(spec.required_skills) <= set(pledge.skills):
        return False
    if not travel_reaches(pledge, spec.place):
        return False
    return any(w.covers(shift) for w in pledge.availability)


def travel_reaches(pledge: PledgeSpec, place: Place) -> bool:
    """Whether the place is within how far the volunteer said they will go: by distance when
    they gave one and both places carry coordinates, otherwise by community, street, district
    or anywhere."""
    home = pledge.home
    km = distance_km(home, place) if pledge.travel_km is not None else None
    if km is not None:
        assert pledge.travel_km is not None
        return km <= pledge.travel_km
    if pledge.travel is TravelRange.ANYWHERE:
        return True
    if home.district != place.district:
        return False
    if pledge.travel is TravelRange.SAME_DISTRICT:
        return True
    if home.street is None or home.street != place.street:
        return False
    if pledge.travel is TravelRange.SAME_STREET:
        return True
    return home.community is not None and home.community == place.community


def distance_rank(pledge: PledgeSpec, spec: NeedSpec) -> tuple[int, float]:
    """How far the volunteer is from the need: same community, street, district or further,
    then kilometres when both places carry coordinates. Nearer volunteers are asked first;
    it also keeps those who travel far for the needs nobody nearer can serve."""
    home, place = pledge.home, spec.place
    km = distance_km(home, place)
    far = 0.0 if km is None else round(km, 3)
    if home.district != place.district:
        return 3, far
    if home.street is None or home.street != place.street:
        return 2, far
    same = home.community is not None and home.community == place.community
    return (0 if same else 1), far


def volunteer_fits(need: OpenNeed, vol: Volunteer) -> bool:
    """Skills, travel, availability, no overlapping shift, weekly limit, not already on it."""
    shift = need.spec.shift
    if shift is None or vol.withdrawn or vol.volunteer_id in need.volunteers:
        return False
    if not pledge_fits(need.spec, vol.spec):
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
        self.routes: dict[uuid.UUID, int] = {}
        """The partition each cross-partition message goes to, by event id."""
        self._n: dict[str, int] = {}

    def _label(self, kind: str) -> str:
        n = self._n.get(kind, 0)
        self._n[kind] = n + 1
        return f"{kind}/{n}"

    def propose(
        self,
        state: MatcherState,
        need: OpenNeed,
        fields: dict[str, object],
        rule: str,
        hold: tuple[uuid.UUID, int] | None = None,
    ) -> Proposal:
        """A new proposal for `need` (`hold`: the hold id and owner of supply held elsewhere)."""
        label = self._label("proposal")
        match_id = derive_id(self.cause.event_id, label.replace("proposal", "match"))
        payload = MatchProposed(
            match_id=match_id, need_id=need.need_id, zone=need.zone, rule=rule, **fields
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
            hold_id=hold[0] if hold else None,
            owner_partition=hold[1] if hold else None,
        )
        proposal.order = len(state.proposals)
        state.proposals[match_id] = proposal
        state.index_proposal(proposal)
        _watch(state, proposal)
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

    def send(
        self, payload: Message, partition: int, label: str, stream_id: str, stream_seq: int
    ) -> uuid.UUID:
        """A request or reply for another partition of matcher.inputs; returns its id."""
        envelope = derived(
            self.cause,
            payload,
            label=self._label(label),
            stream_id=stream_id,
            stream_seq=stream_seq,
        )
        self.out.append(envelope)
        self.routes[envelope.event_id] = partition
        return envelope.event_id

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
            state.candidates_for(need),
            key=lambda v: (v.no_shows, distance_rank(v.spec, need.spec), len(v.booked), v.arrival),
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
    if need.remaining > 0 and state.listings:
        _ask_elsewhere(state, need, d, now)


MONEY_SHELF = "money"


def _shelf(need: OpenNeed) -> str:
    """Where an unfilled need is filed: money and goods together, shifts by district."""
    if need.spec.kind is NeedKind.VOLUNTEER_HOURS:
        return f"shift:{need.spec.place.district}"
    return MONEY_SHELF


def _mark_unfilled(state: MatcherState, need: OpenNeed) -> None:
    state.unfilled.setdefault(_shelf(need), set()).add(need.need_id)


def _open_needs(state: MatcherState, now: datetime, shelves: Iterable[str]) -> list[OpenNeed]:
    """Open needs on these shelves, in the fair order of service (`fair_order`)."""
    found = []
    for shelf in shelves:
        ids = state.unfilled.get(shelf, set())
        for need_id in list(ids):
            need = state.needs[need_id]
            if need.cancelled or need.remaining <= 0:
                ids.discard(need_id)  # back only through _release or an amendment
            elif need.is_open(now):
                found.append(need)
    return fair_order(found)


def fair_order(needs: Iterable[OpenNeed]) -> list[OpenNeed]:
    """The order in which needs share contested supply: urgency first; then, among comparable
    needs (same urgency, deadlines in the same week), one need per community per round, so no
    community takes a second share while another's comparable need waits; within a round,
    deadline, then waiting time.

    Deterministic and pure: a replay orders the same needs the same way."""
    ordered = sorted(needs, key=OpenNeed.priority)
    rounds: dict[tuple[int, tuple[int, int], str], int] = {}
    keyed = []
    for need in ordered:
        group = (-need.spec.urgency.rank, need.deadline_week, need.owner)
        turn = rounds.get(group, 0)
        rounds[group] = turn + 1
        keyed.append(((group[0], group[1], turn, *need.priority()[1:]), need))
    keyed.sort(key=lambda kn: kn[0])
    return [need for _, need in keyed]


def _serve_volunteer(state: MatcherState, vol: Volunteer, d: Decisions, now: datetime) -> None:
    if travels_across_districts(vol.spec):
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


def _release(
    state: MatcherState, d: Decisions, p: Proposal, reason: str, no_show: bool = False
) -> None:
    """Give a proposal's supply back (to its owner, when another partition holds it) and
    reopen its part of the need."""
    need = state.needs[p.need_id]
    if p.hold_id is not None:
        assert p.owner_partition is not None
        supply_id = p.volunteer_id or p.fund_id
        assert supply_id is not None
        released = SupplyReleased(
            hold_id=p.hold_id, supply_id=supply_id, reason=reason, no_show=no_show
        )
        d.send(released, p.owner_partition, "release", f"hold:{p.hold_id}:need", 2)
    if p.supply is SupplyKind.VOLUNTEER:
        assert p.volunteer_id is not None
        vol = state.volunteers.get(p.volunteer_id)
        if vol is not None and p.hold_id is None:
            vol.booked.pop(p.match_id, None)
        need.remaining += 1
    else:
        assert p.fund_id is not None
        if p.hold_id is None:
            state.funds[p.fund_id].available += p.quantity
        need.remaining += p.quantity
        need.from_funds[p.fund_id] -= p.quantity
    _mark_unfilled(state, need)


def _withdraw(state: MatcherState, d: Decisions, p: Proposal, reason: str) -> None:
    _release(state, d, p, reason)
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


# ---- across partitions: listings, requests and replies ----


def _holds_of(state: MatcherState, supply_id: uuid.UUID) -> list[Hold]:
    """Holds on this supply lent to other partitions and not yet asked back, oldest first."""
    return [h for h in state.holds.values() if h.supply_id == supply_id and not h.revoked]


def _revoke(d: Decisions, hold: Hold, reason: str) -> None:
    hold.revoked = True
    revoked = SupplyRevoked(hold_id=hold.hold_id, need_id=hold.need_id, reason=reason)
    d.send(revoked, hold.partition, "revoke", f"hold:{hold.hold_id}:supply", 2)


def _listing_fits(need: OpenNeed, listing: Listing) -> bool:
    """Whether a volunteer listed from elsewhere is worth asking for this need."""
    if not listing.active or listing.pledge is None or listing.supply_id in need.volunteers:
        return False
    if need.refused.get(listing.supply_id) == listing.version:
        return False
    return pledge_fits(need.spec, listing.pledge)


def _listing_share(need: OpenNeed, listing: Listing, now: datetime, budget: int) -> int:
    """How much to ask a fund listed from elsewhere for (0: do not ask)."""
    spec, wanted = listing.fund, need.spec.money_wanted
    if not listing.active or spec is None or wanted is None or wanted.currency != spec.currency:
        return 0
    if need.refused.get(listing.supply_id) == listing.version:
        return 0
    if not spec.allows(need.spec.category, need.spec.place.district, now):
        return 0
    share = min(need.remaining, budget)
    if spec.cap_per_need is not None:
        share = min(
            share, spec.cap_per_need.amount_minor - need.from_funds.get(listing.supply_id, 0)
        )
    return max(share, 0)


def _ask(
    state: MatcherState, d: Decisions, need: OpenNeed, listing: Listing, quantity: int
) -> None:
    """Set `quantity` of the need aside and ask the supply's owner to hold it."""
    hold_id = derive_id(d.cause.event_id, f"hold/{len(d.out)}")
    state.asks[hold_id] = Ask(
        need.need_id,
        listing.supply,
        listing.supply_id,
        quantity,
        listing.owner_partition,
        need.spec.shift,
    )
    need.remaining -= quantity
    if listing.supply is SupplyKind.VOLUNTEER:
        need.volunteers.add(listing.supply_id)
    else:
        need.from_funds[listing.supply_id] = need.from_funds.get(listing.supply_id, 0) + quantity
    request = SupplyRequested(
        hold_id=hold_id,
        need_id=need.need_id,
        need=need.spec,
        need_zone=need.zone,
        from_partition=state.partition,
        supply=listing.supply,
        supply_id=listing.supply_id,
        quantity=quantity,
    )
    d.send(request, listing.owner_partition, "request", f"hold:{hold_id}:need", 1)


def _ask_elsewhere(state: MatcherState, need: OpenNeed, d: Decisions, now: datetime) -> None:
    """After local supply: ask owners elsewhere, in the same order of preference."""
    if need.spec.kind is NeedKind.VOLUNTEER_HOURS:
        listed = [
            *state.listed_by_district.get(need.spec.place.district, {}).values(),
            *state.listed_anywhere.values(),
        ]
        for listing in sorted(listed, key=lambda v: v.arrival):
            if need.remaining <= 0:
                break
            if _listing_fits(need, listing):
                _ask(state, d, need, listing, 1)
        return
    far = datetime.max.replace(tzinfo=now.tzinfo)
    funds = [v for v in state.listings.values() if v.fund is not None]
    for listing in sorted(funds, key=lambda v: (_expiry(v, far), v.arrival)):
        if need.remaining <= 0:
            break
        share = _listing_share(need, listing, now, listing.net_minor)
        if share > 0:
            _ask(state, d, need, listing, share)


def _expiry(listing: Listing, far: datetime) -> datetime:
    assert listing.fund is not None
    return listing.fund.valid_until or far


def _on_listed(state: MatcherState, event: Envelope[Message], d: Decisions) -> None:
    """Supply owned elsewhere appeared or changed: open needs here may ask for it."""
    now, msg = event.recorded_at, event.payload
    assert isinstance(msg, SupplyListed)
    known = state.listings.get(msg.supply_id)
    if known is not None and known.version >= msg.version:
        return  # an older description arriving late changes nothing
    listing = Listing(
        msg.supply,
        msg.supply_id,
        msg.owner_partition,
        msg.version,
        msg.active,
        known.arrival if known else state.arrivals,
        msg.pledge,
        msg.fund,
        msg.net_minor,
    )
    state.index_listing(listing)
    if not listing.active:
        return
    if listing.pledge is not None:
        if travels_across_districts(listing.pledge):
            shelves = [s for s in state.unfilled if s != MONEY_SHELF]
        else:
            shelves = [f"shift:{listing.pledge.home.district}"]
        asked = 0
        for need in _open_needs(state, now, shelves):
            if asked >= state.policy.asks_per_listing:
                break
            if _listing_fits(need, listing):
                _ask(state, d, need, listing, 1)
                asked += 1
        return
    budget = listing.net_minor
    for need in _open_needs(state, now, [MONEY_SHELF]):
        if budget <= 0:
            break
        share = _listing_share(need, listing, now, budget)
        if share > 0:
            _ask(state, d, need, listing, share)
            budget -= share


def _on_requested(state: MatcherState, event: Envelope[Message], d: Decisions) -> None:
    """Another partition asks for supply this partition owns: hold it, or say why not."""
    now, req = event.recorded_at, event.payload
    assert isinstance(req, SupplyRequested)
    probe = OpenNeed(req.need_id, req.need, "", 0, req.quantity)
    granted, reason = 0, "the supply is not known here"
    if req.supply is SupplyKind.VOLUNTEER:
        vol = state.volunteers.get(req.supply_id)
        if vol is not None and req.need.shift is not None:
            if volunteer_fits(probe, vol):
                vol.booked[req.hold_id] = req.need.shift
                granted = 1
            else:
                reason = "the volunteer's pledge, calendar or weekly limit no longer fits"
    else:
        fund = state.funds.get(req.supply_id)
        if fund is not None:
            granted = fund_share(probe, fund, now)
            fund.available -= granted
            reason = "the fund has nothing left that its earmarks allow for this need"
    if granted <= 0:
        refused = SupplyRefused(
            hold_id=req.hold_id, need_id=req.need_id, supply_id=req.supply_id, reason=reason
        )
        d.send(refused, req.from_partition, "refusal", f"hold:{req.hold_id}:supply", 1)
        return
    state.holds[req.hold_id] = Hold(
        req.hold_id, req.need_id, req.supply, req.supply_id, granted, req.from_partition
    )
    grant = SupplyGranted(
        hold_id=req.hold_id,
        need_id=req.need_id,
        supply=req.supply,
        supply_id=req.supply_id,
        quantity=granted,
    )
    d.send(grant, req.from_partition, "grant", f"hold:{req.hold_id}:supply", 1)


def _undo_ask(need: OpenNeed, ask: Ask, quantity: int) -> None:
    need.remaining += quantity
    if ask.supply is SupplyKind.VOLUNTEER:
        need.volunteers.discard(ask.supply_id)
    else:
        need.from_funds[ask.supply_id] -= quantity


def _on_answered(state: MatcherState, event: Envelope[Message], d: Decisions) -> None:
    """The owner answered a request: propose what it holds, or ask someone else."""
    now, msg = event.recorded_at, event.payload
    assert isinstance(msg, SupplyGranted | SupplyRefused)
    ask = state.asks.pop(msg.hold_id, None)
    if ask is None:
        return
    need = state.needs[ask.need_id]
    if isinstance(msg, SupplyRefused):
        _undo_ask(need, ask, ask.quantity)
        listing = state.listings.get(ask.supply_id)
        need.refused[ask.supply_id] = listing.version if listing else 0
        _mark_unfilled(state, need)
        _serve_need(state, need, d, now)
        return
    unwanted = None
    if need.cancelled:
        unwanted = "the need was cancelled"
    elif need.spec.deadline <= now:
        unwanted = "the need's deadline passed"
    elif ask.supply is SupplyKind.VOLUNTEER and need.spec.shift != ask.shift:
        unwanted = "the shift changed"
    elif need.remaining < 0:
        unwanted = "the need now asks for less"
    if unwanted is not None:
        _undo_ask(need, ask, ask.quantity)
        released = SupplyReleased(hold_id=msg.hold_id, supply_id=ask.supply_id, reason=unwanted)
        d.send(released, ask.owner_partition, "release", f"hold:{msg.hold_id}:need", 2)
        return
    granted = min(msg.quantity, ask.quantity)
    _undo_ask(need, ask, ask.quantity - granted)
    if ask.supply is SupplyKind.VOLUNTEER:
        assert ask.shift is not None
        fields: dict[str, object] = {
            "supply": SupplyKind.VOLUNTEER,
            "volunteer_id": ask.supply_id,
            "shift": ask.shift,
            "minutes": ask.shift.minutes,
        }
        rule = "skills, availability, travel and weekly limit fit (held by its owner)"
    else:
        listing = state.listings[ask.supply_id]
        assert listing.fund is not None
        fields = {
            "supply": SupplyKind.FUND,
            "fund_id": ask.supply_id,
            "amount": Money(amount_minor=granted, currency=listing.fund.currency),
        }
        rule = "fund earmarks allow this category, district and period (held by its owner)"
    d.propose(state, need, fields, rule, hold=(msg.hold_id, ask.owner_partition))
    if granted < ask.quantity:
        _serve_need(state, need, d, now)


def _on_returned(state: MatcherState, event: Envelope[Message], d: Decisions) -> None:
    """A hold comes back (released by the need's owner), or is asked back (revoked)."""
    now, msg = event.recorded_at, event.payload
    if isinstance(msg, SupplyRevoked):
        p = state.by_hold.get(msg.hold_id)
        if p is not None and p.status == "proposed":  # accepted or confirmed: it stays
            _withdraw(state, d, p, msg.reason)
            _serve_need(state, state.needs[p.need_id], d, now)
        return
    assert isinstance(msg, SupplyReleased)
    hold = state.holds.pop(msg.hold_id, None)
    if hold is None:
        return
    if hold.supply is SupplyKind.VOLUNTEER:
        vol = state.volunteers[hold.supply_id]
        vol.booked.pop(hold.hold_id, None)
        vol.no_shows += int(msg.no_show)
        if not vol.withdrawn:
            _serve_volunteer(state, vol, d, now)
    else:
        fund = state.funds[hold.supply_id]
        fund.available += hold.quantity
        if fund.available > 0:
            _serve_fund(state, fund, d, now)


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
            zone=need_zone(payload.need),
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
        for p in _active(state, need_id=need.need_id):  # the deadline may have moved earlier
            _watch(state, p)
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
        for hold in _holds_of(state, vol.volunteer_id):
            _revoke(d, hold, "the volunteer withdrew their pledge")
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
        deficit = -fund.available
        for hold in reversed(_holds_of(state, fund.fund_id)):  # newest first
            if deficit <= 0:
                break
            _revoke(d, hold, "the fund refunded a donation")
            deficit -= hold.quantity


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
            _release(state, d, p, "the volunteer declined")
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
        _release(state, d, p, "the volunteer did not come", no_show=True)
        p.status = "no_show"
        assert p.volunteer_id is not None
        if p.hold_id is None:  # otherwise the owner counts it, on SupplyReleased
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


def _attention(state: MatcherState, p: Proposal) -> datetime:
    """The first moment a tick could act on this proposal: its need's deadline, or (for an
    unanswered shift) its expiry."""
    at = state.needs[p.need_id].spec.deadline
    if p.supply is SupplyKind.VOLUNTEER and p.proposed_at is not None:
        at = min(at, p.proposed_at + state.policy.proposal_ttl)
    return at


def _watch(state: MatcherState, p: Proposal) -> None:
    heapq.heappush(state.due, (_attention(state, p), p.order, p.match_id))


def _on_tick(state: MatcherState, at: datetime, d: Decisions) -> None:
    """Time passed: unanswered shifts expire (the next candidate is asked) and needs past their
    deadline give back what they hold unconfirmed. Proposals are handled newest first."""
    due: dict[uuid.UUID, Proposal] = {}
    while state.due and state.due[0][0] <= at:
        _, _, match_id = heapq.heappop(state.due)
        p = state.proposals[match_id]
        if p.status == "proposed":
            due[match_id] = p
    reopened: dict[uuid.UUID, OpenNeed] = {}
    for p in sorted(due.values(), key=lambda p: -p.order):
        need = state.needs[p.need_id]
        if need.spec.deadline <= at:
            _withdraw(state, d, p, "the need's deadline passed")
        elif (
            p.supply is SupplyKind.VOLUNTEER
            and p.proposed_at is not None
            and p.proposed_at + state.policy.proposal_ttl <= at
        ):
            _release(state, d, p, "the proposal expired unanswered")
            p.status = "expired"
            d.about(p, MatchExpired(match_id=p.match_id, need_id=p.need_id), "expiry")
            reopened[need.need_id] = need
        else:  # the deadline moved later since it was filed
            _watch(state, p)
    for need in fair_order(reopened.values()):
        _serve_need(state, need, d, at)


def apply(state: MatcherState, event: Envelope[Message]) -> list[Envelope[Message]]:
    """Fold one input into the state and return the decisions it causes, in order."""
    return decide(state, event).out


def decide(state: MatcherState, event: Envelope[Message]) -> Decisions:
    """Fold one input into the state; the decisions it causes are `.out`, in order, and
    `.routes` names the partition of each request or reply meant for another partition."""
    if event.event_id in state.seen:
        return Decisions(event)
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
    elif isinstance(payload, SupplyListed):
        _on_listed(state, event, d)
    elif isinstance(payload, SupplyRequested):
        _on_requested(state, event, d)
    elif isinstance(payload, SupplyGranted | SupplyRefused):
        _on_answered(state, event, d)
    elif isinstance(payload, SupplyReleased | SupplyRevoked):
        _on_returned(state, event, d)
    else:
        _on_supply(state, event, d)
    return d
