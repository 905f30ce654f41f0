"""What one partition's decisions depend on: the policy's parameters, needs, volunteers,
funds, proposals, listings of supply owned elsewhere, requests in flight and holds lent out."""

from __future__ import annotations

import heapq
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from schemas.messages import (
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
from schemas.specs import FundSpec, NeedSpec, PledgeSpec
from services.domain.matching.skills import (
    Buckets,
    Filing,
    file_under,
    filing,
    narrowest,
    unfile,
)
from services.domain.matching.views import NeedView, PledgeView, Slot, Window
from services.domain.matching.weeks import CHINA, local_week

__all__ = ["CHINA", "local_week"]

ACTIVE = ("proposed", "accepted")


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

    asks_in_flight_per_volunteer: int = 2

    urgent_hours_percent: int = 0
    """The share of each volunteer's weekly hour limit a low or normal shift may not book
    until it is `reserve_horizon` from its start: held for high and critical shifts, as a
    fund's reserve is for urgent money needs. The policy's, not anyone's to set: a volunteer's
    hours belong to no foundation. (How much of a fund is held back is its foundation's say:
    `FundOpened.urgent_reserve_percent`, `FundReserveSet`, kept in `Fund.reserve_percent`.)"""

    reserve_horizon: timedelta = timedelta(hours=48)
    """When the reserve stops holding: for a low or normal need, once its deadline is this
    near (it is served on the first tick after, from whatever the reserve still holds); for a
    fund, once its `valid_until` is this near (its whole reserve is then free for anyone)."""

    refusals_before_rest: int = 3
    """Refusals in a row after which a volunteer listed from elsewhere is not asked again
    until their listing changes (their calendar is the owner's, so it is most likely full)."""
    """Requests a partition may have unanswered for one volunteer listed from elsewhere: the
    owner decides one calendar in order, so a queue of requests mostly collects refusals."""
    """How many open needs ask a newly listed volunteer from another partition at once. The
    owner refuses what no longer fits; a cap keeps one listing from setting aside half a city
    of needs while the answers travel."""


DEFAULT_POLICY = Policy()
"""The policy the exchange decides with. No volunteer hours are held back in it; money is held
back only where a foundation set a reserve on its fund (0 % unless it did)."""

URGENT_RESERVES = Policy(urgent_hours_percent=50)
"""Hours held for urgent shifts as measured in bench/quality.py (docs/matching.md): half of each
volunteer's week held for high and critical shifts until 48 hours before the shift. The bench
runs it with every fund opened with a 75 % reserve (`URGENT_FUND_RESERVE_PERCENT`)."""

URGENT_FUND_RESERVE_PERCENT = 75
"""The share of each fund the bench's foundations hold back in its measured "now" run."""


@dataclass(slots=True)
class Proposal:
    """One match and where it stands: proposed, accepted, declined, withdrawn, completed,
    no_show. `quantity` is 1 (a volunteer) or the minor units reserved (a fund)."""

    match_id: uuid.UUID
    need_id: uuid.UUID
    supply: SupplyKind
    quantity: int
    volunteer_id: uuid.UUID | None = None
    fund_id: uuid.UUID | None = None
    shift: Window | None = None
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


class OpenNeed:
    """A need and what is still wanted. `remaining` counts volunteers or minor units.

    Holds the need's view (what decisions read), not its pydantic spec: a partition keeps every
    need it has seen, and pickles them all into each snapshot."""

    __slots__ = (
        "arrival",
        "cancelled",
        "from_funds",
        "need_id",
        "owner",
        "refused",
        "remaining",
        "view",
        "volunteers",
        "zone",
    )

    def __init__(
        self,
        need_id: uuid.UUID,
        spec: NeedSpec,
        owner: str,
        arrival: int,
        remaining: int,
        zone: str = "",
    ) -> None:
        self.need_id = need_id
        self.view = NeedView.of(spec)
        self.owner = owner
        self.arrival = arrival
        self.remaining = remaining
        self.cancelled = False
        self.volunteers: set[uuid.UUID] = set()
        self.from_funds: dict[uuid.UUID, int] = {}
        self.zone = zone
        self.refused: dict[uuid.UUID, int] = {}
        """Supply owned elsewhere that refused this need, with the listing version it refused
        at: asked again only once its listing changes."""

    @property
    def deadline_week(self) -> tuple[int, int]:
        """The Nanjing week of the deadline (fairness compares needs due the same week)."""
        return self.view.deadline_week

    def priority(self) -> tuple[int, datetime, int]:
        """Order of service: urgency (highest first), then deadline, then waiting time."""
        return (-self.view.urgency, self.view.deadline, self.arrival)

    def is_open(self, now: datetime) -> bool:
        """Still wanting supply: not cancelled, not past its deadline, not fully met."""
        return not self.cancelled and self.remaining > 0 and self.view.deadline > now


_VIEWS: dict[int, tuple[PledgeSpec, PledgeView]] = {}


def _view_of(spec: PledgeSpec) -> PledgeView:
    """A pledge's view, remembered by object (the entry holds the spec, so its id is not reused
    meanwhile; specs are frozen). For callers that build a `Volunteer` from the same spec for
    each need they test, as bench/quality.py's optimum does for every need and volunteer. The
    matcher itself passes views, so it keeps no spec here."""
    known = _VIEWS.get(id(spec))
    if known is not None and known[0] is spec:
        return known[1]
    if len(_VIEWS) >= 20_000:
        _VIEWS.clear()
    view = PledgeView.of(spec)
    _VIEWS[id(spec)] = (spec, view)
    return view


class Volunteer:
    """A pledged volunteer and the shifts currently held for them (by match or hold id)."""

    __slots__ = ("arrival", "booked", "filed", "no_shows", "pledge", "volunteer_id", "withdrawn")

    def __init__(
        self, volunteer_id: uuid.UUID, spec: PledgeSpec | PledgeView, arrival: int
    ) -> None:
        self.volunteer_id = volunteer_id
        self.pledge = spec if isinstance(spec, PledgeView) else _view_of(spec)
        self.arrival = arrival
        self.booked: dict[uuid.UUID, Slot] = {}
        self.withdrawn = False
        self.no_shows = 0
        self.filed: Filing = ()
        """The (skill, day) keys it is filed under in `MatcherState.by_skill`."""

    def booked_minutes_in_week(self, week: tuple[int, int]) -> int:
        """Minutes already held in this Nanjing week (by shift start). Weeks are Nanjing's ISO
        weeks whatever offset a time was written in, so the same shift counts in the same week
        for everyone."""
        return sum(slot[2] for slot in self.booked.values() if slot[3] == week)


@dataclass(slots=True)
class Fund:
    """A fund and the money in it not yet reserved for a need; what it has received (net of
    refunds), and the share of that held back for urgent needs, as its foundation set it
    (`FundOpened.urgent_reserve_percent`, then `FundReserveSet`)."""

    fund_id: uuid.UUID
    spec: FundSpec
    arrival: int
    available: int = 0
    received: int = 0
    reserve_percent: int = 0

    @property
    def reserve(self) -> int:
        """Minor units that only high and critical needs may take before the horizon: a
        share of the net donations, as a protection level (the less urgent take only what
        the fund holds beyond it)."""
        return max(self.received, 0) * self.reserve_percent // 100


@dataclass(slots=True)
class Listing:
    """Supply owned by another partition, as its listing last described it."""

    supply: SupplyKind
    supply_id: uuid.UUID
    owner_partition: int
    version: int
    active: bool
    arrival: int
    pledge: PledgeView | None = None
    fund: FundSpec | None = None
    net_minor: int = 0
    reserve_percent: int = 0
    """A fund's share of `net_minor` its owner holds back for urgent needs."""
    in_flight: int = 0
    """Requests this partition sent and the owner has not answered: minor units for a fund,
    requests for a volunteer."""
    held: int = 0
    """What the owner holds for this partition now (granted and not yet given back)."""
    refused_in_row: int = 0
    """Refusals since the last grant: a volunteer whose owner keeps refusing is most likely
    booked up, and is not asked again until their listing changes."""
    filed: Filing = ()
    """The (skill, day) keys it is filed under in `MatcherState.listed_by_skill`."""

    def budget(self) -> int:
        """How much more to ask a fund for: its net donations, less what this partition holds
        or has asked for. A hint (the owner also spends on its own needs), but it keeps a
        partition from asking one fund for far more than it ever had."""
        return self.net_minor - self.held - self.in_flight


@dataclass(slots=True)
class Ask:
    """A request this partition sent for supply owned elsewhere; its quantity is set aside on
    the need until the answer comes."""

    need_id: uuid.UUID
    supply: SupplyKind
    supply_id: uuid.UUID
    quantity: int
    owner_partition: int
    shift: Window | None


@dataclass(slots=True)
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
    seen: set[int] = field(default_factory=set)
    """Ids of the inputs applied (as integers: a third of the memory of UUID objects)."""
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
    by_skill: Buckets[Volunteer] = field(default_factory=dict)
    by_need: dict[uuid.UUID, list[Proposal]] = field(default_factory=dict)
    by_volunteer: dict[uuid.UUID, list[Proposal]] = field(default_factory=dict)
    by_fund: dict[uuid.UUID, list[Proposal]] = field(default_factory=dict)
    due: list[tuple[datetime, int, uuid.UUID]] = field(default_factory=list)
    horizons: list[tuple[datetime, int, uuid.UUID]] = field(default_factory=list)
    """A heap of when a fund's reserve stops holding back a need (the need's deadline less
    `Policy.reserve_horizon`) or a whole fund (its `valid_until` less the same), by need or
    fund id: the tick after, the need is served again, or the fund offered again."""
    """A heap of when each proposal may next need a tick's attention (its need's deadline, or
    its expiry), so a tick costs what falls due rather than every open proposal."""
    # Cross-partition: listings of supply owned elsewhere, requests in flight, holds lent out.
    listings: dict[uuid.UUID, Listing] = field(default_factory=dict)
    listed_by_district: dict[str, dict[uuid.UUID, Listing]] = field(default_factory=dict)
    listed_anywhere: dict[uuid.UUID, Listing] = field(default_factory=dict)
    listed_by_skill: Buckets[Listing] = field(default_factory=dict)
    asks: dict[uuid.UUID, Ask] = field(default_factory=dict)
    holds: dict[uuid.UUID, Hold] = field(default_factory=dict)
    by_hold: dict[uuid.UUID, Proposal] = field(default_factory=dict)
    exhausted: dict[uuid.UUID, int] = field(default_factory=dict)
    """Funds listed from elsewhere that refused a request, with the listing version they
    refused at: no need here asks them again until their listing changes (a donation). The
    asking side checked the earmarks before asking, so a refusal means the money is gone."""
    reserving: set[uuid.UUID] = field(default_factory=set)
    """Funds, here or listed from elsewhere, whose foundation holds a reserve (above 0 %):
    while none does, a need's horizon changes nothing and is not served again."""
    _funds_in_order: list[Listing] | None = field(default=None, repr=False)
    _local_funds: list[Fund] | None = field(default=None, repr=False)

    def funds_in_order(self) -> list[Fund]:
        """This partition's funds, soonest-expiring first, then in order of arrival (kept
        sorted until a fund opens: every money need walks this list)."""
        if self._local_funds is None:
            far = datetime.max.replace(tzinfo=UTC)
            self._local_funds = sorted(
                self.funds.values(), key=lambda f: (f.spec.valid_until or far, f.arrival)
            )
        return self._local_funds

    def note_reserve(self, fund_id: uuid.UUID, percent: int) -> None:
        """Keep `reserving` current: the funds here or listed that hold a reserve."""
        if percent > 0:
            self.reserving.add(fund_id)
        else:
            self.reserving.discard(fund_id)

    def open_fund(self, fund: Fund) -> None:
        """A fund opened (or opened again: the new record replaces the old)."""
        self.funds[fund.fund_id] = fund
        self._local_funds = None

    def funds_listed(self) -> list[Listing]:
        """Funds listed from elsewhere, soonest-expiring first, then in order of arrival
        (kept sorted between changes: every need that asks elsewhere walks this list)."""
        if self._funds_in_order is None:
            far = datetime.max.replace(tzinfo=UTC)
            funds = [v for v in self.listings.values() if v.fund is not None]
            self._funds_in_order = sorted(
                funds, key=lambda v: ((v.fund.valid_until if v.fund else None) or far, v.arrival)
            )
        return self._funds_in_order

    def index_listing(self, listing: Listing) -> None:
        """(Re)file a listing: volunteers by the district they serve (and their skills), funds
        as they are."""
        if listing.fund is not None:
            self._funds_in_order = None
        key = listing.supply_id
        old = self.listings.get(key)
        if old is not None and old.pledge is not None:
            district = old.pledge.home.district
            gone = self.listed_by_district.get(district, {}).pop(key, None)
            if gone is not None:
                unfile(self.listed_by_skill, district, key, gone)
        gone = self.listed_anywhere.pop(key, None)
        if gone is not None:
            unfile(self.listed_by_skill, None, key, gone)
        self.listings[key] = listing
        if listing.pledge is None:
            return
        listing.filed = filing(listing.pledge)
        if listing.pledge.across:
            self.listed_anywhere[key] = listing
            file_under(self.listed_by_skill, None, key, listing)
        else:
            district = listing.pledge.home.district
            shelf = self.listed_by_district.setdefault(district, {})
            prev = shelf.get(key)
            if prev is not None:
                unfile(self.listed_by_skill, district, key, prev)
            shelf[key] = listing
            file_under(self.listed_by_skill, district, key, listing)

    def listed_for(self, need: OpenNeed) -> list[Listing]:
        """Volunteers listed from elsewhere who could travel to the need, have one of its skills
        and may be available when its shift starts (a superset of those who fit)."""
        view = need.view
        if view.shift is None:
            return []  # no one fits a need without a shift
        district, start = view.place.district, view.shift[0]
        return [
            *narrowest(self.listed_by_skill, district, view.required, start),
            *narrowest(self.listed_by_skill, None, view.required, start),
        ]

    def index_volunteer(self, vol: Volunteer, old_district: str | None = None) -> None:
        """(Re)file a volunteer under the district they serve, or under "anywhere", and under
        their skills there."""
        key = vol.volunteer_id
        if old_district is not None:
            gone = self.by_district.get(old_district, {}).pop(key, None)
            if gone is not None:
                unfile(self.by_skill, old_district, key, gone)
        gone = self.anywhere.pop(key, None)
        if gone is not None:
            unfile(self.by_skill, None, key, gone)
        vol.filed = filing(vol.pledge)
        if vol.pledge.across:
            self.anywhere[key] = vol
            file_under(self.by_skill, None, key, vol)
        else:
            district = vol.pledge.home.district
            shelf = self.by_district.setdefault(district, {})
            prev = shelf.get(key)
            if prev is not None:  # a pledge made again after a withdrawal replaces the old
                unfile(self.by_skill, district, key, prev)
            shelf[key] = vol
            file_under(self.by_skill, district, key, vol)

    def candidates_for(self, need: OpenNeed) -> list[Volunteer]:
        """Volunteers who could travel to the need, have one of its skills and may be available
        when its shift starts (a superset of those who fit)."""
        view = need.view
        if view.shift is None:
            return []  # no one fits a need without a shift
        district, start = view.place.district, view.shift[0]
        return [
            *narrowest(self.by_skill, district, view.required, start),
            *narrowest(self.by_skill, None, view.required, start),
        ]

    def index_proposal(self, p: Proposal) -> None:
        """File a new proposal under its need and its supply."""
        self.by_need.setdefault(p.need_id, []).append(p)
        if p.volunteer_id is not None:
            self.by_volunteer.setdefault(p.volunteer_id, []).append(p)
        if p.fund_id is not None:
            self.by_fund.setdefault(p.fund_id, []).append(p)
        if p.hold_id is not None:
            self.by_hold[p.hold_id] = p


def attention(state: MatcherState, p: Proposal) -> datetime:
    """The first moment a tick could act on this proposal: its need's deadline, or (for an
    unanswered shift) its expiry."""
    at = state.needs[p.need_id].view.deadline
    if p.supply is SupplyKind.VOLUNTEER and p.proposed_at is not None:
        at = min(at, p.proposed_at + state.policy.proposal_ttl)
    return at


def watch(state: MatcherState, p: Proposal) -> None:
    heapq.heappush(state.due, (attention(state, p), p.order, p.match_id))
