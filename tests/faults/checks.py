"""What the fault suite holds the exchange to after every fault.

- Every posting it acknowledged is archived once and decided once (accepted or refused), within
  a bound, and so is every posting it merely committed (a client that timed out is owed the
  same).
- The auditor's tools agree: `audit verify`, `invariants`, `sequences` and `replay` all pass.
- `/healthz` was never green while an acknowledged posting had been undecided for longer than
  the exchange's stated bound (watched by `HealthWatch` during the whole fault).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx

from schemas.envelope import derive_id
from schemas.topics import MATCHER_INPUTS, partitions_of
from services.platform.kafka import read_from
from tests.e2e.harness import Exchange, wait_for
from tests.faults.load import MixedLoad

DECISION_BOUND = 30.0
"""The bound /healthz states for "every 202 is decided" (EXCHANGE_DECISION_LAG_SECONDS)."""
WATCH_SLACK = 10.0
"""Leeway for the watcher's own view: it reads the database a moment after /healthz answered."""


async def _undecided(dsn: str, ids: list[uuid.UUID]) -> list[uuid.UUID]:
    """The postings among `ids` with no decision archived and no refusal recorded."""
    conn = await asyncpg.connect(dsn)
    try:
        decisions = [derive_id(i, "decided") for i in ids]
        done = {
            r["event_id"]
            for r in await conn.fetch(
                "SELECT event_id FROM projected_events WHERE event_id = ANY($1::uuid[])",
                decisions,
            )
        }
        refused = {
            r["posting_id"]
            for r in await conn.fetch(
                "SELECT posting_id FROM rm_refusals WHERE posting_id = ANY($1::uuid[])", ids
            )
        }
        return [
            i for i, d in zip(ids, decisions, strict=True) if d not in done and i not in refused
        ]
    finally:
        await conn.close()


class HealthWatch:
    """Polls /healthz through a fault; whenever it is green, checks that no acknowledged
    posting has been undecided longer than the stated bound. A green light over a lost or
    stuck decision is the failure the operator cannot see, so the suite looks for it."""

    def __init__(self, ex: Exchange, load: MixedLoad) -> None:
        self.ex = ex
        self.load = load
        self.violations: list[str] = []
        self.green = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="health-watch", daemon=True)

    def __enter__(self) -> HealthWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            try:
                state = self.ex.state
                r = httpx.get(f"{state['http_url']}/healthz", timeout=3)
            except (httpx.HTTPError, OSError, ValueError, KeyError):
                continue
            if r.status_code != 200:
                continue
            self.green += 1
            old = [
                a.posting_id
                for a in list(self.load.acked)
                if time.monotonic() - a.at > DECISION_BOUND + WATCH_SLACK
            ]
            if not old:
                continue
            try:
                stuck = asyncio.run(_undecided(state["database_url"], old))
            except (OSError, asyncpg.PostgresError):
                continue
            if stuck:
                self.violations.append(
                    f"/healthz green while {len(stuck)} acknowledged postings were undecided "
                    f"for over {DECISION_BOUND:.0f}s (e.g. {stuck[0]})"
                )


@dataclass
class Verdict:
    """What one fault did: how long until healthy again, and every broken promise."""

    fault: str
    healthy_after: float
    acknowledged: int
    problems: list[str] = field(default_factory=list)


def audit_battery(
    ex: Exchange, commands: list[list[str]], timeout: float = 600
) -> list[dict[str, object]]:
    """Run `exchange audit` commands against the running exchange in one interpreter
    (tests/faults/audit_battery.py), as an auditor would; one result per command."""
    env = {**os.environ, "EXCHANGE_VAR_DIR": str(ex.var_dir)}
    env.pop("DATABASE_URL", None)
    env.pop("KAFKA_BOOTSTRAP_SERVERS", None)
    done = subprocess.run(
        [sys.executable, "-m", "tests.faults.audit_battery", json.dumps(commands)],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    results = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    if len(results) != len(commands):
        return [{"args": ["battery"], "returncode": done.returncode or 98,
                 "stdout": done.stdout[-2000:], "stderr": done.stderr[-2000:]}]  # fmt: skip
    return results


async def _facts(dsn: str, ids: list[uuid.UUID]) -> dict[str, Any]:
    conn = await asyncpg.connect(dsn)
    try:
        return {
            "stored": await conn.fetchval(
                "SELECT count(*) FROM postings WHERE posting_id = ANY($1::uuid[])", ids
            ),
            "archived": await conn.fetchval(
                "SELECT count(DISTINCT event_id) FROM archive WHERE event_id = ANY($1::uuid[])",
                ids,
            ),
            "twice_refused": await conn.fetchval(
                "SELECT count(*) FROM (SELECT posting_id FROM rm_refusals"
                " WHERE posting_id = ANY($1::uuid[]) GROUP BY 1 HAVING count(*) > 1) t",
                ids,
            ),
            "committed_undecided": [
                r["posting_id"]
                for r in await conn.fetch(
                    "SELECT posting_id FROM postings WHERE decided_at IS NULL"
                )
            ],
        }
    finally:
        await conn.close()


def _matcher_inputs_ends(bootstrap: str) -> dict[int, int]:
    """Per partition of matcher.inputs, one past its last offset, read to the end (the
    embedded broker reports end offsets short, so they are not asked for)."""
    starts = {(MATCHER_INPUTS.name, p): 0 for p in range(partitions_of(MATCHER_INPUTS.name))}
    ends: dict[int, int] = {}
    for record in read_from(bootstrap, starts):
        ends[record.partition] = max(ends.get(record.partition, 0), record.offset + 1)
    return ends


async def _matcher_positions(dsn: str, fresh: float) -> dict[int, int]:
    """The next input each partition's ready matcher worker will decide, from the heartbeats
    written in the last `fresh` seconds."""
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT details FROM service_heartbeats WHERE service ~ '^matcher-[0-9]+$' AND ready"
            " AND beat_at > now() - make_interval(secs => $1)",
            fresh,
        )
    finally:
        await conn.close()
    positions: dict[int, int] = {}
    for row in rows:
        details = row["details"]
        details = json.loads(details) if isinstance(details, str) else details or {}
        for p, offset in details.get("positions", {}).items():
            positions[int(p)] = max(positions.get(int(p), 0), int(offset))
    return positions


