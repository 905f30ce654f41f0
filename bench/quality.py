"""Matching quality, speed and memory on a generated city-scale scenario, against the optimum.

The scenario is seeded and reproducible: districts, streets and communities of Nanjing; funds
with earmarks and donations; volunteers with skills, availability and weekly limits; money needs
and volunteer shifts with urgencies and deadlines, all arriving in one interleaved order. The
pure matcher (`services.domain.matching.apply`) decides online, in arrival order, as it does in
production. The baseline is the offline optimum on the same data, computed with HiGHS (scipy),
as two LPs solved apart (money and time share no supply):
- money: a max-weight transportation problem on classes of alike needs, exact (`money_lp`);
- shifts: an LP relaxation of the assignment with clique no-overlap rows and weekly limits per
  Nanjing week, an upper bound on the optimum (`shift_lp`), so the printed ratio understates
  the matcher's quality.
Both LPs admit only what the matcher's own predicates (`fund_share`, `pledge_fits`) allow, and
the run checks that the matcher's standing proposals are a feasible point of both: what the
LPs leave out, the matcher never did.

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
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
from scipy import sparse

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from schemas.common import Role  # noqa: E402
from schemas.envelope import Actor, Envelope, derive_id, originate  # noqa: E402
from schemas.messages import (  # noqa: E402
    ClockTicked,
    FundOpened,
    MatchDeclined,
    MatchExpired,
    MatchProposed,
    MatchWithdrawn,
    Message,
    NeedPosted,
)
from services.demo.city import WEIGHT, Scenario, answer, generate  # noqa: E402
from services.domain.matching import (  # noqa: E402
    DEFAULT_POLICY,
    URGENT_FUND_RESERVE_PERCENT,
    URGENT_RESERVES,
    MatcherState,
    Policy,
    apply,
    fund_share,
)


def timeline(sc: Scenario) -> list[Envelope[Message]]:
    """The postings, then an hourly clock tick through the week of shifts and on to the last
    need's deadline (time is an input: expiry, deadlines and the release of what a fund holds
    back for urgent needs happen on ticks). Ticking past the shifts' week changes nothing
    today's policy decides (proposals are answered at once), but money needs fall due up to
    twenty days after Monday, and a policy that makes a need wait is judged by what it
    serves by then."""
    at = sc.events[-1].recorded_at
    last = max(n.deadline for n in (*sc.money_needs.values(), *sc.shift_needs.values()))
    hours = max(8 * 24, int((last - at).total_seconds() // 3600) + 2)
    ticks = []
    for h in range(1, hours + 1):
        now = at + timedelta(hours=h)
        eid = derive_id(sc.events[-1].event_id, f"tick/{h}")
        clock = Actor(org_id="clock", role=Role.SYSTEM)
        ticks.append(
            originate(ClockTicked(at=now), event_id=eid, at=now, actor=clock, stream_id="clock")
        )
    return [*sc.events, *ticks]


ORDERS = ("supply-first", "needs-first", "interleaved")
"""The arrival orders every run scores: every fund, donation and pledge posted before any need;
every need before any supply; and the generator's seeded shuffle of both."""


def is_supply(event: Envelope[Message]) -> bool:
    """Funds, donations and pledges, as opposed to needs."""
    return not isinstance(event.payload, NeedPosted)


def in_order(sc: Scenario, order: str) -> Scenario:
    """The same city posted in another order: the same events (ids, payloads) in a stable
    partition of the generator's shuffle, stamped again five seconds apart from the same first
    moment, so that only the order differs. A fund still opens before its donations."""
    if order == "interleaved":
        return sc
    supply = [e for e in sc.events if is_supply(e)]
    needs = [e for e in sc.events if not is_supply(e)]
    ordered = [*supply, *needs] if order == "supply-first" else [*needs, *supply]
    first = sc.events[0].recorded_at
    events = [
        e.model_copy(update={"recorded_at": first + timedelta(seconds=5 * i)})
        for i, e in enumerate(ordered)
    ]
    return replace(sc, events=events)


@dataclass
class Online:
    """What the matcher decided on one city: the proposals standing at the end, how many
    inputs it applied, and when each need got its first proposal (logged time)."""

    live: list[MatchProposed]
    inputs: int
    waited: dict[uuid.UUID, timedelta]


