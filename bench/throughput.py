"""Matcher throughput on one and two workers against a raw consumer, and each worker's memory.

The measurement isolates the matcher. A seeded city (services.demo.city) is routed in-process
with the pure router, exactly as `matcher-router` would route it, and written to
`matcher.inputs` with explicit partitions, the original bytes and the `event_id`/`event_type`
headers. No gateway, intake or router process runs.

Three figures come from three fresh brokers (and fresh databases), so no run sees another's
topics, snapshots or committed offsets:

- **raw**: a plain aiokafka consumer, with the fetch settings a worker uses, reads the written
  partitions from the beginning to the end. That is the limit a worker cannot beat here.
- **N workers** (`exchange services run matcher-K`, real processes): the workers join the group
  on empty topics and rebuild their (empty) partitions; then they are paused (SIGSTOP), the city
  is written, and they are resumed (SIGCONT). So the backlog is drained by the live loop, as
  sustained load would be, and not by the rebuild path that a worker runs on assignment (which
  replays with a different client and is not measured here). The rate counts every input applied,
  including the requests and replies that partitions write back to `matcher.inputs`, from the
  first heartbeat that shows work until the last input is applied. "Done" is the workers'
  `applied` (heartbeat details) equal to the number of records on `matcher.inputs`, read by a
  counting consumer, twice in a row: never an end offset (Tansu reports them short).
- **memory**: each worker's peak resident set (VmHWM) once it holds the whole city.

    .venv/bin/python bench/throughput.py                     # 20k needs, 10k volunteers, 300 funds
    .venv/bin/python bench/throughput.py --quick             # 4k needs, 2k volunteers, 120 funds
    .venv/bin/python bench/throughput.py --profile --needs 4000 --volunteers 2000 --funds 120
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import io
import json
import os
import pstats
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from schemas.codec import encode  # noqa: E402
from schemas.topics import MATCHER_INPUTS, MATCHES_EVENTS  # noqa: E402
from services.demo.city import generate  # noqa: E402
from services.domain.routing import RoutingState, route  # noqa: E402
from services.embedded.broker import EmbeddedBroker  # noqa: E402
from services.embedded.postgres import EmbeddedPostgres  # noqa: E402
from services.matcher.processor import PartitionMatcher  # noqa: E402
from services.matcher.worker import BATCH_MAX  # noqa: E402
from services.platform.db import migrate  # noqa: E402
from services.platform.kafka import Record, ensure_topics, headers_for  # noqa: E402
from services.settings import Settings  # noqa: E402

FETCH = Settings()
"""The fetch settings a worker uses by default, so the raw reader fetches the same way."""
MAX_PARTITION_FETCH_BYTES = 4 * 1024 * 1024  # as services/matcher/worker.py
HEARTBEAT_SECONDS = 0.2
"""Workers' heartbeat interval in these runs: the resolution of the start and end times."""


