"""The faults an operator meets, one kind per test, each under a steady mixed load.

After each fault the exchange must be healthy again by itself, and `checks.settle_and_check`
holds it to every promise: nothing acknowledged lost, doubled or left undecided, the auditor's
tools clean, `/healthz` never green over a stuck decision. Each verdict (with the time the
exchange took to be healthy again) is printed and appended to `fault-verdicts.jsonl` in
pytest's temporary folder (its path is printed at the end), the figures docs/operations.md
quotes.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import os
import signal
import time
from collections.abc import Callable
from dataclasses import asdict
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from tests import factories as f
from tests.e2e.harness import Exchange, alive, wait_for
from tests.faults.checks import HealthWatch, Verdict, settle_and_check
from tests.faults.conftest import Shared
from tests.faults.load import tomorrow_at

pytestmark = [pytest.mark.faults, pytest.mark.timeout(600)]

STALL_SECONDS = 4.0
"""How long a SIGSTOPped process stays stopped: longer than a heartbeat's staleness (10 s) would
be too slow for a suite of many; long enough for timeouts, lag and back-pressure to show (the
broker and PostgreSQL are stopped twice as long, past the 5 s connect and acquire timeouts)."""


def signal_pid(pid: int, sig: signal.Signals) -> None:
    """Send `sig`; a process already gone is no error (a fault can race a restart)."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def service_pid(ex: Exchange, name: str) -> int:
    """The running process of one service, as the supervisor recorded it."""
    return int(ex.state["services"][name])


def wait_replaced(ex: Exchange, what: str, read: Callable[[], int | None], old: int) -> None:
    """Wait until the supervisor runs a new process in place of `old`."""

    def replaced() -> bool:
        pid = read()
        return pid is not None and pid != old and alive(pid)

    wait_for(f"{what} to be restarted", replaced, timeout=120, interval=0.25)


def stall(pid: int, seconds: float = STALL_SECONDS) -> None:
    """SIGSTOP a process for `seconds` (the fault's length, not a synchronisation), then SIGCONT."""
    signal_pid(pid, signal.SIGSTOP)
    try:
        time.sleep(seconds)
    finally:
        signal_pid(pid, signal.SIGCONT)


def under_load(
    shared: Shared,
    seed: int,
    fault: str,
    inject: Callable[[], float | None],
    expect_after: frozenset[str] = frozenset(),
) -> Verdict:
    """Drive the load, inject the fault once some postings are acknowledged, keep the load on
    for a while after, then settle and check. Records the verdict and asserts it is clean.

    `inject` returns when the fault ended (time.monotonic()), or None for "now": a restart
    counts from the moment `exchange up` was run again, not from when it was healthy.
    `expect_after`: kinds of posting (e.g. "accept", which needs a proposal: the matcher
    matching) that must be acknowledged after the fault."""
    shared.ensure_running()
    shared.ex.wait_healthy(timeout=240)
    load = shared.load(seed).start()
    try:
        with HealthWatch(shared.ex, load) as watch:
            wait_for("postings acknowledged before the fault", lambda: len(load.acked) >= 15)
            ended = inject() or time.monotonic()
            before = len(load.acked)
            try:
                wait_for(
                    "postings acknowledged after the fault",
                    lambda: (
                        len(load.acked) >= before + 15
                        and expect_after <= {a.kind for a in load.acked[before:]}
                    ),
                    timeout=240,
                    interval=0.25,
                )
            except AssertionError as exc:
                raise AssertionError(
                    f"{fault}: {exc}; the load saw {dict(load.tally.answers)}\n"
                    f"{shared.ex.diagnostics(lines=12)}"
                ) from None
            verdict = settle_and_check(shared.ex, load, fault, ended)
        verdict.problems += watch.violations
    finally:
        load.close()
    record(shared.verdicts, verdict, load.tally.answers, load.tally.refusals)
    assert not verdict.problems, f"{fault}: {verdict.problems}\n{shared.ex.diagnostics(lines=6)}"
    return verdict


def record(out: Path, verdict: Verdict, answers: object, refusals: object) -> None:
    """Print the verdict and keep it with the suite's artefacts."""
    line = {
        **asdict(verdict),
        "answers": dict(answers),  # type: ignore[call-overload]
        "refusals": dict(refusals),  # type: ignore[call-overload]
    }
    print(f"\nFAULT {json.dumps(line, ensure_ascii=False)}")
    with contextlib.suppress(OSError), out.open("a", encoding="utf-8") as file:
        file.write(json.dumps(line, ensure_ascii=False) + "\n")


