"""What knowing the future is worth on a city's shifts: the best assignment decided in rounds.

bench/quality.py measures the matcher against the offline optimum, which knows every posting
in advance. On a sparse city (1,000 needs, about 5 candidate volunteers per shift) the matcher
stays below 95 % of it in every arrival order (issue #17). This bench asks how much of that gap
is the matcher's choices and how much is not knowing what arrives next:

- **rounds of R postings**: the postings are read in arrival order, R at a time; at the end of
  each round the exact best assignment (HiGHS, integer) of every volunteer–shift pair whose two
  sides have both arrived is chosen, keeping every pair chosen in earlier rounds (a proposal
  is accepted at once in these runs, as in quality.py, so nothing chosen is taken back). A pair
  left out may still be chosen in a later round, as the matcher serves an open shift when a
  volunteer arrives later.
- R = 1 is "decide each posting as it arrives, but exactly": the best any policy that looks at
  the present alone can do (it holds nothing back for what might come). R = every posting is the
  offline optimum.

The same city, seed and constraints as quality.py's shifts LP (its columns and rows, solved as
an integer programme); the matcher's own figure on the same city is printed beside, so the
ratio of each to the optimum is read off the same run.

    .venv/bin/python bench/rounds.py --needs 1000 --volunteers 500 --funds 40
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, milp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from quality import ORDERS, Lp, in_order, quantity, run_matcher, shift_lp  # noqa: E402

from schemas.messages import NeedPosted, PledgeMade  # noqa: E402
from services.demo.city import Scenario, generate  # noqa: E402
from services.domain.matching import DEFAULT_POLICY  # noqa: E402


def best(lp: Lp, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """The integer optimum of the shifts LP (urgency-weighted) with columns bounded by
    `low` and `high` (0 or 1 each)."""
    res = milp(
        -lp.gain,
        constraints=LinearConstraint(lp.a, -np.inf, lp.b),
        bounds=Bounds(low, high),
        integrality=np.ones(len(lp.gain)),
    )
    if res.x is None:
        raise RuntimeError(f"HiGHS found no solution: {res.message}")
    return np.round(res.x)


def arrivals(sc: Scenario, lp: Lp) -> np.ndarray:
    """For each column of the LP, the position in the posting order of the later of its two
    sides (the shift's need and the volunteer's pledge)."""
    assert lp.pairs is not None
    shift_at = {nid: s for s, nid in enumerate(sc.shift_needs)}
    vol_at = {vid: v for v, vid in enumerate(sc.volunteers)}
    seen_s = np.zeros(len(shift_at), dtype=np.int64)
    seen_v = np.zeros(len(vol_at), dtype=np.int64)
    for i, e in enumerate(sc.events):
        p = e.payload
        if isinstance(p, NeedPosted) and p.need_id in shift_at:
            seen_s[shift_at[p.need_id]] = i
        elif isinstance(p, PledgeMade):
            seen_v[vol_at[p.volunteer_id]] = i
    ps, pv = lp.pairs
    return np.maximum(seen_s[ps], seen_v[pv])


def in_rounds(lp: Lp, arrived: np.ndarray, size: int) -> float:
    """The weighted value of deciding in rounds of `size` postings, earlier choices kept."""
    chosen = np.zeros(len(lp.gain))
    last = int(arrived.max()) + 1
    known = 0
    for end in range(size, last + size, size):
        now = arrived < end
        if int(now.sum()) == known:
            continue  # nothing new to decide on
        known = int(now.sum())
        chosen = best(lp, chosen, now.astype(float))
    return float(lp.gain @ chosen)


def matcher_value(sc: Scenario, lp: Lp) -> float:
    """The weighted value of the matcher's own standing shift proposals on the same city."""
    online, _, _ = run_matcher(sc, DEFAULT_POLICY)
    x = np.zeros(len(lp.gain))
    for p in online.live:
        if p.volunteer_id is None:
            continue
        j = lp.column(p)
        if j is not None:
            x[j] += quantity(p)
    return float(lp.gain @ x)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--needs", type=int, default=1000)
    ap.add_argument("--volunteers", type=int, default=500)
    ap.add_argument("--funds", type=int, default=40)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--orders", default=",".join(ORDERS))
    ap.add_argument(
        "--rounds",
        default="0.001,0.01,0.05,0.1,0.25",
        help="round sizes as shares of all postings (a share giving under 1 posting is 1)",
    )
    args = ap.parse_args()
    city = generate(args.needs, args.volunteers, args.funds, args.seed)
    lp = shift_lp(city)
    t = time.perf_counter()
    everything = best(lp, np.zeros(len(lp.gain)), np.ones(len(lp.gain)))
    optimum = float(lp.gain @ everything)
    print(
        f"{len(city.events)} postings, {len(city.shift_needs)} shifts, {len(lp.gain):,} "
        f"volunteer-shift pairs ({len(lp.gain) / len(city.shift_needs):.1f} per shift); "
        f"offline integer optimum {optimum:,.0f} (weighted hours) in "
        f"{time.perf_counter() - t:.1f} s"
    )
    shares = [float(s) for s in args.rounds.split(",")]
    table: dict[str, list[str]] = defaultdict(list)
    for order in args.orders.split(","):
        sc = in_order(city, order)
        arrived = arrivals(sc, lp)
        table[order].append(f"matcher {matcher_value(sc, lp) / optimum:.1%}")
        for share in shares:
            size = max(1, round(share * len(sc.events)))
            t = time.perf_counter()
            value = in_rounds(lp, arrived, size)
            table[order].append(
                f"rounds of {size} ({share:.1%}) {value / optimum:.1%} "
                f"[{time.perf_counter() - t:.0f} s]"
            )
        print(f"{order}: " + "; ".join(table[order]), flush=True)


if __name__ == "__main__":
    main()
