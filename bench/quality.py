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

from schemas.common import Role  # noqa: E402
from schemas.envelope import Actor, Envelope, derive_id, originate  # noqa: E402
from schemas.messages import (  # noqa: E402
    ClockTicked,
    MatchDeclined,
    MatchExpired,
    MatchProposed,
    MatchWithdrawn,
    Message,
)
from services.demo.city import WEIGHT, Scenario, answer, generate  # noqa: E402
from services.domain.matching import MatcherState, apply, fund_share  # noqa: E402


def timeline(sc: Scenario, hours: int = 8 * 24) -> list[Envelope[Message]]:
    """The postings, then an hourly clock tick through the week of shifts (time is an input:
    widening to volunteers further away, expiry and deadlines happen on ticks)."""
    at = sc.events[-1].recorded_at
    ticks = []
    for h in range(1, hours + 1):
        now = at + timedelta(hours=h)
        eid = derive_id(sc.events[-1].event_id, f"tick/{h}")
        clock = Actor(org_id="clock", role=Role.SYSTEM)
        ticks.append(
            originate(ClockTicked(at=now), event_id=eid, at=now, actor=clock, stream_id="clock")
        )
    return [*sc.events, *ticks]


def decide_city(sc: Scenario) -> tuple[dict[uuid.UUID, float], int]:
    """Run the matcher over the city's timeline with answers; served quantity per need, and
    how many inputs were applied."""
    state = MatcherState()
    live: dict[uuid.UUID, MatchProposed] = {}
    inputs = 0
    pending = list(reversed(timeline(sc)))
    while pending:
        event = pending.pop()
        inputs += 1
        for d in apply(state, event):
            if isinstance(d.payload, MatchProposed):
                live[d.payload.match_id] = d.payload
                pending.extend(reversed(answer(sc, d)))
            elif isinstance(d.payload, MatchDeclined | MatchWithdrawn | MatchExpired):
                live.pop(d.payload.match_id, None)
    served: dict[uuid.UUID, float] = defaultdict(float)
    for p in live.values():
        served[p.need_id] += p.amount.amount_minor if p.amount else 1
    return served, inputs


def run_matcher(sc: Scenario) -> tuple[dict[uuid.UUID, float], float, int]:
    """Decide online; return served quantity per need, inputs per second and peak traced
    memory (bytes). Speed and memory are measured in two passes: tracing slows Python down."""
    t = time.perf_counter()
    served, inputs = decide_city(sc)
    rate = inputs / (time.perf_counter() - t)
    tracemalloc.start()
    decide_city(sc)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return served, rate, peak


def wanted_of(spec: Any) -> tuple[str, int, int]:
    """(kind, quantity wanted, size of one unit): money in fen; shifts in volunteer places of
    `shift.minutes` each, so that hours are what is counted."""
    if spec.shift is not None:
        return "hours", spec.volunteers_needed or 1, spec.shift.minutes
    return "money", spec.amount.amount_minor, 1


def served(sc: Scenario, filled: dict[uuid.UUID, float]) -> dict[str, float]:
    """Share of demand met, weighted by urgency: per kind, urgency-weighted quantity served
    (fen, volunteer minutes) over urgency-weighted quantity wanted; "all" is their mean, so
    money and time count alike. "per_need" is the mean of each need's own met share (a view
    that favours many small needs over a few large ones), shown for comparison."""
    total: dict[str, float] = defaultdict(float)
    met: dict[str, float] = defaultdict(float)
    per_need_total = per_need_met = 0.0
    for nid, spec in {**sc.money_needs, **sc.shift_needs}.items():
        kind, wanted, unit = wanted_of(spec)
        w = WEIGHT[spec.urgency.value]
        got = min(filled.get(nid, 0.0), wanted)
        total[kind] += w * wanted * unit
        met[kind] += w * got * unit
        per_need_total += w
        per_need_met += w * got / wanted
    out = {k: met[k] / total[k] for k in total}
    out["all"] = sum(out.values()) / len(out)
    out["per_need"] = per_need_met / per_need_total
    return out


