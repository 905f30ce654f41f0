"""Two matcher workers share matcher.inputs under load; one is SIGKILLed mid-stream and a third
joins later. Whatever the timing, the topics hold exactly what a replay of each partition's
logged input decides (nothing lost, nothing extra, same bytes), and every invariant holds."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path

import asyncpg
import pytest

from schemas.codec import decode, encode
from schemas.messages import (
    MatchDeclined,
    MatchExpired,
    MatchProposed,
    MatchWithdrawn,
    NoShowRecorded,
)
from schemas.topics import MATCHER_INPUTS, MATCHES_EVENTS
from services.demo.city import Scenario, generate
from services.domain.needs import need_quantity
from services.embedded.broker import EmbeddedBroker
from services.matcher.processor import PartitionMatcher
from services.platform.kafka import Record, ensure_topics, headers_for, producer, read_all

pytestmark = pytest.mark.integration

TOPIC_OF = {
    "NeedPosted": ("needs.events", "need_id"),
    "FundOpened": ("funds.events", "fund_id"),
    "DonationReceived": ("funds.events", "fund_id"),
    "PledgeMade": ("volunteers.events", "volunteer_id"),
}


class Services:
    """Service processes started as production starts them, killed at the end."""

    def __init__(self, broker: EmbeddedBroker, database_url: str, tmp: Path) -> None:
        self.env = {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap,
            "DATABASE_URL": database_url,
            "EXCHANGE_VAR_DIR": str(tmp),
            "EXCHANGE_TICK_SECONDS": "0",
            "EXCHANGE_SNAPSHOT_EVENTS": "150",
            "PYTHONUNBUFFERED": "1",
        }
        self.tmp = tmp
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str) -> None:
        log = open(self.tmp / f"{name}.log", "ab")  # noqa: SIM115 (closed with the process)
        self.procs[name] = subprocess.Popen(
            [sys.executable, "-m", "services.cli", "services", "run", name],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def kill(self, name: str) -> None:
        proc = self.procs.pop(name)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()

    def logs(self) -> str:
        return "\n".join(
            f"--- {p.name}\n" + "\n".join(p.read_text(errors="replace").splitlines()[-20:])
            for p in sorted(self.tmp.glob("*.log"))
        )

    def stop(self) -> None:
        for name in list(self.procs):
            self.kill(name)


@pytest.fixture
def services(broker: EmbeddedBroker, database_url: str, tmp_path: Path) -> Iterator[Services]:
    s = Services(broker, database_url, tmp_path)
    yield s
    s.stop()


def publish(bootstrap: str, sc: Scenario, events: slice) -> None:
    w = producer(bootstrap)
    for e in sc.events[events]:
        topic, field = TOPIC_OF[e.event_type]
        key = str(getattr(e.payload, field)).encode()
        w.send(topic, key=key, value=encode(e), headers=headers_for(e.event_id, e.event_type))
    w.flush()
    w.close()


def first_copies(bootstrap: str, topics: list[str]) -> dict[uuid.UUID, Record]:
    seen: dict[uuid.UUID, Record] = {}
    for r in read_all(bootstrap, topics):
        if r.event_id is not None:
            seen.setdefault(r.event_id, r)
    return seen


def replay_all(bootstrap: str) -> tuple[dict[uuid.UUID, bytes], int]:
    """What each partition's logged input decides, replayed from scratch, by event id."""
    logs: dict[int, list[Record]] = defaultdict(list)
    for r in read_all(bootstrap, [MATCHER_INPUTS.name]):
        logs[r.partition].append(r)
    expected: dict[uuid.UUID, bytes] = {}
    inputs = 0
    for partition, records in logs.items():
        proc = PartitionMatcher(partition)
        for r in records:
            inputs += 1
            for out in proc.handle(r):
                expected[out.event_id] = out.value
    return expected, inputs


def wait_for(
    condition: Callable[[], bool],
    timeout: float,
    why: str,
    diag: Services,
    progress: dict[str, object] | None = None,
) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting: {why} {progress}\n{diag.logs()}")
        time.sleep(0.5)


async def snapshot_offsets(database_url: str) -> dict[int, int]:
    """Where each partition's snapshot resumes (for diagnostics)."""
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch("SELECT kafka_partition, next_offset FROM matcher_snapshots")
        return {r["kafka_partition"]: r["next_offset"] for r in rows}
    finally:
        await conn.close()