def decide_city(sc: Scenario, policy: Policy = DEFAULT_POLICY) -> Online:
    """Run the matcher over the city's timeline with answers; the proposals that stand at the
    end, how many inputs were applied, and each served need's wait for its first proposal."""
    state = MatcherState(policy=policy)
    live: dict[uuid.UUID, MatchProposed] = {}
    posted: dict[uuid.UUID, Any] = {}
    waited: dict[uuid.UUID, timedelta] = {}
    inputs = 0
    pending = list(reversed(timeline(sc)))
    while pending:
        event = pending.pop()
        inputs += 1
        if isinstance(event.payload, NeedPosted):
            posted[event.payload.need_id] = event.recorded_at
        for d in apply(state, event):
            if isinstance(d.payload, MatchProposed):
                live[d.payload.match_id] = d.payload
                nid = d.payload.need_id
                waited.setdefault(nid, d.recorded_at - posted[nid])
                pending.extend(reversed(answer(sc, d)))
            elif isinstance(d.payload, MatchDeclined | MatchWithdrawn | MatchExpired):
                live.pop(d.payload.match_id, None)
    return Online(list(live.values()), inputs, waited)


def quantity(p: MatchProposed) -> int:
    """What a proposal serves: minor units of money, or one volunteer place."""
    return p.amount.amount_minor if p.amount else 1


def run_matcher(
    sc: Scenario, policy: Policy = DEFAULT_POLICY, memory: bool = False
) -> tuple[Online, float, int]:
    """Decide online; return what was decided, inputs per second and (with `memory`) peak
    traced memory in bytes. Speed and memory are measured in two passes: tracing slows Python
    down."""
    t = time.perf_counter()
    online = decide_city(sc, policy)
    rate = online.inputs / (time.perf_counter() - t)
    peak = 0
    if memory:
        tracemalloc.start()
        decide_city(sc, policy)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return online, rate, peak


def wanted_of(spec: Any) -> tuple[str, int, int]:
    """(kind, quantity wanted, size of one unit): money in fen; shifts in volunteer places of
    `shift.minutes` each, so that hours are what is counted."""
    if spec.shift is not None:
        return "hours", spec.volunteers_needed or 1, spec.shift.minutes
    return "money", spec.amount.amount_minor, 1


def served(sc: Scenario, filled: dict[uuid.UUID, float], weighted: bool = True) -> dict[str, float]:
    """Share of demand met, per kind ("money", "shifts") and "all", their mean, so money and
    time count alike.

    Urgency-weighted (`weighted`): each need counts with its urgency's weight (`WEIGHT`: low 1,
    normal 2, high 4, critical 8) times its quantity: fen, or volunteer minutes (places times
    the shift's minutes). Count-based: yuan paid over yuan wanted, and person-shifts (volunteer
    places) filled over places wanted, every need alike. "per_need" (weighted only) is the mean
    of each need's own met share (a view that favours many small needs over a few large ones),
    shown for comparison."""
    total: dict[str, float] = defaultdict(float)
    met: dict[str, float] = defaultdict(float)
    per_need_total = per_need_met = 0.0
    for nid, spec in {**sc.money_needs, **sc.shift_needs}.items():
        kind, wanted, unit = wanted_of(spec)
        w = WEIGHT[spec.urgency.value] if weighted else 1
        unit = unit if weighted else 1
        got = min(filled.get(nid, 0.0), wanted)
        total[kind] += w * wanted * unit
        met[kind] += w * got * unit
        per_need_total += w
        per_need_met += w * got / wanted
    out = {("shifts" if k == "hours" else k): met[k] / total[k] for k in total}
    out["all"] = sum(out.values()) / len(out)
    out["per_need"] = per_need_met / per_need_total
    return out


METHOD = "highs-ipm"
"""HiGHS's interior point method (then crossover to a vertex). On the shifts LP it is the
difference between finishing and not: 4 s against 120 s for dual simplex on the 4,000-need
city (43,628 columns), and the 10,000-need city's LP finishes in half a minute."""

SEPARATE_PART = 2_000
"""Columns from which an independent part of an LP is solved on its own; smaller parts are
solved together in one call."""


