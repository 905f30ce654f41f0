"""Matching quality, speed and memory on a generated city-scale scenario, against the optimum.

The scenario is seeded and reproducible: districts, streets and communities of Nanjing; funds
with earmarks and donations; volunteers with skills, availability and weekly limits; money needs
and volunteer shifts with urgencies and deadlines, all arriving in one interleaved order. The
pure matcher (`services.domain.matching.apply`) decides online, in arrival order, as it does in
production. The baseline is the offline optimum on the same data, computed with HiGHS (scipy):
- money: a max-weight flow (an LP with integral optimum);
- shifts: an LP relaxation of the assignment with no-overlap and weekly-limit constraints, an
  upper bound on the optimum, so the printed ratio understates the matcher's quality.

"Demand served" weighs each need by its urgency and counts the share of it that was met.
Fairness: the spread of served shares across communities with comparable needs.

    .venv/bin/python bench/quality.py --needs 4000 --volunteers 2000 --funds 120 --seed 7
"""

from __future__ import annotations

import argparse
import random
import resource
import sys
import time
import tracemalloc
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from schemas.envelope import Actor, Envelope  # noqa: E402
from schemas.messages import (  # noqa: E402
    DonationReceived,
    FundOpened,
    MatchProposed,
    Message,
    NeedPosted,
    PledgeMade,
)
from schemas.specs import DonationSpec, FundSpec, NeedSpec, PledgeSpec  # noqa: E402
from services.domain.matching import MatcherState, apply, fund_share  # noqa: E402

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
        spec = PledgeSpec(
            pseudonym="志愿者",
            home={"district": district, "street": rng.choice(streets[district])},
            skills=rng.sample(SKILLS, rng.randint(1, 3)),
            availability=windows,
            weekly_hour_limit=rng.randint(2, 10),
            travel=rng.choice(["same_district", "same_district", "anywhere"]),
        )
        sc.volunteers[vid] = spec
        payloads.append((PledgeMade(volunteer_id=vid, pledge=spec), "volunteer"))
    for i in range(needs):
        nid = uuid.UUID(int=rng.getrandbits(128))
        district = rng.choice(DISTRICTS)
        community = f"{district}-社区{rng.randint(1, 12)}"
        urgency = rng.choices(list(WEIGHT), weights=[2, 5, 2, 1])[0]
        place = {"district": district, "street": rng.choice(streets[district])}
        if i % 2 == 0:
            spec = NeedSpec(
                title="资金需求",
                kind="money",
                category=rng.choice(CATEGORIES),
                place=place,
                urgency=urgency,
                deadline=MONDAY + timedelta(days=rng.randint(1, 20)),
                amount={"amount_minor": rng.randint(1, 50) * 10_000},
            )
            sc.money_needs[nid] = spec
        else:
            category = rng.choice(list(SHIFT_CATEGORIES))
            start = MONDAY + timedelta(days=rng.randint(0, 6), hours=rng.randint(8, 17))
            spec = NeedSpec(
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
            sc.shift_needs[nid] = spec
        sc.community_of[nid] = community
        payloads.append((NeedPosted(need_id=nid, need=spec), community))
    rng.shuffle(payloads)
    at = MONDAY - timedelta(days=7)
    for n, (payload, org) in enumerate(payloads):
        at += timedelta(seconds=5)
        eid = uuid.UUID(int=rng.getrandbits(128))
        sc.events.append(
            Envelope[Message](
                event_id=eid,
                event_type=payload.TYPE,
                schema_version=payload.VERSION,
                stream_id=f"bench:{n}",
                stream_seq=1,
                occurred_at=at,
                recorded_at=at,
                actor=Actor(org_id=org, role="system"),
                correlation_id=eid,
                payload=payload,
            )
        )
    return sc


def run_matcher(sc: Scenario) -> tuple[list[MatchProposed], float, int]:
    """Decide online; return proposals, events per second and peak traced memory (bytes)."""
    tracemalloc.start()
    state = MatcherState()
    t = time.perf_counter()
    out: list[MatchProposed] = []
    for e in sc.events:
        out += [d.payload for d in apply(state, e) if isinstance(d.payload, MatchProposed)]
    rate = len(sc.events) / (time.perf_counter() - t)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return out, rate, peak


def served(sc: Scenario, filled: dict[uuid.UUID, float]) -> float:
    """Urgency-weighted share of demand met: sum of weight x met share over all needs."""
    total = met = 0.0
    for nid, spec in {**sc.money_needs, **sc.shift_needs}.items():
        wanted = spec.volunteers_needed or spec.amount.amount_minor  # type: ignore[union-attr]
        w = WEIGHT[spec.urgency.value]
        total += w
        met += w * min(filled.get(nid, 0.0), wanted) / wanted
    return met / total


def optimum(sc: Scenario) -> dict[uuid.UUID, float]:
    """The offline optimum (money exact, shifts an LP upper bound) as filled quantity per need."""
    import numpy as np
    from scipy.optimize import linprog
    from scipy.sparse import coo_matrix

    from services.domain.matching import Fund, OpenNeed, Volunteer, volunteer_fits

    variables: list[tuple[uuid.UUID, Any, float, float]] = []  # need, supply, gain, upper
    # money: x[n,f] in minor units, gain weight/wanted per unit
    for nid, spec in sc.money_needs.items():
        wanted = spec.amount.amount_minor  # type: ignore[union-attr]
        probe = OpenNeed(nid, spec, "", 0, wanted)
        for fid, (fspec, amount) in sc.funds.items():
            if fund_share(probe, Fund(fid, fspec, 0, amount), spec.deadline - timedelta(days=8)):
                variables.append(
                    (nid, ("fund", fid), WEIGHT[spec.urgency.value] / wanted, min(wanted, amount))
                )
    # shifts: y[n,v] in [0, 1]
    for nid, spec in sc.shift_needs.items():
        probe = OpenNeed(nid, spec, "", 0, spec.volunteers_needed or 1)
        for vid, pspec in sc.volunteers.items():
            if volunteer_fits(probe, Volunteer(vid, pspec, 0)):
                variables.append(
                    (
                        nid,
                        ("vol", vid),
                        WEIGHT[spec.urgency.value] / (spec.volunteers_needed or 1),
                        1.0,
                    )
                )
    rows: list[int] = []
    cols: list[int] = []
    vals: list[float] = []
    bounds_b: list[float] = []

    def constraint(members: list[tuple[int, float]], bound: float) -> None:
        r = len(bounds_b)
        for j, coef in members:
            rows.append(r)
            cols.append(j)
            vals.append(coef)
        bounds_b.append(bound)

    by_need: dict[uuid.UUID, list[int]] = defaultdict(list)
    by_fund: dict[uuid.UUID, list[int]] = defaultdict(list)
    by_vol: dict[uuid.UUID, list[int]] = defaultdict(list)
    for j, (nid, (kind, sid), _, _) in enumerate(variables):
        by_need[nid].append(j)
        (by_fund if kind == "fund" else by_vol)[sid].append(j)
    for nid, js in by_need.items():
        spec = sc.money_needs.get(nid) or sc.shift_needs[nid]
        cap = spec.volunteers_needed or spec.amount.amount_minor  # type: ignore[union-attr]
        constraint([(j, 1.0) for j in js], cap)
    for fid, js in by_fund.items():
        constraint([(j, 1.0) for j in js], sc.funds[fid][1])
    for vid, js in by_vol.items():
        limit = sc.volunteers[vid].weekly_hour_limit * 60
        shifts = [(j, sc.shift_needs[variables[j][0]].shift) for j in js]
        constraint([(j, s.minutes) for j, s in shifts], limit)  # type: ignore[union-attr]
        for _, s in shifts:  # no overlap: at each shift's start, at most one shift held
            overlapping = [j for j, o in shifts if o.start <= s.start < o.end]  # type: ignore
            if len(overlapping) > 1:
                constraint([(j, 1.0) for j in overlapping], 1.0)
    a = coo_matrix((vals, (rows, cols)), shape=(len(bounds_b), len(variables))).tocsr()
    res = linprog(
        -np.array([v[2] for v in variables]),
        A_ub=a,
        b_ub=np.array(bounds_b),
        bounds=[(0, v[3]) for v in variables],
        method="highs",
    )
    filled: dict[uuid.UUID, float] = defaultdict(float)
    for j, x in enumerate(res.x):
        filled[variables[j][0]] += float(x)
    return filled


def fairness(sc: Scenario, filled: dict[uuid.UUID, float]) -> tuple[float, float]:
    """Served share per community (money needs of normal urgency, comparable by construction):
    the lowest and highest community shares."""
    per: dict[str, list[float]] = defaultdict(list)
    for nid, spec in sc.money_needs.items():
        if spec.urgency.value == "normal":
            wanted = spec.amount.amount_minor  # type: ignore[union-attr]
            per[sc.community_of[nid]].append(min(filled.get(nid, 0.0), wanted) / wanted)
    shares = [sum(v) / len(v) for v in per.values() if len(v) >= 3]
    return (min(shares), max(shares)) if shares else (float("nan"), float("nan"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--needs", type=int, default=4000)
    parser.add_argument("--volunteers", type=int, default=2000)
    parser.add_argument("--funds", type=int, default=120)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    t = time.perf_counter()
    sc = generate(args.needs, args.volunteers, args.funds, args.seed)
    print(
        f"scenario: {len(sc.events)} events ({len(sc.money_needs)} money needs, "
        f"{len(sc.shift_needs)} shift needs, {len(sc.volunteers)} volunteers, "
        f"{len(sc.funds)} funds), generated in {time.perf_counter() - t:.1f} s"
    )
    proposals, rate, peak = run_matcher(sc)
    online: dict[uuid.UUID, float] = defaultdict(float)
    for p in proposals:
        online[p.need_id] += p.amount.amount_minor if p.amount else 1
    t = time.perf_counter()
    best = optimum(sc)
    lp_seconds = time.perf_counter() - t
    got, bound = served(sc, online), served(sc, best)
    lo, hi = fairness(sc, online)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"matcher: {rate:,.0f} events/s (pure, one core); peak traced memory "
        f"{peak / 2**20:.0f} MiB; process max RSS {rss:.0f} MiB"
    )
    print(
        f"demand served (urgency-weighted): online {got:.1%}, optimum <= {bound:.1%} "
        f"(HiGHS, {lp_seconds:.1f} s); ratio >= {got / bound:.1%}"
    )
    print(
        f"fairness (normal-urgency money needs, share served per community): "
        f"lowest {lo:.1%}, highest {hi:.1%}"
    )


if __name__ == "__main__":
    main()