def progress(message: str) -> None:
    """Long phases report on stderr, so stdout holds only the figures."""
    print(f"[throughput {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Input:
    """One record for matcher.inputs, as the router would write it."""

    partition: int
    key: bytes
    value: bytes
    event_id: uuid.UUID
    event_type: str


def routed_city(needs: int, volunteers: int, funds: int, seed: int) -> list[Input]:
    """The seeded city, routed by the pure router, in the order the router would write it."""
    sc = generate(needs, volunteers, funds, seed)
    state = RoutingState(MATCHER_INPUTS.partitions)
    out = []
    for event in sc.events:
        raw = encode(event)
        for r in route(state, event):
            value = raw if r.original else encode(r.envelope)
            out.append(
                Input(
                    r.partition, r.zone.encode(), value, r.envelope.event_id, r.envelope.event_type
                )
            )
    return out


# ---- the broker, the database and the writer ----


@contextlib.contextmanager
def fresh_broker(tmp: Path, label: str) -> Iterator[EmbeddedBroker]:
    """A Tansu of its own for one run (memory only: it starts empty), with the topics made."""
    broker = EmbeddedBroker.start(tmp / f"broker-{label}.log")
    try:
        ensure_topics(broker.bootstrap)
        yield broker
    finally:
        broker.process.kill()  # SIGKILL: a graceful stop waits ~6 s for clients, and we are done
        broker.process.wait()


async def fresh_database(postgres: EmbeddedPostgres, label: str) -> str:
    """A new, migrated database: no snapshot or heartbeat of an earlier run is seen."""
    name = f"bench_{label}_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(postgres.admin_url)
    try:
        await conn.execute(f"CREATE DATABASE \"{name}\" TEMPLATE template0 ENCODING 'UTF8'")
    finally:
        await conn.close()
    url = postgres.admin_url.replace("/postgres?", f"/{name}?")
    await migrate(url)
    return url


async def write(bootstrap: str, inputs: list[Input]) -> float:
    """Write the routed city to matcher.inputs (explicit partitions); seconds it took."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        linger_ms=5,
        max_batch_size=1024 * 1024,
        enable_idempotence=False,  # Tansu rejects aiokafka's InitProducerId v0
    )
    await producer.start()
    started = time.perf_counter()
    try:
        sent = [
            await producer.send(
                MATCHER_INPUTS.name,
                key=i.key,
                value=i.value,
                partition=i.partition,
                headers=headers_for(i.event_id, i.event_type),
            )
            for i in inputs
        ]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()
    return time.perf_counter() - started


def reader(bootstrap: str, fetch_max_wait_ms: int = FETCH.fetch_max_wait_ms) -> AIOKafkaConsumer:
    """A group-less consumer fetching as a worker does (same wait, same per-partition bytes)."""
    return AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=fetch_max_wait_ms,
        max_partition_fetch_bytes=MAX_PARTITION_FETCH_BYTES,
    )


# ---- the limit: a raw consumer ----


async def raw_rate(bootstrap: str, expected: int, passes: int = 3) -> tuple[float, float]:
    """Read matcher.inputs from the beginning until `expected` records came, `passes` times on
    one started consumer; the fastest pass: (events/s, seconds). The first pass also pays for
    metadata and offset look-ups, and the machine is shared, so the best pass is the limit."""
    consumer = reader(bootstrap)
    await consumer.start()
    parts = [TopicPartition(MATCHER_INPUTS.name, p) for p in range(MATCHER_INPUTS.partitions)]
    consumer.assign(parts)
    best = float("inf")
    try:
        for _ in range(passes):
            for tp in parts:
                consumer.seek(tp, 0)
            got = 0
            started = time.perf_counter()
            while got < expected:
                batch = await consumer.getmany(timeout_ms=100, max_records=BATCH_MAX)
                got += sum(len(records) for records in batch.values())
            best = min(best, time.perf_counter() - started)
    finally:
        await consumer.stop()
    return expected / best, best


async def run_raw(tmp: Path, inputs: list[Input]) -> dict[str, float]:
    """The raw figure, on a broker of its own."""
    with fresh_broker(tmp, "raw") as broker:
        progress(f"raw: writing {len(inputs):,} inputs")
        seconds = await write(broker.bootstrap, inputs)
        progress(f"raw: written in {seconds:.1f} s; reading them back")
        rate, elapsed = await raw_rate(broker.bootstrap, len(inputs))
    return {"rate": rate, "seconds": elapsed, "write_rate": len(inputs) / seconds}


# ---- the workers ----


@dataclass
class Tally:
    """What a counting consumer has seen: records per topic, and when it last saw one."""

    counts: Counter[str] = field(default_factory=Counter)
    ends: dict[tuple[str, int], int] = field(default_factory=dict)

    def on_matcher_inputs(self) -> int:
        """Records on matcher.inputs: the highest offset seen + 1, per partition."""
        return sum(o for (t, _), o in self.ends.items() if t == MATCHER_INPUTS.name)


async def count(bootstrap: str, tally: Tally, stop: asyncio.Event) -> None:
    """Follow matcher.inputs and matches.events from the beginning, counting what is there.

    It fetches with a long wait: it needs the count only at the end, and a short wait would
    take CPU from the workers it measures."""
    consumer = reader(bootstrap, fetch_max_wait_ms=200)
    await consumer.start()
    parts = [
        TopicPartition(t.name, p)
        for t in (MATCHER_INPUTS, MATCHES_EVENTS)
        for p in range(t.partitions)
    ]
    consumer.assign(parts)
    for tp in parts:
        consumer.seek(tp, 0)
    try:
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=100, max_records=10_000)
            for tp, records in batch.items():
                if records:
                    tally.counts[tp.topic] += len(records)
                    tally.ends[(tp.topic, tp.partition)] = records[-1].offset + 1
    finally:
        await consumer.stop()


class Workers:
    """Matcher workers started as production starts them (`exchange services run matcher-K`)."""

    def __init__(self, bootstrap: str, database_url: str, tmp: Path, n: int) -> None:
        self.tmp = tmp
        self.env = {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "DATABASE_URL": database_url,
            "EXCHANGE_VAR_DIR": str(tmp),
            "EXCHANGE_TICK_SECONDS": "0",
            "EXCHANGE_HEARTBEAT_SECONDS": str(HEARTBEAT_SECONDS),
            "PYTHONUNBUFFERED": "1",
        }
        self.names = [f"matcher-{k}" for k in range(1, n + 1)]
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self) -> None:
        for name in self.names:
            log = open(self.tmp / f"{name}.log", "ab")  # noqa: SIM115 (lives as long as the process)
            self.procs[name] = subprocess.Popen(
                [sys.executable, "-m", "services.cli", "services", "run", name],
                env=self.env,
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def signal(self, sig: signal.Signals) -> None:
        for proc in self.procs.values():
            os.kill(proc.pid, sig)

    def peak_rss_mb(self) -> dict[str, float]:
        """Each worker's peak resident set so far (VmHWM), in MB (10^6 bytes)."""
        out = {}
        for name, proc in self.procs.items():
            with open(f"/proc/{proc.pid}/status") as status:
                for line in status:
                    if line.startswith("VmHWM:"):
                        out[name] = int(line.split()[1]) * 1024 / 1e6
        return out

    def log_lines(self, name: str) -> list[dict[str, object]]:
        """The worker's structured log lines (those that parse as JSON)."""
        lines = []
        for raw in (self.tmp / f"{name}.log").read_text(errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                lines.append(json.loads(raw))
        return lines

    def stop(self) -> None:
        for proc in self.procs.values():
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGCONT)  # a paused process cannot handle SIGTERM
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


async def beats(conn: asyncpg.Connection, names: list[str]) -> dict[str, dict[str, object]]:
    """The workers' latest heartbeats: ready, pid and details (partitions, applied)."""
    rows = await conn.fetch(
        "SELECT service, ready, pid, details FROM service_heartbeats WHERE service = ANY($1)",
        names,
    )
    out = {}
    for r in rows:
        details = r["details"]
        details = json.loads(details) if isinstance(details, str) else details
        out[r["service"]] = {"ready": r["ready"], "pid": r["pid"], **details}
    return out


async def wait_settled(conn: asyncpg.Connection, workers: Workers, within: float) -> None:
    """Until every worker is ready and the partitions are split between them, each once, for
    two seconds running (a second worker's join makes the group rebalance)."""
    everything = list(range(MATCHER_INPUTS.partitions))
    deadline = time.monotonic() + within
    stable_since: float | None = None
    while time.monotonic() < deadline:
        now = await beats(conn, workers.names)
        owned = sorted(p for b in now.values() for p in b.get("partitions", []))  # type: ignore[attr-defined]
        settled = (
            len(now) == len(workers.names)
            and all(b["ready"] for b in now.values())
            and owned == everything
            and all(b.get("partitions") for b in now.values())
        )
        if not settled:
            stable_since = None
        elif stable_since is None:
            stable_since = time.monotonic()
        elif time.monotonic() - stable_since >= 2:
            return
        for name, proc in workers.procs.items():
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}")
        await asyncio.sleep(HEARTBEAT_SECONDS)
    raise TimeoutError(f"workers did not settle on the partitions: {now}")