def matcher_behind(ex: Exchange) -> dict[int, tuple[int, int]]:
    """Partitions whose inputs the matcher has not all decided: {partition: (at, end)}."""
    ends = _matcher_inputs_ends(ex.state["kafka_bootstrap_servers"])
    at = asyncio.run(_matcher_positions(ex.state["database_url"], fresh=5.0))
    return {p: (at.get(p, 0), end) for p, end in ends.items() if at.get(p, 0) < end}


def settle_and_check(
    ex: Exchange, load: MixedLoad, fault: str, fault_ended: float, within: float = 180
) -> Verdict:
    """After a fault: wait for health, then for every acknowledged posting to be decided, and
    hold the exchange to each promise. Returns the verdict; the caller asserts on it."""
    load.stop()
    ex.wait_healthy(timeout=within)
    verdict = Verdict(fault, time.monotonic() - fault_ended, len(load.acked))
    dsn = ex.state["database_url"]
    ids = [a.posting_id for a in load.acked]
    try:
        wait_for(
            "every acknowledged posting to be decided",
            lambda: not asyncio.run(_undecided(dsn, ids)),
            timeout=within,
            interval=0.25,
        )
    except AssertionError:
        stuck = asyncio.run(_undecided(dsn, ids))
        kinds = sorted({a.kind for a in load.acked if a.posting_id in set(stuck)})
        verdict.problems.append(f"{len(stuck)} acknowledged postings never decided ({kinds})")
    # what was committed without the client hearing back is owed a decision too
    with contextlib.suppress(AssertionError):
        wait_for(
            "every committed posting to be decided",
            lambda: not asyncio.run(_facts(dsn, ids))["committed_undecided"],
            timeout=DECISION_BOUND,
            interval=0.25,
        )
    got = asyncio.run(_facts(dsn, ids))
    if got["stored"] != len(set(ids)):
        verdict.problems.append(f"{len(set(ids)) - got['stored']} acknowledged postings lost")
    if len(ids) != len(set(ids)):
        verdict.problems.append("one posting acknowledged twice under two ids")
    if got["archived"] != len(set(ids)):
        verdict.problems.append(f"{len(set(ids)) - got['archived']} postings never archived")
    if got["twice_refused"]:
        verdict.problems.append(f"{got['twice_refused']} postings refused twice")
    if got["committed_undecided"]:
        verdict.problems.append(
            f"{len(got['committed_undecided'])} committed postings undecided: "
            + "; ".join(got["committed_undecided"][:3])
        )
    # the matcher decides after the intakes: its replay is compared only once it caught up
    try:
        wait_for(
            "the matcher to decide every input",
            lambda: not matcher_behind(ex),
            timeout=within,
            interval=0.5,
        )
    except AssertionError:
        verdict.problems.append(
            f"the matcher never caught up (partition: (position, end)): {matcher_behind(ex)}"
        )
    # the key is published once by the operator and the auditor pins it; replay runs right
    # after verify and compares the derived tables itself, so verify skips that fold
    commands = [["key"], ["verify", "--no-derived"], ["invariants"], ["sequences"], ["replay"]]
    for result in audit_battery(ex, commands):
        if result["returncode"] != 0:
            text = str(result["stdout"]) + str(result["stderr"])
            tail = text.strip().splitlines()[-8:]
            args = result["args"]
            assert isinstance(args, list)
            verdict.problems.append(
                f"audit {args[0]} exited {result['returncode']}: " + " | ".join(tail)
            )
    return verdict