@dataclass
class Lp:
    """One LP of the optimum: maximise `gain @ x` subject to `a @ x <= b` and
    `0 <= x <= upper`. `fill` reads a solution as quantity per need; `column` says which
    column a standing proposal of this LP's kind (`supply`: "fund" or "volunteer") adds its
    quantity to, None when the LP has no such pair. Also its size and where the time went."""

    kind: str
    supply: str
    gain: np.ndarray
    a: sparse.csr_array
    b: np.ndarray
    upper: np.ndarray
    fill: Callable[[np.ndarray], dict[uuid.UUID, float]]
    column: Callable[[MatchProposed], int | None]
    count: np.ndarray | None = None
    """The gain of each column when every unit counts alike (a fen, a person-shift): the
    count-based optimum."""
    pairs: tuple[np.ndarray, np.ndarray] | None = None
    """Shifts LP only: each column's shift and volunteer, as positions in the scenario's
    `shift_needs` and `volunteers` (bench/rounds.py decides in rounds over them)."""
    build_seconds: float = 0.0
    solve_seconds: float = 0.0
    parts: int = 0
    largest: int = 0

    def line(self) -> str:
        """One printed line: sizes and times."""
        rows, cols = self.a.shape
        return (
            f"{self.kind}: {rows:,} rows x {cols:,} columns, {self.a.nnz:,} non-zeros, "
            f"{self.parts:,} independent part(s) (largest {self.largest:,} columns); "
            f"built in {self.build_seconds:.1f} s, HiGHS {self.solve_seconds:.1f} s"
        )

    def excess(self, live: list[MatchProposed]) -> tuple[float, int]:
        """The standing proposals of this kind as a point of the LP: the largest amount by
        which it breaks a row or a bound (relative to the bound), and how many proposals have
        no column at all. (0, 0) means the matcher's decisions are a feasible point, so the
        LP optimum is at least what the matcher served: a check that the LP leaves out
        nothing the matcher may do."""
        x = np.zeros(self.a.shape[1])
        missing = 0
        for p in live:
            if getattr(p, f"{self.supply}_id") is None:
                continue
            j = self.column(p)
            if j is None:
                missing += 1
            else:
                x[j] += quantity(p)
        over = np.concatenate(
            [
                (self.a @ x - self.b) / np.maximum(1.0, self.b),
                (x - self.upper) / np.maximum(1.0, self.upper),
            ]
        )
        return max(0.0, float(over.max(initial=0.0))), missing


def solve_max(lp: Lp, gain: np.ndarray | None = None) -> np.ndarray:
    """Solve `lp` with HiGHS, maximising `gain` (`lp.gain`, urgency-weighted, by default).

    The LP is cut into its independent parts (columns that share no row, found as connected
    components of the rows-columns graph): the optimum of the whole is the sum of theirs, and
    HiGHS's time grows faster than the size of what it is given. Parts of fewer than
    `SEPARATE_PART` columns go together in one call, since each call has its own overhead.
    Anything short of HiGHS's optimum raises: a bound that is not optimal is no bound."""
    from scipy.optimize import linprog
    from scipy.sparse.csgraph import connected_components

    t = time.perf_counter()
    a, b = lp.a, lp.b
    m, n = a.shape
    graph = sparse.block_array([[None, a], [a.T, None]], format="csr")
    _, label = connected_components(graph, directed=False)
    del graph
    col_label, row_label = label[m:], label[:m]
    labels, sizes = np.unique(col_label, return_counts=True)
    lp.parts, lp.largest = len(labels), int(sizes.max()) if n else 0
    big = labels[sizes >= SEPARATE_PART]
    col_group = np.where(np.isin(col_label, big), col_label, -1)
    row_group = np.where(np.isin(row_label, big), row_label, -1)
    lp.build_seconds += time.perf_counter() - t
    x = np.zeros(n)
    gain = lp.gain if gain is None else gain
    t = time.perf_counter()
    for group in np.unique(col_group):
        cols = np.flatnonzero(col_group == group)
        rows = np.flatnonzero(row_group == group)
        whole = len(cols) == n and len(rows) == m  # one part: no copy of the matrix
        res = linprog(
            -gain[cols],
            A_ub=a if whole else a[rows][:, cols],
            b_ub=b[rows],
            bounds=np.column_stack([np.zeros(len(cols)), lp.upper[cols]]),
            method=METHOD,
        )
        if res.status != 0:
            raise RuntimeError(f"{lp.kind}: HiGHS stopped short of the optimum: {res.message}")
        x[cols] = res.x
    lp.solve_seconds += time.perf_counter() - t
    return x


