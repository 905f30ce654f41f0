"""How long `exchange up` takes to be healthy, against the two servers starting alone.

Issue #18's goal: `exchange up` healthy in under 10 s on a quiet machine, after the first
install. This bench starts the exchange on one scratch var dir `--runs` times (the first run
also creates the database cluster; later runs start it as an operator's restart does, the
broker restored from PostgreSQL), timing each from the command to the first green /healthz
(polled every 50 ms). The baseline, in the same run: the embedded PostgreSQL (on an existing
cluster) and the broker started alone, to accepting connections.

    .venv/bin/python bench/startup.py --runs 4
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from services.embedded.broker import EmbeddedBroker  # noqa: E402
from services.embedded.postgres import EmbeddedPostgres  # noqa: E402
from tests.e2e.harness import Exchange  # noqa: E402


def healthy_after(var_dir: Path) -> float:
    """Seconds from `exchange up` to a 200 from /healthz; the exchange is stopped after."""
    started = time.perf_counter()
    ex = Exchange(var_dir).start()
    try:
        deadline = started + 240
        while time.perf_counter() < deadline:
            try:
                if httpx.get(f"{ex.url}/healthz", timeout=2).status_code == 200:
                    return time.perf_counter() - started
            except httpx.HTTPError:
                pass
            time.sleep(0.05)  # the poll's own interval bounds the error of the figure
        raise SystemExit(f"not healthy within 240 s:\n{ex.diagnostics()}")
    finally:
        ex.stop()


def servers_alone(scratch: Path) -> tuple[float, float]:
    """Seconds to start the embedded PostgreSQL (an existing cluster) and the broker alone."""
    EmbeddedPostgres.start(scratch / "pgdata").stop()  # create the cluster first
    t = time.perf_counter()
    pg = EmbeddedPostgres.start(scratch / "pgdata")
    pg_seconds = time.perf_counter() - t
    pg.stop()
    t = time.perf_counter()
    broker = EmbeddedBroker.start(scratch / "broker.log")
    broker_seconds = time.perf_counter() - t
    broker.stop()
    return pg_seconds, broker_seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=4)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as tmp:
        pg_s, broker_s = servers_alone(Path(tmp) / "alone")
        times = []
        for i in range(args.runs):
            took = healthy_after(Path(tmp) / "var")
            times.append(took)
            kind = "first (creates the database)" if i == 0 else "restart"
            print(f"exchange up, run {i + 1} ({kind}): healthy after {took:.1f} s", flush=True)
    print(f"baseline: PostgreSQL alone {pg_s:.1f} s, the broker alone {broker_s:.1f} s")
    later = times[1:] or times
    median = statistics.median(later)
    print(
        f"restarts: median {median:.1f} s, worst {max(later):.1f} s (goal < 10 s: "
        f"{'met' if median < 10 else 'NOT met'}); {median / (pg_s + broker_s):.1f}x the two "
        "servers alone"
    )


if __name__ == "__main__":
    main()