# ---- services ----


def running_services(ex: Exchange) -> list[str]:
    """Every service process the supervisor runs (the intake services and the router share one,
    `streams`, on the embedded default: services/composition.py), in the order it started them."""
    names = list(ex.state["services"])
    assert "gateway" in names and "ledger" in names, names
    return names


def test_sigkill_of_each_service_in_turn(shared: Shared) -> None:
    def inject() -> float | None:
        for name in running_services(shared.ex):
            old = service_pid(shared.ex, name)
            signal_pid(old, signal.SIGKILL)
            wait_replaced(shared.ex, name, lambda n=name: service_pid(shared.ex, n), old)

    under_load(shared, 11, "SIGKILL each service", inject)


def test_sigstop_and_sigcont_of_each_service_in_turn(shared: Shared) -> None:
    def inject() -> float | None:
        for name in running_services(shared.ex):
            stall(service_pid(shared.ex, name))

    under_load(shared, 12, "SIGSTOP/SIGCONT each service", inject)


# ---- the broker ----


def broker_pid(ex: Exchange) -> int | None:
    pid = ex.state.get("broker_pid")
    return int(pid) if pid else None


def test_sigkill_of_the_broker(shared: Shared) -> None:
    def inject() -> float | None:
        old = broker_pid(shared.ex)
        assert old is not None, "the embedded broker runs in this suite"
        signal_pid(old, signal.SIGKILL)
        wait_replaced(shared.ex, "the broker", lambda: broker_pid(shared.ex), old)

    under_load(shared, 21, "SIGKILL broker", inject)


def test_sigstop_and_sigcont_of_the_broker(shared: Shared) -> None:
    def inject() -> float | None:
        pid = broker_pid(shared.ex)
        assert pid is not None
        stall(pid, 2 * STALL_SECONDS)

    under_load(shared, 22, "SIGSTOP/SIGCONT broker", inject)


# ---- PostgreSQL ----


def postgres_pid(ex: Exchange) -> int | None:
    pid = ex.state.get("postgres_pid")
    return int(pid) if pid else None


def test_sigkill_of_postgresql(shared: Shared) -> None:
    def inject() -> float | None:
        old = postgres_pid(shared.ex)
        assert old is not None, "the embedded PostgreSQL runs in this suite"
        signal_pid(old, signal.SIGKILL)
        wait_replaced(shared.ex, "PostgreSQL", lambda: postgres_pid(shared.ex), old)

    under_load(shared, 31, "SIGKILL PostgreSQL", inject)


def test_sigstop_and_sigcont_of_postgresql(shared: Shared) -> None:
    def inject() -> float | None:
        pid = postgres_pid(shared.ex)
        assert pid is not None
        stall(pid, 2 * STALL_SECONDS)

    under_load(shared, 32, "SIGSTOP/SIGCONT PostgreSQL", inject)


# ---- the supervisor ----


def test_sigstop_and_sigcont_of_the_supervisor_alone(shared: Shared) -> None:
    def inject() -> float | None:
        stall(int(shared.ex.state["supervisor_pid"]), 2 * STALL_SECONDS)

    under_load(shared, 41, "SIGSTOP/SIGCONT supervisor", inject)


def test_sigkill_of_the_supervisor_alone_then_start_again(shared: Shared) -> None:
    """Its children must not live on as orphans beside the next `exchange up`."""

    def inject() -> float | None:
        old = shared.ex
        children = [p for p in old.pids() if p != int(old.state["supervisor_pid"])]
        signal_pid(int(old.state["supervisor_pid"]), signal.SIGKILL)
        if old.process is not None:
            old.process.wait(10)
        for pid in children:
            wait_for(f"child {pid} to die with its supervisor", lambda p=pid: not alive(p), 60)
        again = time.monotonic()
        shared.restart()
        return again

    under_load(shared, 42, "SIGKILL supervisor, start again", inject)


# ---- restarts ----


def test_restart_while_the_ledger_lags(shared: Shared) -> None:
    """The ledger stalls under load while matchers snapshot ahead of the archive; then the
    exchange is stopped and started, and the memory-only broker is restored from PostgreSQL."""

    def inject() -> float | None:
        ledger = service_pid(shared.ex, "ledger")
        signal_pid(ledger, signal.SIGSTOP)
        time.sleep(4 * STALL_SECONDS)  # the fault: a long stall under load
        shared.ex.stop(timeout=120)  # Ctrl-C while the ledger is still stopped
        signal_pid(ledger, signal.SIGCONT)
        wait_for("the stalled ledger to be gone", lambda: not alive(ledger), 60)
        again = time.monotonic()
        shared.restart()
        return again

    under_load(shared, 51, "restart while the ledger lags", inject)