async def run_workers(
    postgres: EmbeddedPostgres, tmp: Path, inputs: list[Input], n: int, within: float
) -> dict[str, object]:
    """One run with `n` workers on a fresh broker and database; see the module docstring."""
    label = f"{n}w"
    database_url = await fresh_database(postgres, label)
    run_dir = tmp / label
    run_dir.mkdir()
    with fresh_broker(tmp, label) as broker:
        workers = Workers(broker.bootstrap, database_url, run_dir, n)
        conn = await asyncpg.connect(database_url)
        tally, stop = Tally(), asyncio.Event()
        counter: asyncio.Task[None] | None = None
        try:
            workers.start()
            progress(f"{n} worker(s): waiting for the group to settle")
            await wait_settled(conn, workers, within=90)
            workers.signal(signal.SIGSTOP)
            try:
                seconds = await write(broker.bootstrap, inputs)
            finally:
                workers.signal(signal.SIGCONT)
            resumed = time.monotonic()
            progress(f"{n} worker(s): {len(inputs):,} inputs written in {seconds:.1f} s; draining")
            counter = asyncio.create_task(count(broker.bootstrap, tally, stop))
            samples = await drain(conn, workers, tally, resumed, within)
            rss = workers.peak_rss_mb()
            final = await beats(conn, workers.names)
        finally:
            stop.set()
            if counter is not None:
                await counter
            await conn.close()
            workers.stop()
        rebuilt = sum(
            int(line.get("replayed", 0))  # type: ignore[call-overload]
            for name in workers.names
            for line in workers.log_lines(name)
            if line.get("msg") == "partition rebuilt"
        )
    first = next(s for s in samples if s[1] > 0)
    last = next(s for s in samples if s[1] == samples[-1][1])
    applied = last[1] - first[1]
    return {
        "workers": n,
        "applied": last[1],
        "rate": applied / max(last[0] - first[0], 1e-9),
        "seconds": last[0] - first[0],
        "from_resume": last[1] / max(last[0] - resumed, 1e-9),
        "city_rate": len(inputs) / max(last[0] - resumed, 1e-9),
        "cross": last[1] - len(inputs),
        "decisions": tally.counts[MATCHES_EVENTS.name],
        "rss_mb": rss,
        "partitions": {name: b.get("partitions") for name, b in final.items()},
        "replayed_on_rebuild": rebuilt,
    }