def money_lp(sc: Scenario) -> Lp:
    """The most urgency-weighted money the funds could pay under their earmarks: a max-weight
    transportation problem, solved as an LP on classes of needs.

    A need's gain per yuan is its urgency weight alone, and which funds may pay it depends only
    on its currency, category and district (`fund_share` reads nothing else of the need, and
    the earmarks are judged at one instant, when the online matcher decides). Needs alike in
    those and in urgency are one class: a class can take from each of its funds up to the sum
    of its needs' amounts, and whatever the class receives can be split among its needs
    (every need of a class may be paid by every fund of the class), so the class LP has the
    same optimum as the LP over single needs, with a few hundred columns instead of millions.
    With a per-need cap on a fund, the class bound sums the capped shares: still an upper
    bound (a relaxation), exact without caps (the generated city has none).

    The LP maximises urgency weight times fen; `served` divides that by a constant (the
    weighted fen wanted), so the optimum is the same and HiGHS sees costs of 1 to 8 rather
    than of 1e-10, below its tolerances."""
    from services.domain.matching import Fund, OpenNeed

    t = time.perf_counter()
    decided_by = sc.events[-1].recorded_at
    funds = list(sc.funds.items())
    allowed: dict[tuple[str, str, str], list[int]] = {}
    classes: dict[tuple[tuple[int, ...], int], list[uuid.UUID]] = defaultdict(list)
    for nid, spec in sc.money_needs.items():
        wanted = spec.money_wanted
        assert wanted is not None
        key = (wanted.currency, spec.category, spec.place.district)
        if key not in allowed:
            probe = OpenNeed(nid, spec, "", 0, wanted.amount_minor)
            allowed[key] = [
                i
                for i, (fid, (fspec, amount)) in enumerate(funds)
                if fund_share(probe, Fund(fid, fspec, 0, amount), decided_by) > 0
            ]
        classes[(tuple(allowed[key]), WEIGHT[spec.urgency.value])].append(nid)
    col_class: list[int] = []
    col_fund: list[int] = []
    upper: list[float] = []
    gain: list[float] = []
    wanted_of_class: list[float] = []
    for c, ((fund_ids, weight), nids) in enumerate(classes.items()):
        amounts = [sc.money_needs[n].money_wanted.amount_minor for n in nids]  # type: ignore[union-attr]
        wanted_of_class.append(float(sum(amounts)))
        for i in fund_ids:
            fspec, amount = funds[i][1]
            cap = fspec.cap_per_need.amount_minor if fspec.cap_per_need else None
            col_class.append(c)
            col_fund.append(i)
            capped = amounts if cap is None else [min(w, cap) for w in amounts]
            upper.append(float(min(amount, sum(capped))))
            gain.append(float(weight))
    cols = np.arange(len(col_class))
    n_classes = len(classes)
    a = sparse.coo_array(
        (
            np.ones(2 * len(cols)),
            (
                np.concatenate([col_class, n_classes + np.array(col_fund, dtype=int)]),
                np.tile(cols, 2),
            ),
        ),
        shape=(n_classes + len(funds), len(cols)),
    )
    b = np.array(wanted_of_class + [float(amount) for _, (_, amount) in funds])

    def fill(x: np.ndarray) -> dict[uuid.UUID, float]:
        """Each class's money split among its needs, in any order: every split is feasible."""
        got = np.bincount(np.array(col_class, dtype=int), weights=x, minlength=n_classes)
        filled: dict[uuid.UUID, float] = {}
        for c, nids in enumerate(classes.values()):
            left = float(got[c])
            for nid in nids:
                take = min(left, float(sc.money_needs[nid].money_wanted.amount_minor))  # type: ignore[union-attr]
                filled[nid] = take
                left -= take
        return filled

    class_of = {nid: c for c, nids in enumerate(classes.values()) for nid in nids}
    fund_at = {fid: i for i, (fid, _) in enumerate(funds)}
    at = {(c, i): j for j, (c, i) in enumerate(zip(col_class, col_fund, strict=True))}

    def column(p: MatchProposed) -> int | None:
        c, i = class_of.get(p.need_id), fund_at.get(p.fund_id)  # type: ignore[arg-type]
        return None if c is None or i is None else at.get((c, i))

    lp = Lp("money LP", "fund", np.array(gain), a.tocsr(), b, np.array(upper), fill, column)
    lp.count = np.ones(len(gain))
    lp.build_seconds = time.perf_counter() - t
    return lp


