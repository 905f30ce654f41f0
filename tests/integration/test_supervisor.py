"""The supervisor's own rules, with real child processes: back-off instead of giving up, and
what an earlier, dead supervisor left running is stopped before anything starts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from services.platform.lifeline import start_time
from services.settings import Settings
from services.supervisor import PROCESSES_FILE, Backoff, Child, Supervisor, reap_orphans
from tests.e2e.harness import wait_for

pytestmark = pytest.mark.integration


def test_backoff_doubles_from_one_second_to_thirty_and_stays_there() -> None:
    b = Backoff()
    delays = [b.failed(now=0.0) for _ in range(8)]
    assert delays == [1, 2, 4, 8, 16, 30, 30, 30]
    assert not b.due(29.0) and b.due(30.0)
    for _ in range(5000):  # a failure that lasts for days does not overflow
        b.failed(now=0.0)
    b.reset()
    assert b.failed(now=0.0) == 1


def external(tmp_path: Path) -> Supervisor:
    """A supervisor that starts neither PostgreSQL nor a broker (both are "external")."""
    settings = Settings(
        DATABASE_URL="postgresql://unused/none",
        KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:1",
        var_dir=tmp_path / "var",
    )
    sup = Supervisor(settings)
    sup.run_dir.mkdir(parents=True, exist_ok=True)
    sup.log_dir.mkdir(parents=True, exist_ok=True)
    return sup


def test_a_service_that_keeps_failing_is_restarted_with_backoff_forever(tmp_path: Path) -> None:
    """The old supervisor gave up after five restarts in a minute and stopped the whole exchange
    (the memory-only broker with it). Now a failing service is only ever restarted later."""
    sup = external(tmp_path)
    flaky = Child(
        "flaky",
        argv=[sys.executable, "-c", "raise SystemExit(3)"],
        backoff=Backoff(first=0.01, cap=0.08),
    )
    sup.children = {"flaky": flaky}
    pids: set[int] = set()
    sup._take_lock()  # as start_infrastructure does first
    try:
        sup.start_services()

        def restarted_often() -> bool:
            sup.supervise()  # must never raise
            if flaky.process is not None:
                pids.add(flaky.process.pid)
            return len(pids) >= 12

        wait_for("a dozen restarts", restarted_often, timeout=60, interval=0.01)
        assert not sup.stopping
        assert (sup.run_dir / "exchange.json").exists()
    finally:
        sup.stop()
    assert not (sup.run_dir / "exchange.json").exists()


def test_what_a_dead_supervisor_left_running_is_stopped_and_nothing_else(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    orphans = {
        name: subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
        for name in ("gateway", "ledger")
    }
    try:
        wait_for("orphans started", lambda: all(start_time(p.pid) for p in orphans.values()))
        records = [
            {"name": n, "pid": p.pid, "started": start_time(p.pid)} for n, p in orphans.items()
        ]
        # a recorded pid the kernel has since given to another process: left alone
        records.append({"name": "matcher-1", "pid": os.getpid(), "started": "1"})
        (run / PROCESSES_FILE).write_text(json.dumps({"processes": records}))

        stopped = reap_orphans(run, timeout=20)

        assert sorted(stopped) == sorted(f"{n} (pid {p.pid})" for n, p in orphans.items())
        for p in orphans.values():
            assert p.wait(5) == -9
        assert not (run / PROCESSES_FILE).exists()
        assert reap_orphans(run) == []
    finally:
        for p in orphans.values():
            p.kill()
            p.wait()


def test_a_refused_start_leaves_the_running_exchange_s_state_alone(tmp_path: Path) -> None:
    first, second = external(tmp_path), external(tmp_path)
    try:
        first._take_lock()  # as start_infrastructure does first
        first.write_state()
        with pytest.raises(SystemExit, match="already running"):
            second.start_infrastructure()
        second.stop()
        assert (first.run_dir / "exchange.json").exists()
    finally:
        first.stop()
