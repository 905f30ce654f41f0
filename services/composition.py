"""Which services share a process: one per service in production, fewer on one machine.

Production runs every service as its own process or container (`exchange services run NAME`,
deploy/), so each can be scaled, restarted and given its own Kafka principal. On the embedded
default (`exchange up` on a laptop or a street office's desktop) eight processes on two cores
cost more than the work: each faust process keeps its own consumer polling the broker, joins
its own group at start and pays its own interpreter. So `exchange up` runs the three intake
services and the router as one faust app, `streams`: one consumer, one group join, one
process, the same processors, the same at-least-once path and the same `producer` header on
everything each of them writes (bench/README.md, `startup.py`, `idle.py`, `latency.py`).

Nothing else changes: each member still beats under its own name (so /healthz and the
operator's view are the same), rebuilds its own state from its inputs at start, and writes
only its own topics. `EXCHANGE_COMPOSITION=apart` runs one process per service on one machine
too (what the production manifests do), for whoever wants to see them separately.
"""

from __future__ import annotations

from typing import Literal

from services import SERVICES

Composition = Literal["together", "apart"]

STREAMS = "streams"
"""The process that runs the faust services together."""

TOGETHER: dict[str, tuple[str, ...]] = {
    STREAMS: ("intake-needs", "intake-donations", "intake-pledges", "matcher-router"),
}
"""Process name → the services it runs, when composed together. The matcher workers stay apart
(they are a consumer group of their own whose partitions move between members), and so do the
gateway and the ledger (not faust apps; each owns a pool of PostgreSQL connections)."""


def processes(composition: Composition) -> dict[str, tuple[str, ...]]:
    """Every process to run, in the order of `SERVICES`, with the services each one runs."""
    if composition == "apart":
        return {name: (name,) for name in SERVICES}
    shared = {member: process for process, members in TOGETHER.items() for member in members}
    out: dict[str, tuple[str, ...]] = {}
    for name in SERVICES:
        process = shared.get(name)
        if process is None:
            out[name] = (name,)
        elif process not in out:
            out[process] = TOGETHER[process]
    return out


def members(process: str) -> tuple[str, ...]:
    """The services a process name runs (a process of its own runs just itself)."""
    return TOGETHER.get(process, (process,))