def shift_lp(sc: Scenario) -> Lp:
    """An upper bound on the most urgency-weighted volunteer minutes the shifts could get: the
    LP relaxation of assigning volunteers to shifts (y[shift, volunteer] in [0, 1]).

    Columns: only the pairs the matcher itself could ever propose, `pledge_fits` (skills,
    travel, availability) and a shift no longer than the weekly limit. A vectorised test of
    skills and availability picks the candidates, `pledge_fits` has the last word on each,
    so the feasible set is the matcher's policy and not a copy of it.

    Rows:
    - each shift takes at most `volunteers_needed` volunteers;
    - each volunteer works at most their weekly limit in each Nanjing week (by shift start,
      as `Volunteer.booked_minutes_in_week` counts; the city's Sunday-evening shifts in UTC
      fall in the next Nanjing week);
    - no overlap, as clique rows: for each volunteer and each start time of one of their
      candidate shifts, the shifts running at that instant sum to at most 1. Shifts are
      intervals, so every set of pairwise-overlapping shifts runs at one such instant: these
      rows forbid exactly what the pairwise rows would, with far fewer rows, and are the
      tighter relaxation. Rows implied by others (a subset of another clique, a limit no set
      of candidates can reach) are left out.

    The gain of a column is the shift's urgency weight times its hours (proportional to what
    `served` counts). The LP optimum is at least the integer optimum, so the printed ratio is
    a lower bound on the matcher's quality."""
    from services.domain.matching import local_week, pledge_fits

    t = time.perf_counter()
    shifts = list(sc.shift_needs.items())
    pledges = list(sc.volunteers.values())

    def second(at: Any) -> int:  # whole seconds: a floor never invents an overlap
        return int(at.timestamp() // 1)

    skills = sorted(
        {s for p in pledges for s in p.skills} | {s for _, n in shifts for s in n.required_skills}
    )
    index = {s: i for i, s in enumerate(skills)}
    has = np.zeros((len(pledges), len(skills)), dtype=bool)
    for v, p in enumerate(pledges):
        has[v, [index[s] for s in p.skills]] = True
    win = [
        (v, second(w.start), second(w.end)) for v, p in enumerate(pledges) for w in p.availability
    ]
    win_vol, win_start, win_end = (np.array(c, dtype=np.int64) for c in zip(*win, strict=True))
    limit = np.array([p.weekly_hour_limit * 60 for p in pledges], dtype=np.int64)
    start = np.array([second(n.shift.start) for _, n in shifts], dtype=np.int64)  # type: ignore[union-attr]
    end = np.array([second(n.shift.end) for _, n in shifts], dtype=np.int64)  # type: ignore[union-attr]
    minutes = np.array([n.shift.minutes for _, n in shifts], dtype=np.int64)  # type: ignore[union-attr]
    week_of = [local_week(n.shift.start) for _, n in shifts]  # type: ignore[union-attr]
    weeks = {w: i for i, w in enumerate(sorted(set(week_of)))}
    week = np.array([weeks[w] for w in week_of], dtype=np.int64)
    # candidates: shifts alike in time and skills share a vectorised pre-test
    alike: dict[tuple[int, int, tuple[Any, ...]], list[int]] = defaultdict(list)
    for s, (_, spec) in enumerate(shifts):
        alike[(int(start[s]), int(end[s]), tuple(sorted(spec.required_skills)))].append(s)
    pair_s: list[np.ndarray] = []
    pair_v: list[np.ndarray] = []
    for (s0, e0, req), members in alike.items():
        vols = np.unique(win_vol[(win_start <= s0) & (e0 <= win_end)])
        need_skills = np.array([index[r] for r in req], dtype=np.int64)
        vols = vols[has[vols][:, need_skills].all(axis=1)]
        for s in members:
            spec, fit = shifts[s][1], vols[limit[vols] >= minutes[s]]
            ok = np.fromiter((pledge_fits(spec, pledges[v]) for v in fit), bool, len(fit))
            pair_s.append(np.full(int(ok.sum()), s, dtype=np.int64))
            pair_v.append(fit[ok])
    ps = np.concatenate(pair_s) if pair_s else np.zeros(0, dtype=np.int64)
    pv = np.concatenate(pair_v) if pair_v else np.zeros(0, dtype=np.int64)
    order = np.lexsort((start[ps], pv))
    ps, pv = ps[order], pv[order]
    n_cols = len(ps)
    rows: list[np.ndarray] = []
    cols: list[np.ndarray] = []
    vals: list[np.ndarray] = []
    bound: list[np.ndarray] = []
    n_rows = 0

    def add(r: np.ndarray, c: np.ndarray, v: np.ndarray, b: np.ndarray) -> None:
        nonlocal n_rows
        rows.append(r + n_rows)
        cols.append(c)
        vals.append(v)
        bound.append(b)
        n_rows += len(b)

    # shift rows: only where the candidates outnumber the places wanted
    needed = np.array([n.volunteers_needed or 1 for _, n in shifts], dtype=np.int64)
    count = np.bincount(ps, minlength=len(shifts))
    busy = np.flatnonzero(count > needed)
    row_of = np.full(len(shifts), -1)
    row_of[busy] = np.arange(len(busy))
    keep = row_of[ps] >= 0
    add(
        row_of[ps][keep], np.flatnonzero(keep), np.ones(int(keep.sum())), needed[busy].astype(float)
    )
    # weekly limits: one row per volunteer and week, where the candidates could exceed it
    key = pv * len(weeks) + week[ps]
    uniq, inv = np.unique(key, return_inverse=True)
    total = np.bincount(inv, weights=minutes[ps])
    tight = total > limit[uniq // len(weeks)]
    row_of = np.full(len(uniq), -1)
    row_of[tight] = np.arange(int(tight.sum()))
    keep = row_of[inv] >= 0
    add(
        row_of[inv][keep],
        np.flatnonzero(keep),
        minutes[ps][keep].astype(float),
        limit[uniq // len(weeks)][tight].astype(float),
    )
    # no overlap: maximal cliques of each volunteer's candidate shifts, at start times
    bounds = np.flatnonzero(np.diff(pv)) + 1
    c_rows: list[np.ndarray] = []
    c_cols: list[np.ndarray] = []
    n_cliques = 0
    for lo, hi in zip(np.r_[0, bounds], np.r_[bounds, n_cols], strict=True):
        if hi - lo < 2:
            continue
        s_, e_ = start[ps[lo:hi]], end[ps[lo:hi]]
        at = np.unique(s_)
        running = (s_[None, :] <= at[:, None]) & (at[:, None] < e_[None, :])
        running = running[running.sum(axis=1) > 1]
        if not len(running):
            continue
        # drop a clique contained in another (keep the first of equal ones)
        inside = (running.astype(np.int32) @ (~running).T.astype(np.int32)) == 0
        k = len(running)
        dominated = (inside & ~np.eye(k, dtype=bool)) & (
            ~inside.T | (np.arange(k)[:, None] > np.arange(k)[None, :])
        )
        running = running[~dominated.any(axis=1)]
        r, c = np.nonzero(running)
        c_rows.append(r + n_cliques)
        c_cols.append(c + lo)
        n_cliques += len(running)
    if c_rows:
        r, c = np.concatenate(c_rows), np.concatenate(c_cols)
        add(r, c, np.ones(len(r)), np.ones(n_cliques))
    a = sparse.coo_array(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
        shape=(n_rows, n_cols),
    )
    weight = np.array([WEIGHT[n.urgency.value] for _, n in shifts], dtype=float)
    gain = (weight * minutes / 60)[ps]

    def fill(x: np.ndarray) -> dict[uuid.UUID, float]:
        got = np.bincount(ps, weights=x, minlength=len(shifts))
        return {nid: float(got[s]) for s, (nid, _) in enumerate(shifts)}

    shift_at = {nid: s for s, (nid, _) in enumerate(shifts)}
    vol_at = {vid: v for v, vid in enumerate(sc.volunteers)}
    pair = ps * len(pledges) + pv
    by_pair = np.argsort(pair)

    def column(p: MatchProposed) -> int | None:
        s, v = shift_at.get(p.need_id), vol_at.get(p.volunteer_id)  # type: ignore[arg-type]
        if s is None or v is None:
            return None
        k = int(np.searchsorted(pair, s * len(pledges) + v, sorter=by_pair))
        found = k < n_cols and pair[by_pair[k]] == s * len(pledges) + v
        return int(by_pair[k]) if found else None

    lp = Lp(
        "shifts LP",
        "volunteer",
        gain,
        a.tocsr(),
        np.concatenate(bound),
        np.ones(n_cols),
        fill,
        column,
        np.ones(n_cols),
        (ps, pv),
    )
    lp.build_seconds = time.perf_counter() - t
    return lp


def optimum(sc: Scenario) -> tuple[dict[uuid.UUID, float], dict[uuid.UUID, float], list[Lp]]:
    """The offline optimum as filled quantity per need (money exact, shifts an LP upper
    bound), urgency-weighted and count-based, and its two LPs. Money and shifts share no supply
    and no row, and the objective is a sum over the two kinds, so each is solved on its own;
    each LP is built once and solved for both objectives. The optimum knows every posting in
    advance, so it is the same whatever the arrival order."""
    weighted: dict[uuid.UUID, float] = {}
    counted: dict[uuid.UUID, float] = {}
    lps = [money_lp(sc), shift_lp(sc)]
    for lp in lps:
        weighted.update(lp.fill(solve_max(lp)))
        counted.update(lp.fill(solve_max(lp, lp.count)))
    return weighted, counted, lps


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


@dataclass(frozen=True)
class Treatment:
    """What a run decides with: the matcher's policy, and the reserve every foundation of the
    city opens its fund with (`FundOpened.urgent_reserve_percent`: the foundation's say, not
    the policy's)."""

    policy: Policy
    fund_reserve_percent: int = 0


NOW = Treatment(URGENT_RESERVES, URGENT_FUND_RESERVE_PERCENT)

POLICIES: dict[str, Treatment] = {
    "before": Treatment(DEFAULT_POLICY),
    "now": NOW,
    "money-only": replace(NOW, policy=replace(URGENT_RESERVES, urgent_hours_percent=0)),
    "reserve-50": replace(NOW, fund_reserve_percent=50),
    "reserve-90": replace(NOW, fund_reserve_percent=90),
    "hours-25": replace(NOW, policy=replace(URGENT_RESERVES, urgent_hours_percent=25)),
    "hours-75": replace(NOW, policy=replace(URGENT_RESERVES, urgent_hours_percent=75)),
}
"""The treatments a run can compare on the same city, by name: "before" is the exchange's
policy with no fund holding anything back (every foundation left its reserve at 0 %), "now"
the measured reserves (`URGENT_RESERVES`, with every fund opened holding back 75 %); the others
change one reserve of "now"."""


def with_fund_reserve(sc: Scenario, percent: int) -> Scenario:
    """The same city with every fund opened holding back `percent` for urgent needs (the same
    events and ids: only the opening's reserve differs)."""
    if not percent:
        return sc
    events = [
        e.model_copy(
            update={"payload": e.payload.model_copy(update={"urgent_reserve_percent": percent})}
        )
        if isinstance(e.payload, FundOpened)
        else e
        for e in sc.events
    ]
    return replace(sc, events=events)


def waits(sc: Scenario, online: Online) -> str:
    """Logged time from a need's posting to its first proposal, over the needs served: the share
    proposed at once (in the input that posted them), and the median and 90th percentile in
    hours, for low and normal needs and for high and critical ones."""
    parts = []
    for label, urgent in (("low/normal", False), ("high/critical", True)):
        hours = sorted(
            w.total_seconds() / 3600
            for nid, w in online.waited.items()
            if (sc.money_needs.get(nid) or sc.shift_needs[nid]).urgency.value
            in (("high", "critical") if urgent else ("low", "normal"))
        )
        if not hours:
            continue
        at_once = sum(1 for h in hours if h == 0) / len(hours)
        p50, p90 = hours[len(hours) // 2], hours[int(len(hours) * 0.9)]
        parts.append(f"{label} {at_once:.1%} at once, p50 {p50:.1f} h, p90 {p90:.1f} h")
    return "; ".join(parts)


def score(
    sc: Scenario,
    online: Online,
    weighted: dict[str, float],
    counted: dict[str, float],
) -> str:
    """One run's figures against the optimum: count-based and urgency-weighted, per kind."""
    filled: dict[uuid.UUID, float] = defaultdict(float)
    for p in online.live:
        filled[p.need_id] += quantity(p)
    w, c = served(sc, filled), served(sc, filled, weighted=False)
    lo, hi, jain = fairness(sc, filled)
    return (
        f"  count-based: person-shifts {c['shifts'] / counted['shifts']:.1%}, "
        f"yuan {c['money'] / counted['money']:.1%}, all {c['all'] / counted['all']:.1%}\n"
        f"  urgency-weighted: shifts {w['shifts'] / weighted['shifts']:.1%}, "
        f"money {w['money'] / weighted['money']:.1%}, all {w['all'] / weighted['all']:.1%} "
        f"(online {w['shifts']:.1%} / {w['money']:.1%} of what was wanted)\n"
        f"  fairness: Jain's index {jain:.3f}, lowest community {lo:.1%}, highest {hi:.1%}\n"
        f"  wait for a first proposal: {waits(sc, online)}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--needs", type=int, default=4000)
    parser.add_argument("--volunteers", type=int, default=2000)
    parser.add_argument("--funds", type=int, default=120)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--orders", default=",".join(ORDERS), help=f"comma-separated, of {', '.join(ORDERS)}"
    )
    parser.add_argument(
        "--policies", default="before,now", help=f"comma-separated, of {', '.join(POLICIES)}"
    )
    parser.add_argument(
        "--memory", action="store_true", help="trace the matcher's memory (a second pass)"
    )
    args = parser.parse_args()
    t = time.perf_counter()
    city = generate(args.needs, args.volunteers, args.funds, args.seed)
    print(
        f"scenario: {len(city.events)} events ({len(city.money_needs)} money needs, "
        f"{len(city.shift_needs)} shift needs, {len(city.volunteers)} volunteers, "
        f"{len(city.funds)} funds), generated in {time.perf_counter() - t:.1f} s"
    )
    t = time.perf_counter()
    best, most, lps = optimum(city)
    lp_seconds = time.perf_counter() - t
    weighted, counted = served(city, best), served(city, most, weighted=False)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"optimum: {lp_seconds:.1f} s in all (HiGHS "
        f"{sum(lp.solve_seconds for lp in lps):.1f} s); process max RSS {rss:.0f} MiB\n"
        f"  urgency-weighted: shifts <= {weighted['shifts']:.1%}, money {weighted['money']:.1%} "
        f"of what was wanted; count-based: person-shifts <= {counted['shifts']:.1%}, "
        f"yuan {counted['money']:.1%}"
    )
    for lp in lps:
        print(f"  {lp.line()}")
    for order in args.orders.split(","):
        sc = in_order(city, order)
        for name in args.policies.split(","):
            run = POLICIES[name]
            opened = with_fund_reserve(sc, run.fund_reserve_percent)
            online, rate, peak = run_matcher(opened, run.policy, args.memory)
            memory = f"; peak traced memory {peak / 2**20:.0f} MiB" if args.memory else ""
            print(f"{order}, policy {name}: {rate:,.0f} inputs/s (pure, one core){memory}")
            checks = [lp.excess(online.live) for lp in lps]
            if not all(over <= 1e-9 and not missing for over, missing in checks):
                print(
                    "  WARNING: the matcher's proposals break the LPs (largest relative excess, "
                    f"proposals without a column: {checks}); the optimum printed is not a bound"
                )
            print(score(sc, online, weighted, counted))


if __name__ == "__main__":
    main()
