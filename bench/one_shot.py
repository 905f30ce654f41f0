"""How long an operator's one-shot command takes, against what Python itself costs.

Starts an embedded PostgreSQL in a scratch directory, applies the migrations once, then runs each
command `--runs` times as a fresh process (as an operator would type it) and prints the median
and worst wall time next to two baselines measured in the same run: the bare interpreter
(`python -c pass`) and the raw client (a process that imports asyncpg, connects and runs one
query). The goal (issue #16, #18): `exchange orgs create` under 0.3 s on a quiet machine.

    python bench/one_shot.py --runs 15
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from services.embedded.postgres import EmbeddedPostgres

EXCHANGE = str(Path(sys.executable).with_name("exchange"))
RAW_CLIENT = (
    "import asyncio, asyncpg, sys\n"
    "async def main():\n"
    "    conn = await asyncpg.connect(sys.argv[1])\n"
    "    await conn.fetchval('SELECT 1')\n"
    "    await conn.close()\n"
    "asyncio.run(main())\n"
)


def timed(argv: list[str], env: dict[str, str]) -> float:
    """Wall seconds of one process run; a failure stops the bench with its output."""
    started = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{argv} failed ({done.returncode}): {done.stderr or done.stdout}")
    return elapsed


def series(name: str, make: object, runs: int, env: dict[str, str]) -> list[float]:
    """`runs` timings of the command `make()` builds (a new argv each run: unique names)."""
    assert callable(make)
    times = [timed(make(), env) for _ in range(runs)]
    print(
        f"{name:32} median {statistics.median(times) * 1000:7.1f} ms"
        f"   worst {max(times) * 1000:7.1f} ms",
        flush=True,
    )
    return times


def main() -> None:
    """Run the series and print the ratios to the baselines."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=15)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="one-shot-") as scratch:
        pg = EmbeddedPostgres.start(Path(scratch) / "pgdata")
        try:
            env = dict(os.environ, DATABASE_URL=pg.url, EXCHANGE_VAR_DIR=scratch)
            timed([EXCHANGE, "db", "migrate"], env)
            python = series(
                "python -c pass", lambda: [sys.executable, "-c", "pass"], args.runs, env
            )
            raw = series(
                "raw client (asyncpg, SELECT 1)",
                lambda: [sys.executable, "-c", RAW_CLIENT, pg.url],
                args.runs,
                env,
            )
            create = series(
                "exchange orgs create",
                lambda: [
                    EXCHANGE,
                    "orgs",
                    "create",
                    "--kind",
                    "community",
                    "--district",
                    "鼓楼区",
                    "--name",
                    f"社区 {uuid.uuid4().hex[:8]}",
                ],
                args.runs,
                env,
            )
            listed = series(
                "exchange orgs list", lambda: [EXCHANGE, "orgs", "list"], args.runs, env
            )
        finally:
            pg.stop()
    goal = 0.3
    median = statistics.median(create)
    print(
        f"\norgs create median {median * 1000:.0f} ms (goal < {goal * 1000:.0f} ms: "
        f"{'met' if median < goal else 'NOT met'}); "
        f"{median / statistics.median(raw):.1f}x the raw client, "
        f"{median / statistics.median(python):.1f}x the bare interpreter; "
        f"orgs list {statistics.median(listed) * 1000:.0f} ms"
    )


if __name__ == "__main__":
    main()
