"""What an exchange with nothing to do costs, and how fast it answers when work comes back.

Issue #18's goal: an idle exchange under 5 % of one core in total over a minute, and the first
posting after the quiet still proposed within the latency goal (p99 100 ms). This bench:

1. **baseline**: starts the embedded broker (Tansu) and PostgreSQL alone, with no client, and
   measures their CPU over `--seconds`: what the two servers cost by themselves;
2. starts the whole exchange on the embedded default (`exchange up`, a scratch var dir), waits
   until it is healthy, registers a foundation with a funded fund and a community, posts one
   need (so every consumer has worked once), lets it settle for `--settle` seconds, then
   measures every process's CPU over `--seconds` of nothing to do: the figure of the goal;
3. posts `--wake` money needs one at a time, each after `--gap` seconds of quiet, and times
   each from the gateway's 202 to its proposal on matches.events (read by a plain consumer,
   as bench/latency.py does): the first postings after an idle spell.

    .venv/bin/python bench/idle.py                 # a minute idle, five wake-ups
    .venv/bin/python bench/idle.py --seconds 20 --wake 3 --gap 5      # quick
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from latency import CpuMeter, header, watch  # noqa: E402

from services.embedded.broker import EmbeddedBroker  # noqa: E402
from services.embedded.postgres import EmbeddedPostgres  # noqa: E402
from tests import factories as f  # noqa: E402
from tests.e2e.harness import Exchange  # noqa: E402


def cpu_of(procs: dict[str, list[psutil.Process]]) -> dict[str, float]:
    """CPU seconds so far of each named group of processes (those that exited: not counted)."""
    out = {}
    for name, group in procs.items():
        total = 0.0
        for p in group:
            try:
                t = p.cpu_times()
                total += t.user + t.system
            except psutil.Error:
                pass
        out[name] = total
    return out


def baseline(seconds: float, scratch: Path) -> dict[str, float]:
    """Share of one core used by the bare broker and the bare PostgreSQL over `seconds`."""
    broker = EmbeddedBroker.start(scratch / "broker.log")
    pg = EmbeddedPostgres.start(scratch / "pgdata")
    try:
        assert pg.pid is not None
        server = psutil.Process(pg.pid)
        procs = {
            "broker": [psutil.Process(broker.process.pid)],
            "postgresql": [server, *server.children(recursive=True)],
        }
        time.sleep(2)  # start-up work is not idling
        before = cpu_of(procs)
        time.sleep(seconds)  # the measurement is of doing nothing for this long
        after = cpu_of(procs)
    finally:
        pg.stop()
        broker.stop()
    return {k: (after[k] - before[k]) / seconds for k in after}


async def wake_ups(ex: Exchange, community: str, count: int, gap: float) -> list[float]:
    """Seconds from 202 to proposal of `count` needs, each posted after `gap` s of quiet."""
    bootstrap = ex.state["kafka_bootstrap_servers"]
    proposed: dict[str, float] = {}

    def proposal(r: Any) -> str | None:
        return r.key.decode() if r.key and header(r, "event_type") == "MatchProposed" else None

    stop = asyncio.Event()
    watcher = asyncio.create_task(watch(bootstrap, {"matches.events": (proposed, proposal)}, stop))
    waits = []
    async with httpx.AsyncClient(base_url=ex.url, timeout=30) as http:
        headers = {"Authorization": f"Bearer {community}"}
        for _ in range(count):
            await asyncio.sleep(gap)  # the quiet before the posting is what is measured
            r = await http.post("/v1/needs", json=f.money_need(100), headers=headers)
            accepted = time.perf_counter()
            assert r.status_code == 202, r.text
            need = r.json()["need_id"]
            deadline = accepted + 30
            while need not in proposed and time.perf_counter() < deadline:  # noqa: ASYNC110 (a deadline-bounded poll of a dict the watcher fills)
                await asyncio.sleep(0.002)
            waits.append(proposed.get(need, float("inf")) - accepted)
    stop.set()
    await watcher
    return waits


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60, help="length of the idle measurement")
    ap.add_argument("--settle", type=float, default=15, help="quiet before it is measured")
    ap.add_argument("--wake", type=int, default=5, help="postings after a quiet spell")
    ap.add_argument("--gap", type=float, default=20, help="quiet before each of them (s)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-idle-") as tmp:
        base = baseline(args.seconds, Path(tmp) / "baseline")
        ex = Exchange(Path(tmp) / "var").start()
        try:
            ex.wait_healthy()
            community = ex.funded_community("空闲基准基金会", "空闲基准社区")
            first = asyncio.run(wake_ups(ex, community, 1, 2))  # every consumer has worked once
            time.sleep(args.settle)  # start-up and that posting's work are not idling
            meter = CpuMeter(ex.state)
            load = os.getloadavg()[0]
            meter.begin()
            time.sleep(args.seconds)  # the measurement is of doing nothing for this long
            used = meter.end()
            waits = asyncio.run(wake_ups(ex, community, args.wake, args.gap))
        finally:
            ex.stop()
    print(f"baseline, the two servers alone over {args.seconds:.0f} s (share of one core):")
    for name, share in base.items():
        print(f"  {name:34}{share:6.1%}")
    print(
        f"idle exchange over {args.seconds:.0f} s after {args.settle:.0f} s of quiet "
        f"(load average {load:.1f}; the machine has {psutil.cpu_count()} cores):"
    )
    total = 0.0
    for name, seconds in sorted(used.items(), key=lambda kv: -kv[1]):
        if name.startswith("load generator"):
            continue
        total += seconds
        print(f"  {name:34}{seconds / args.seconds:6.1%}")
    print(f"  {'the exchange, all processes':34}{total / args.seconds:6.1%}")
    servers = sum(base.values())
    print(
        f"idle: {total / args.seconds:.1%} of one core (goal < 5 %: "
        f"{'met' if total / args.seconds < 0.05 else 'NOT met'}); the bare servers "
        f"{servers:.1%}, so the exchange's own polling and timers cost "
        f"{total / args.seconds - servers:.1%}"
    )
    ms = ", ".join(f"{w * 1000:.0f}" for w in waits)
    print(
        f"first posting after start-up: {first[0] * 1000:.0f} ms; after {args.gap:.0f} s of "
        f"quiet each: {ms} ms (202 -> proposal; goal p99 <= 100 ms)"
    )


if __name__ == "__main__":
    main()