def optimum(sc: Scenario) -> dict[uuid.UUID, float]:
    """The offline optimum (money exact, shifts an LP upper bound) as filled quantity per need."""
    import numpy as np
    from scipy.optimize import linprog
    from scipy.sparse import coo_matrix

    from services.domain.matching import Fund, OpenNeed, Volunteer, volunteer_fits

    variables: list[tuple[uuid.UUID, Any, float, float]] = []  # need, supply, gain, upper
    decided_by = sc.events[-1].recorded_at  # earmarks judged when the online matcher decides
    # the objective is `served`'s, per kind: urgency weight per fen (or per volunteer minute)
    # over the kind's weighted demand
    demand: dict[str, float] = defaultdict(float)
    for spec in [*sc.money_needs.values(), *sc.shift_needs.values()]:
        kind, wanted, unit = wanted_of(spec)
        demand[kind] += WEIGHT[spec.urgency.value] * wanted * unit
    # money: x[n,f] in minor units
    for nid, spec in sc.money_needs.items():
        wanted = spec.amount.amount_minor  # type: ignore[union-attr]
        probe = OpenNeed(nid, spec, "", 0, wanted)
        for fid, (fspec, amount) in sc.funds.items():
            if fund_share(probe, Fund(fid, fspec, 0, amount), decided_by):
                variables.append(
                    (
                        nid,
                        ("fund", fid),
                        WEIGHT[spec.urgency.value] / demand["money"],
                        min(wanted, amount),
                    )
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
                        WEIGHT[spec.urgency.value] * spec.shift.minutes / demand["hours"],  # type: ignore[union-attr]
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


def fairness(sc: Scenario, filled: dict[uuid.UUID, float]) -> tuple[float, float, float]:
    """Served share per community, over comparable needs that competed for the same money:
    money needs of normal urgency that at least one fund's earmarks allow. Returns the lowest
    and highest community share and Jain's index over the shares (1.0: all equal)."""
    decided_by = sc.events[-1].recorded_at
    per: dict[str, list[float]] = defaultdict(list)
    for nid, spec in sc.money_needs.items():
        if spec.urgency.value != "normal":
            continue
        if not any(
            f.allows(spec.category, spec.place.district, decided_by) for f, _ in sc.funds.values()
        ):
            continue
        wanted = spec.amount.amount_minor  # type: ignore[union-attr]
        per[sc.community_of[nid]].append(min(filled.get(nid, 0.0), wanted) / wanted)
    shares = [sum(v) / len(v) for v in per.values() if len(v) >= 3]
    if not shares:
        return float("nan"), float("nan"), float("nan")
    jain = sum(shares) ** 2 / (len(shares) * sum(x * x for x in shares)) if any(shares) else 1.0
    return min(shares), max(shares), jain


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
    online, rate, peak = run_matcher(sc)
    t = time.perf_counter()
    best = optimum(sc)
    lp_seconds = time.perf_counter() - t
    got, bound = served(sc, online), served(sc, best)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"matcher: {rate:,.0f} events/s (pure, one core); peak traced memory "
        f"{peak / 2**20:.0f} MiB; process max RSS {rss:.0f} MiB"
    )
    print(f"optimum: HiGHS in {lp_seconds:.1f} s")
    for kind in ("money", "hours", "all"):
        print(
            f"demand served (urgency-weighted), {kind}: online {got[kind]:.1%}, "
            f"optimum <= {bound[kind]:.1%}; ratio >= {got[kind] / bound[kind]:.1%}"
        )
    print(f"per-need view (not optimised for): online {got['per_need']:.1%}")
    lo, hi, jain = fairness(sc, online)
    print(
        f"fairness (normal-urgency money needs that some fund allows, share served per "
        f"community): lowest {lo:.1%}, highest {hi:.1%}, Jain's index {jain:.3f}"
    )


if __name__ == "__main__":
    main()