async def drain(
    conn: asyncpg.Connection, workers: Workers, tally: Tally, resumed: float, within: float
) -> list[tuple[float, int]]:
    """Sample the workers' `applied` until it equals the records on matcher.inputs twice in a
    row with nothing new in between; return the samples (monotonic time, applied)."""
    samples: list[tuple[float, int]] = [(resumed, 0)]
    agreed = 0
    last_report = time.monotonic()
    while agreed < 2:
        await asyncio.sleep(HEARTBEAT_SECONDS)
        now = time.monotonic()
        if now - resumed > within:
            raise TimeoutError(f"not drained after {within:.0f} s: {samples[-1]}")
        for name, proc in workers.procs.items():
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}")
        applied = sum(int(b.get("applied", 0)) for b in (await beats(conn, workers.names)).values())  # type: ignore[call-overload]
        on_log = tally.on_matcher_inputs()
        same = applied == samples[-1][1]
        samples.append((now, applied))
        agreed = agreed + 1 if applied == on_log and same else 0
        if now - last_report > 10:
            last_report = now
            progress(f"  applied {applied:,} of {on_log:,} on matcher.inputs so far")
    return samples


# ---- in-process: the same inputs through the pure matcher, no broker ----


def replay_in_process(inputs: list[Input]) -> tuple[int, int, Counter[str], float]:
    """Feed each partition's inputs to its PartitionMatcher in batches, delivering the requests
    and replies it writes back to their partition's queue, as the log would.

    Returns (inputs applied, decisions, cross-partition messages by type, seconds)."""
    procs = {p: PartitionMatcher(p) for p in range(MATCHER_INPUTS.partitions)}
    queues: dict[int, deque[tuple[bytes, list[tuple[str, bytes]]]]] = {p: deque() for p in procs}
    for i in inputs:
        queues[i.partition].append((i.value, headers_for(i.event_id, i.event_type)))
    offsets = dict.fromkeys(procs, 0)
    applied = decisions = 0
    cross: Counter[str] = Counter()
    started = time.perf_counter()
    while any(queues.values()):
        for p, queue in queues.items():
            for _ in range(min(BATCH_MAX, len(queue))):
                value, headers = queue.popleft()
                record = Record(MATCHER_INPUTS.name, p, offsets[p], None, value, tuple(headers))
                offsets[p] += 1
                applied += 1
                for out in procs[p].handle(record):
                    if out.topic == MATCHER_INPUTS.name and out.partition is not None:
                        queues[out.partition].append(
                            (out.value, headers_for(out.event_id, out.event_type))
                        )
                        cross[out.event_type] += 1
                    else:
                        decisions += 1
    return applied, decisions, cross, time.perf_counter() - started


def profile_in_process(inputs: list[Input], top: int = 25) -> None:
    """cProfile the in-process replay; print where the time goes, by own and cumulative time."""
    profiler = cProfile.Profile()
    profiler.enable()
    applied, decisions, cross, seconds = replay_in_process(inputs)
    profiler.disable()
    print(
        f"in-process replay under cProfile: {applied:,} inputs in {seconds:.1f} s; "
        f"cross-partition messages {dict(cross)}; {decisions:,} decisions"
    )
    for order in ("tottime", "cumulative"):
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).strip_dirs().sort_stats(order).print_stats(top)
        print(f"--- top {top} by {order}")
        print(text.getvalue().split("\n\n", 1)[-1].strip())


