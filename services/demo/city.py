"""A generated city for benchmarks and regression tests: a seeded, reproducible week of
Nanjing's postings (funds, donations, volunteers, money needs and shifts) in one interleaved
arrival order, as envelopes ready for the matcher."""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from schemas.common import Role
from schemas.envelope import Actor, Envelope, derive_id, originate
from schemas.messages import (
    AcceptMatch,
    ConfirmMatch,
    DonationReceived,
    FundOpened,
    MatchProposed,
    Message,
    NeedPosted,
    PledgeMade,
)
from schemas.specs import DonationSpec, FundSpec, NeedSpec, PledgeSpec

DISTRICTS = [
    "玄武区",
    "秦淮区",
    "建邺区",
    "鼓楼区",
    "浦口区",
    "栖霞区",
    "雨花台区",
    "江宁区",
    "六合区",
    "溧水区",
    "高淳区",
]
CATEGORIES = [
    "elderly_meals",
    "elder_care",
    "child_care",
    "emergency",
    "hardship_relief",
    "vulnerable_children",
    "livelihood_project",
]
SHIFT_CATEGORIES = {
    "elderly_meals": ["meal_delivery"],
    "elder_care": ["elderly_care"],
    "child_care": ["child_care"],
    "tutoring": ["tutoring"],
    "emergency": ["first_aid"],
    "home_watch": ["patrol"],
}
SKILLS = [
    "meal_delivery",
    "elderly_care",
    "child_care",
    "tutoring",
    "first_aid",
    "patrol",
    "driving",
    "cooking",
]
WEIGHT = {"low": 1, "normal": 2, "high": 4, "critical": 8}
MONDAY = datetime(2026, 12, 7, tzinfo=UTC)  # the scenario's week


@dataclass
class Scenario:
    """Events in arrival order, and the facts the optimum needs."""

    events: list[Envelope[Message]]
    money_needs: dict[uuid.UUID, NeedSpec]
    shift_needs: dict[uuid.UUID, NeedSpec]
    funds: dict[uuid.UUID, tuple[FundSpec, int]]
    volunteers: dict[uuid.UUID, PledgeSpec]
    community_of: dict[uuid.UUID, str]