# ---- the disk ----


def fill(folder: Path) -> Path:
    """Write a file until the filesystem is full; return it (deleting it frees the space)."""
    filler = folder / "filler.bin"
    chunk = b"\0" * (1 << 20)
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        while os.write(fd, chunk) > 0:  # unbuffered: nothing left to flush on close
            pass
    except OSError as exc:
        if exc.errno != errno.ENOSPC:
            raise
    finally:
        os.close(fd)
    return filler


def test_a_full_disk_then_space_freed(shared: Shared) -> None:
    if not shared.own_filesystem:
        pytest.skip("cannot mount a small filesystem for the var dir here (needs root)")

    def inject() -> float | None:
        filler = fill(shared.mount)
        try:
            time.sleep(2 * STALL_SECONDS)  # the fault's length, under load
        finally:
            filler.unlink()

    under_load(shared, 61, "full disk, then space freed", inject)


# ---- hostile input ----


def hostile_requests(token: str) -> list[tuple[str, str, dict[str, Any], str]]:
    """(method, path, body, token) of every hostile posting the issue found, sent raw."""
    soon = tomorrow_at(10)
    need = f.volunteer_need(
        deadline=(soon + timedelta(hours=3)).isoformat(),
        shift={"start": soon.isoformat(), "end": (soon + timedelta(hours=1)).isoformat()},
    )
    goods = f.money_need(kind="goods", quantity=1_000_000, unit="箱")
    del goods["amount"]
    goods["unit_cost"] = {"amount_minor": 10_000_000_000_000, "currency": "CNY"}
    c = token
    return [
        ("POST", "/v1/needs", {**need, "description": "电话\u0000123"}, c),
        ("POST", "/v1/needs", goods, c),
        ("POST", "/v1/needs", {**need, "deadline": "9999-12-31T23:00:00-08:00"}, c),
        ("POST", "/v1/needs", {**need, "description": "独居老人王某，电话13812345678"}, c),
        ("POST", "/v1/needs", {**need, "description": "身份证32010219800101001X"}, c),
        ("POST", "/v1/needs", {**need, "place": {"district": "鼓楼区\u200b"}}, c),
        ("POST", "/v1/needs", {**need, "title": "\ud800"}, c),
        (
            "POST",
            "/v1/volunteers",
            {"pseudonym": "王\u202e师傅", "home": {"district": "鼓楼区"}},
            c,
        ),
    ]


async def postings_of(dsn: str, org_name: str) -> int:
    """How many postings the named organisation has in the outbox."""
    conn = await asyncpg.connect(dsn)
    try:
        return int(
            await conn.fetchval(
                "SELECT count(*) FROM postings p JOIN organisations o"
                " ON p.org_id = o.org_id::text WHERE o.name = $1 AND p.event_type <> $2",
                org_name,
                "OrganisationRegistered",
            )
        )
    finally:
        await conn.close()


def test_hostile_postings_are_refused_and_the_exchange_still_matches(shared: Shared) -> None:
    """Every hostile posting the issue found is a 422 naming a field, nothing is written, and
    the exchange stays healthy and keeps matching the load around them."""

    shared.ensure_running()
    name = "对抗演练社区"
    attacker = shared.ex.create_org("community", name, "鼓楼区", "江东街道")

    def inject() -> float | None:
        with httpx.Client(base_url=shared.ex.url, timeout=10) as http:
            for method, path, body, token in hostile_requests(attacker):
                r = http.request(
                    method,
                    path,
                    content=json.dumps(body),  # ASCII escapes carry a lone surrogate as sent
                    headers={
                        "Authorization": f"Bearer {token}",
                        "Content-Type": "application/json",
                    },
                )
                assert r.status_code == 422, (path, body, r.status_code, r.text)
                assert r.json()["detail"][0]["field"], r.text
        written = asyncio.run(postings_of(shared.ex.state["database_url"], name))
        assert written == 0, f"{written} postings written by refused requests"
        return None

    under_load(shared, 71, "hostile postings", inject, expect_after=frozenset({"accept"}))