# ---- the command ----


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--needs", type=int, default=20_000)
    parser.add_argument("--volunteers", type=int, default=10_000)
    parser.add_argument("--funds", type=int, default=300)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--workers", default="1,2", help="worker counts to run, e.g. 1,2")
    parser.add_argument(
        "--quick", action="store_true", help="a smaller city (4k needs, 2k volunteers, 120 funds)"
    )
    parser.add_argument(
        "--in-process", action="store_true", help="also replay the inputs in-process (no broker)"
    )
    parser.add_argument(
        "--profile", action="store_true", help="only cProfile the in-process replay, then stop"
    )
    parser.add_argument("--timeout", type=float, default=1800, help="seconds allowed per drain")
    args = parser.parse_args()
    if args.quick:
        args.needs, args.volunteers, args.funds = 4000, 2000, 120
    counts = [int(n) for n in args.workers.split(",") if n]

    progress(f"generating and routing a city of {args.needs:,} needs")
    t = time.perf_counter()
    inputs = routed_city(args.needs, args.volunteers, args.funds, args.seed)
    kinds = Counter(i.event_type for i in inputs)
    city = (
        f"city: {args.needs:,} needs, {args.volunteers:,} volunteers, {args.funds} funds "
        f"(seed {args.seed}) -> {len(inputs):,} inputs on {MATCHER_INPUTS.partitions} partitions "
        f"({', '.join(f'{k} {v:,}' for k, v in kinds.most_common())}); "
        f"generated and routed in {time.perf_counter() - t:.1f} s"
    )
    print(city, flush=True)
    if args.profile:
        profile_in_process(inputs)
        return

    results: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory(prefix="bench-throughput-") as tmp_name:
        tmp = Path(tmp_name)
        postgres = EmbeddedPostgres.start(tmp / "pg" / "data")
        try:
            raw = asyncio.run(run_raw(tmp, inputs))
            print(
                f"raw aiokafka consumer: {raw['rate']:,.0f} events/s "
                f"({len(inputs):,} in {raw['seconds']:.2f} s; written at "
                f"{raw['write_rate']:,.0f}/s)",
                flush=True,
            )
            for n in counts:
                r = asyncio.run(run_workers(postgres, tmp, inputs, n, args.timeout))
                results.append(r)
                report_workers(r, raw["rate"])
        finally:
            postgres.stop()
    if args.in_process:
        progress("in-process replay")
        applied, decisions, cross, seconds = replay_in_process(inputs)
        print(
            f"in-process pure replay: {applied / seconds:,.0f} inputs/s ({applied:,} inputs, "
            f"{sum(cross.values()):,} of them cross-partition, in {seconds:.1f} s; "
            f"{decisions:,} decisions)"
        )
    print("summary:")
    print(f"  {city}")
    print(f"  raw aiokafka consumer: {raw['rate']:,.0f} events/s")
    for r in results:
        rate = float(r["rate"])  # type: ignore[arg-type]
        rss = ", ".join(f"{k} {v:.0f} MB" for k, v in r["rss_mb"].items())  # type: ignore[attr-defined]
        print(
            f"  {r['workers']} worker(s): {rate:,.0f} inputs/s = {rate / raw['rate']:.1%} of raw "
            f"(goal on one worker: >= 50%); city drained at "
            f"{float(r['city_rate']):,.0f} routed inputs/s; "  # type: ignore[arg-type]
            f"peak RSS {rss} (goal: < 300 MB)"
        )


def report_workers(r: dict[str, object], raw: float) -> None:
    """One run's figures, as soon as it is done."""
    rate = float(r["rate"])  # type: ignore[arg-type]
    rss = ", ".join(f"{k} {v:.0f} MB" for k, v in r["rss_mb"].items())  # type: ignore[attr-defined]
    print(
        f"{r['workers']} worker(s): {rate:,.0f} inputs/s over {float(r['seconds']):.1f} s "  # type: ignore[arg-type]
        f"({r['applied']:,} applied, {r['cross']:,} of them cross-partition requests/replies; "
        f"{r['decisions']:,} decisions on matches.events; {float(r['from_resume']):,.0f}/s "  # type: ignore[arg-type]
        f"counted from resume); the city's routed inputs at {float(r['city_rate']):,.0f}/s; "  # type: ignore[arg-type]
        f"ratio to raw {rate / raw:.1%}; peak RSS {rss}; "
        f"partitions {r['partitions']}",
        flush=True,
    )
    if r["replayed_on_rebuild"]:
        print(
            f"  warning: {r['replayed_on_rebuild']} inputs were replayed by a rebuild "
            "(the group rebalanced mid-run); they are not in the rate",
            flush=True,
        )


if __name__ == "__main__":
    main()
