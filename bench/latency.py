"""Posting-to-proposal latency and sustained rate through the whole exchange.

Starts the exchange on the embedded default (a scratch var dir), registers a foundation with a
large fund and a community, then posts money needs at a steady rate over HTTP. Each need is
met by the fund, so each posting yields one MatchProposed. Latency is measured from the
gateway's 202 (the posting is durable and acknowledged) to the proposal appearing on
matches.events, read by a plain consumer.

The baseline is measured in the same run on the same broker: a raw produce-to-consume round
trip at the same rate (aiokafka). The ratio is printed, because these machines are noisy.

    .venv/bin/python bench/latency.py --rate 500 --seconds 20
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests import factories as f  # noqa: E402
from tests.e2e.harness import Exchange  # noqa: E402


def percentiles(samples: list[float]) -> dict[str, float]:
    """p50, p99 and max in milliseconds."""
    if not samples:
        return {"p50": float("nan"), "p99": float("nan"), "max": float("nan")}
    ordered = sorted(samples)
    return {
        "p50": statistics.median(ordered) * 1000,
        "p99": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000,
        "max": ordered[-1] * 1000,
    }


async def watch(
    bootstrap: str, topic: str, seen: dict[str, float], stop: asyncio.Event, key_of: Any
) -> None:
    """Record when each message (by key_of(value)) is first read."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        fetch_max_wait_ms=10,
    )
    await consumer.start()
    try:
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=50)
            now = time.perf_counter()
            for records in batch.values():
                for r in records:
                    k = key_of(r.value)
                    if k is not None:
                        seen.setdefault(k, now)
    finally:
        await consumer.stop()


async def exchange_run(ex: Exchange, rate: float, seconds: float) -> dict[str, Any]:
    """Post money needs at `rate` per second; measure accept-to-proposal latency."""
    foundation = ex.create_org("foundation", "基准测试基金会", "鼓楼区")
    community = ex.create_org("community", "基准测试社区", "鼓楼区", "江东街道")
    bootstrap = ex.state["kafka_bootstrap_servers"]
    accepted: dict[str, float] = {}
    proposed: dict[str, float] = {}
    errors: list[str] = []
    stop = asyncio.Event()

    def need_of(value: bytes) -> str | None:
        m = json.loads(value)
        return m["payload"]["need_id"] if m["event_type"] == "MatchProposed" else None

    watcher = asyncio.create_task(watch(bootstrap, "matches.events", proposed, stop, need_of))
    limits = httpx.Limits(max_connections=64)
    async with httpx.AsyncClient(base_url=ex.url, timeout=30, limits=limits) as http:
        fh = {"Authorization": f"Bearer {foundation}"}
        fund = (await http.post("/v1/funds", json=f.fund(), headers=fh)).json()["fund_id"]
        await http.post(f"/v1/funds/{fund}/donations", json=f.donation(10**12), headers=fh)
        await asyncio.sleep(2)  # let the fund and donation reach the matcher first
        ch = {"Authorization": f"Bearer {community}"}
        body = f.money_need(100)

        async def post_one() -> None:
            try:
                r = await http.post("/v1/needs", json=body, headers=ch)
            except httpx.HTTPError as exc:
                errors.append(repr(exc))
                return
            if r.status_code == 202:
                accepted[r.json()["need_id"]] = time.perf_counter()
            else:
                errors.append(str(r.status_code))

        start = time.perf_counter()
        tasks: list[asyncio.Task[None]] = []
        n = int(rate * seconds)
        for i in range(n):
            target = start + i / rate
            delay = target - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(post_one()))
        await asyncio.gather(*tasks)
        sent_for = time.perf_counter() - start
        deadline = time.perf_counter() + 60
        while time.perf_counter() < deadline and not set(accepted) <= set(proposed):  # noqa: ASYNC110 (a deadline-bounded poll of plain dicts)
            await asyncio.sleep(0.1)
    stop.set()
    await watcher
    lat = [proposed[k] - accepted[k] for k in accepted if k in proposed]
    return {
        "offered_rate": rate,
        "achieved_rate": len(accepted) / sent_for,
        "accepted": len(accepted),
        "proposed": len(lat),
        "errors": len(errors),
        **percentiles(lat),
    }


async def raw_run(bootstrap: str, rate: float, seconds: float) -> dict[str, Any]:
    """The limit: produce at `rate` with aiokafka and time each message's arrival."""
    topic = f"bench-raw-{uuid.uuid4().hex[:6]}"
    sent: dict[str, float] = {}
    got: dict[str, float] = {}
    stop = asyncio.Event()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0)
    await producer.start()
    await producer.send_and_wait(topic, b"warm-up")
    watcher = asyncio.create_task(
        watch(bootstrap, topic, got, stop, lambda v: v.decode() if v != b"warm-up" else None)
    )
    await asyncio.sleep(1)
    start = time.perf_counter()
    n = int(rate * seconds)
    for i in range(n):
        target = start + i / rate
        delay = target - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        key = str(i)
        sent[key] = time.perf_counter()
        await producer.send(topic, key.encode())
    await producer.flush()
    deadline = time.perf_counter() + 30
    while time.perf_counter() < deadline and len(got) < n:  # noqa: ASYNC110 (a deadline-bounded poll)
        await asyncio.sleep(0.05)
    stop.set()
    await watcher
    await producer.stop()
    lat = [got[k] - sent[k] for k in sent if k in got]
    return {"offered_rate": rate, "received": len(lat), **percentiles(lat)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=float, default=500, help="postings per second")
    parser.add_argument("--seconds", type=float, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        ex = Exchange(Path(tmp) / "var").start()
        try:
            ex.wait_healthy()
            raw = asyncio.run(raw_run(ex.state["kafka_bootstrap_servers"], args.rate, args.seconds))
            full = asyncio.run(exchange_run(ex, args.rate, args.seconds))
        finally:
            ex.stop()
    print(
        f"raw aiokafka round trip  @ {raw['offered_rate']:.0f}/s: p50 {raw['p50']:.1f} ms, "
        f"p99 {raw['p99']:.1f} ms, max {raw['max']:.1f} ms ({raw['received']} messages)"
    )
    print(
        f"posting -> proposal      @ {full['offered_rate']:.0f}/s offered, "
        f"{full['achieved_rate']:.0f}/s accepted: p50 {full['p50']:.1f} ms, "
        f"p99 {full['p99']:.1f} ms, max {full['max']:.1f} ms "
        f"({full['proposed']}/{full['accepted']} proposed, {full['errors']} errors)"
    )
    print(f"ratio p99 exchange / raw: {full['p99'] / raw['p99']:.1f}x")


if __name__ == "__main__":
    main()
