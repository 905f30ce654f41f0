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
import resource
import sys
import time
import tracemalloc
import uuid
from collections import defaultdict
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from schemas.messages import MatchProposed  # noqa: E402
from services.demo.city import WEIGHT, Scenario, generate  # noqa: E402
from services.domain.matching import MatcherState, apply, fund_share  # noqa: E402


def run_matcher(sc: Scenario) -> tuple[list[MatchProposed], float, int]:
    """Decide online; return proposals, events per second and peak traced memory (bytes).

    Speed and memory are measured in two passes: tracing allocations slows Python down."""
    state = MatcherState()
    t = time.perf_counter()
    out: list[MatchProposed] = []
    for e in sc.events:
        out += [d.payload for d in apply(state, e) if isinstance(d.payload, MatchProposed)]
    rate = len(sc.events) / (time.perf_counter() - t)
    del state
    tracemalloc.start()
    state = MatcherState()
    for e in sc.events:
        apply(state, e)
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