def generate(needs: int, volunteers: int, funds: int, seed: int) -> Scenario:
    """A reproducible week of a city's postings."""
    rng = random.Random(seed)
    streets = {d: [f"{d[:-1]}{i}街道" for i in range(1, 5)] for d in DISTRICTS}
    payloads: list[tuple[Message, str]] = []
    sc = Scenario([], {}, {}, {}, {}, {})
    for _ in range(funds):
        fid = uuid.UUID(int=rng.getrandbits(128))
        spec = FundSpec(
            name=f"基金{len(sc.funds)}",
            foundation="基金会",
            categories=rng.sample(CATEGORIES, rng.randint(1, 3)),
            districts=rng.sample(DISTRICTS, rng.randint(1, 4)) if rng.random() < 0.7 else [],
            valid_until=MONDAY + timedelta(days=rng.randint(8, 60)) if rng.random() < 0.5 else None,
        )
        amount = rng.randint(50, 400) * 10_000
        sc.funds[fid] = (spec, amount)
        payloads.append((FundOpened(fund_id=fid, fund=spec), "foundation"))
        payloads.append(
            (
                DonationReceived(
                    fund_id=fid,
                    donation_id=uuid.UUID(int=rng.getrandbits(128)),
                    donation=DonationSpec(donor="捐赠人", amount={"amount_minor": amount}),
                ),
                "foundation",
            )
        )
    for _ in range(volunteers):
        vid = uuid.UUID(int=rng.getrandbits(128))
        district = rng.choice(DISTRICTS)
        windows = []
        for day in sorted(rng.sample(range(7), rng.randint(1, 3))):
            start = MONDAY + timedelta(days=day, hours=rng.randint(7, 15))
            windows.append({"start": start, "end": start + timedelta(hours=rng.randint(3, 6))})
        pledge = PledgeSpec(
            pseudonym="志愿者",
            home={"district": district, "street": rng.choice(streets[district])},
            skills=rng.sample(SKILLS, rng.randint(1, 3)),
            availability=windows,
            weekly_hour_limit=rng.randint(2, 10),
            travel=rng.choice(["same_district", "same_district", "anywhere"]),
        )
        sc.volunteers[vid] = pledge
        payloads.append((PledgeMade(volunteer_id=vid, pledge=pledge), "volunteer"))
    for i in range(needs):
        nid = uuid.UUID(int=rng.getrandbits(128))
        district = rng.choice(DISTRICTS)
        community = f"{district}-社区{rng.randint(1, 12)}"
        urgency = rng.choices(list(WEIGHT), weights=[2, 5, 2, 1])[0]
        place = {"district": district, "street": rng.choice(streets[district])}
        if i % 2 == 0:
            need = NeedSpec(
                title="资金需求",
                kind="money",
                category=rng.choice(CATEGORIES),
                place=place,
                urgency=urgency,
                deadline=MONDAY + timedelta(days=rng.randint(1, 20)),
                amount={"amount_minor": rng.randint(1, 50) * 10_000},
            )
            sc.money_needs[nid] = need
        else:
            category = rng.choice(list(SHIFT_CATEGORIES))
            start = MONDAY + timedelta(days=rng.randint(0, 6), hours=rng.randint(8, 17))
            need = NeedSpec(
                title="志愿服务",
                kind="volunteer_hours",
                category=category,
                place=place,
                urgency=urgency,
                deadline=start + timedelta(hours=3),
                shift={"start": start, "end": start + timedelta(hours=rng.randint(1, 2))},
                volunteers_needed=rng.randint(1, 3),
                required_skills=SHIFT_CATEGORIES[category],
            )
            sc.shift_needs[nid] = need
        sc.community_of[nid] = community
        payloads.append((NeedPosted(need_id=nid, need=need), community))
    rng.shuffle(payloads)
    _open_funds_first(payloads)
    at = MONDAY - timedelta(days=7)
    for n, (payload, org) in enumerate(payloads):
        at += timedelta(seconds=5)
        eid = uuid.UUID(int=rng.getrandbits(128))
        actor = Actor(org_id=org, role=Role.SYSTEM)
        sc.events.append(
            originate(
                payload, event_id=eid, at=at, actor=actor, stream_id=f"bench:{n}", stream_seq=1
            )
        )
    return sc


def _open_funds_first(payloads: list[tuple[Message, str]]) -> None:
    """Keep each fund's opening before its donations, as the intake service would (it refuses
    money for a fund not yet open): swap the two when the shuffle put them the other way."""
    opened_at: dict[uuid.UUID, int] = {}
    for i, (payload, _) in enumerate(payloads):
        if isinstance(payload, FundOpened):
            opened_at[payload.fund_id] = i
    for i, (payload, _) in enumerate(payloads):
        if isinstance(payload, DonationReceived) and opened_at[payload.fund_id] > i:
            j = opened_at[payload.fund_id]
            payloads[i], payloads[j] = payloads[j], payloads[i]
            opened_at[payload.fund_id] = i


def answer(sc: Scenario, decision: Envelope[Message]) -> list[Envelope[Message]]:
    """How the city answers a proposal: the volunteer accepts their shift, or the community
    that posted the need confirms the money, at once (benchmarks and tests of a city's week)."""
    p = decision.payload
    if not isinstance(p, MatchProposed):
        return []
    if p.volunteer_id is not None:
        cmd: Message = AcceptMatch(match_id=p.match_id)
        actor = Actor(org_id=str(p.volunteer_id), role=Role.VOLUNTEER)
    else:
        cmd = ConfirmMatch(match_id=p.match_id, amount_received=p.amount)
        actor = Actor(org_id=sc.community_of[p.need_id], role=Role.COMMUNITY)
    eid = derive_id(p.match_id, "answer")
    return [
        originate(
            cmd,
            event_id=eid,
            at=decision.recorded_at,
            actor=actor,
            stream_id=f"match:{p.match_id}",
            stream_seq=1,
        )
    ]