def test_two_workers_and_a_sigkill_decide_exactly_what_the_log_replays_to(
    broker: EmbeddedBroker, database_url: str, services: Services
) -> None:
    ensure_topics(broker.bootstrap)
    sc = generate(needs=500, volunteers=250, funds=16, seed=21)
    services.start("matcher-router")
    services.start("matcher-1")
    services.start("matcher-2")
    half = len(sc.events) // 2
    publish(broker.bootstrap, sc, slice(0, half))

    def decided_some() -> bool:
        return len(first_copies(broker.bootstrap, [MATCHES_EVENTS.name])) >= 40

    wait_for(decided_some, 120, "the first decisions", services)
    services.kill("matcher-1")  # SIGKILL mid-stream: no snapshot, no goodbye
    publish(broker.bootstrap, sc, slice(half, None))
    services.start("matcher-3")  # joins later: rebuilds whatever it is given

    opened: set[uuid.UUID] = set()
    produced = set()
    for e in sc.events:  # money for a fund not opened yet has nowhere to go (intake refuses it)
        fund_id = getattr(e.payload, "fund_id", None)
        if e.event_type == "FundOpened":
            opened.add(fund_id)  # type: ignore[arg-type]
        if fund_id is None or fund_id in opened:
            produced.add(e.event_id)
    last: dict[str, object] = {"n": -1}

    def settled() -> bool:
        inputs = first_copies(broker.bootstrap, [MATCHER_INPUTS.name])
        if not produced <= set(inputs):
            return False
        expected, n = replay_all(broker.bootstrap)
        present = first_copies(broker.bootstrap, [MATCHES_EVENTS.name, MATCHER_INPUTS.name])
        lacking = [decode(expected[i]) for i in set(expected) - set(present)]
        missing = [d.event_type for d in lacking]
        done = not missing and n == last["n"]
        last["n"], last["missing"] = n, len(missing)
        last["sample"] = sorted(set(missing))  # type: ignore[assignment]
        # On a timeout: where the missing decisions' inputs are, and where each partition's
        # snapshot resumes. An input below its partition's snapshot is lost for good (no owner
        # replays it again); one above it is only late.
        last["causes"] = sorted(
            {
                (inputs[d.causation_id].partition, inputs[d.causation_id].offset)
                for d in lacking
                if d.causation_id in inputs
            }
        )[:10]
        if missing:
            last["snapshots"] = asyncio.run(snapshot_offsets(database_url))
        return done

    wait_for(settled, 120, "every replayed decision on the topics", services, last)

    # One consistent look: the replay and the topics read until they agree (a read that ends
    # early under load must not pass for a loss), then the bytes are compared.
    seen: dict[str, dict[uuid.UUID, Record] | dict[uuid.UUID, bytes]] = {}

    def agree() -> bool:
        expected, _ = replay_all(broker.bootstrap)
        decisions = first_copies(broker.bootstrap, [MATCHES_EVENTS.name])
        cross = first_copies(broker.bootstrap, [MATCHER_INPUTS.name])
        seen.update(expected=expected, decisions=decisions, cross=cross)
        lost = [i for i in expected if i not in decisions and i not in cross]
        extra = set(decisions) - set(expected)
        last.update(lost=len(lost), extra=len(extra))
        return not lost and not extra

    wait_for(agree, 120, "the topics to hold exactly what the replay decides", services, last)
    expected = seen["expected"]
    decisions = seen["decisions"]
    cross = seen["cross"]
    for event_id, value in expected.items():
        written = decisions.get(event_id) or cross.get(event_id)
        assert isinstance(written, Record), f"decision {event_id} lost"
        assert written.value == value, f"decision {event_id} differs from its replay"
    assert set(decisions) <= set(expected), "a decision no replay makes"
    assert any(
        "held by its owner" in getattr(decode(r.value).payload, "rule", "")
        for r in decisions.values()
    ), "some supply crossed partitions"

    # the end state keeps every invariant
    active: dict[uuid.UUID, MatchProposed] = {}
    for r in decisions.values():
        p = decode(r.value).payload
        if isinstance(p, MatchProposed):
            active[p.match_id] = p
    for r in decisions.values():
        p = decode(r.value).payload
        if isinstance(p, MatchDeclined | MatchWithdrawn | MatchExpired | NoShowRecorded):
            active.pop(p.match_id, None)
    spent: dict[uuid.UUID, int] = defaultdict(int)
    filled: dict[uuid.UUID, int] = defaultdict(int)
    shifts: dict[uuid.UUID, list[MatchProposed]] = defaultdict(list)
    for m in active.values():
        if m.fund_id is not None and m.amount is not None:
            spent[m.fund_id] += m.amount.amount_minor
            filled[m.need_id] += m.amount.amount_minor
        else:
            assert m.volunteer_id is not None
            filled[m.need_id] += 1
            shifts[m.volunteer_id].append(m)
    for fund_id, amount in spent.items():
        assert amount <= sc.funds[fund_id][1], "fund over-spent"
    needs = sc.money_needs | sc.shift_needs
    for need_id, amount in filled.items():
        assert amount <= need_quantity(needs[need_id])[0], "need over-filled"
    for mine in shifts.values():
        for i, a in enumerate(mine):
            for b in mine[i + 1 :]:
                assert a.shift is not None and b.shift is not None
                assert not a.shift.overlaps(b.shift), "volunteer double-booked"

    async def snapshots() -> int:
        conn = await asyncpg.connect(database_url)
        try:
            return int(await conn.fetchval("SELECT count(*) FROM matcher_snapshots"))
        finally:
            await conn.close()

    assert asyncio.run(snapshots()) >= 1, "workers snapshot their partitions"
