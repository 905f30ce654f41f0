"""What one consumer that keeps fetching costs the embedded broker, by fetch wait and partitions.

Why this exists (issue #18): on the embedded default every hop from a posting to its proposal is
a consumer fetching from Tansu, and Tansu answers a fetch only after about half its wait, never
early when data arrives (`runtime-notes`). This measures what that costs: one aiokafka consumer
on an empty, bare broker fetching for `--seconds`, for each fetch wait and number of partitions
named in its fetches, with the broker's and the client's CPU as shares of one core. The
baseline, in the same run: the same broker with no client at all.

    .venv/bin/python bench/fetch_cost.py
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

from aiokafka import AIOKafkaConsumer, TopicPartition

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from schemas.topics import ALL_TOPICS  # noqa: E402
from services.embedded.broker import EmbeddedBroker  # noqa: E402
from services.platform.kafka import ensure_topics  # noqa: E402


def cpu_seconds(pid: int) -> float:
    """User and system CPU seconds of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def own_cpu() -> float:
    t = os.times()
    return t.user + t.system


async def fetching(
    bootstrap: str, broker_pid: int, parts: list[TopicPartition], wait_ms: int, seconds: float
) -> tuple[float, float, int]:
    """Shares of one core (broker, client) while one consumer fetches `parts`; and how many
    times `getmany` returned."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, fetch_max_wait_ms=wait_ms, enable_auto_commit=False
    )
    await consumer.start()
    try:
        consumer.assign(parts)
        await consumer.getmany(timeout_ms=200)  # connected, positions known
        broker, mine, turns = cpu_seconds(broker_pid), own_cpu(), 0
        started = time.monotonic()
        while time.monotonic() - started < seconds:
            await consumer.getmany(timeout_ms=100)
            turns += 1
        return (
            (cpu_seconds(broker_pid) - broker) / seconds,
            (own_cpu() - mine) / seconds,
            turns,
        )
    finally:
        await consumer.stop()


async def main(seconds: float, waits: list[int], partitions: list[int]) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-fetch-") as tmp:
        broker = EmbeddedBroker.start(Path(tmp) / "broker.log")
        try:
            ensure_topics(broker.bootstrap)
            pid = broker.process.pid
            before = cpu_seconds(pid)
            await asyncio.sleep(seconds)  # the baseline is the broker doing nothing this long
            print(
                f"baseline: the bare broker, no client: {(cpu_seconds(pid) - before) / seconds:.1%}"
            )
            every = [TopicPartition(t.name, p) for t in ALL_TOPICS for p in range(t.partitions)]
            print(f"one consumer fetching for {seconds:.0f} s (shares of one core):")
            for wait in waits:
                for n in partitions:
                    b, c, _ = await fetching(broker.bootstrap, pid, every[:n], wait, seconds)
                    what = f"fetch wait {wait:4} ms, {n:2} partitions"
                    print(f"  {what}: broker {b:6.1%}, client {c:6.1%}")
        finally:
            broker.stop()


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=8)
    ap.add_argument("--waits", default="5,10,100", help="fetch waits to try (ms)")
    ap.add_argument("--partitions", default="1,4,33,53", help="partitions per fetch to try")
    args = ap.parse_args()
    asyncio.run(
        main(
            args.seconds,
            [int(w) for w in args.waits.split(",")],
            [int(p) for p in args.partitions.split(",")],
        )
    )
