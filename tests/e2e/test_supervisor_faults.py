"""Faults of the process tree itself: the supervisor killed, PostgreSQL killed and slow to come
back. The exchange must leave no orphans behind, and must come back by itself."""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path

import pytest

from tests import factories as f
from tests.e2e.harness import Exchange, alive, wait_for

pytestmark = pytest.mark.e2e


def test_killing_the_supervisor_takes_every_child_with_it(tmp_path: Path) -> None:
    """Issue case 2: `kill -9` of `exchange up` alone used to leave the gateway answering 202,
    the ledger archiving and the broker running, and the next `exchange up` started a second
    tree beside them. Now every child dies with it, and the next start finds a clean var dir."""
    var = tmp_path / "var"
    ex = Exchange(var).start()
    try:
        ex.wait_healthy()
        state = ex.state
        children = {name: int(pid) for name, pid in state["services"].items()}
        children["broker"] = int(state["broker_pid"])
        children["postgres"] = int(state["postgres_pid"])

        os.kill(int(state["supervisor_pid"]), signal.SIGKILL)
        assert ex.process is not None
        ex.process.wait(10)

        survivors: dict[str, int] = {}

        def all_gone() -> bool:
            survivors.clear()
            survivors.update({n: p for n, p in children.items() if alive(p)})
            return not survivors

        try:
            wait_for("every child of the killed supervisor to die", all_gone, timeout=30)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; still running: {survivors}") from None
    except BaseException:
        ex.kill_tree()
        raise

    again = Exchange(var)
    try:
        again.start()
        again.wait_healthy()
        assert "left these running" not in again.output.read_text(), "nothing was left"
    finally:
        again.stop()


def test_postgres_killed_and_unable_to_start_for_a_while_comes_back_by_itself(
    tmp_path: Path,
) -> None:
    """Issue case 3: PostgreSQL's death was not supervised; services crash-looped until the
    supervisor gave up and stopped everything, the memory-only broker included. Now PostgreSQL
    is restarted with back-off for as long as it fails (here its data directory is made
    unusable for a while, as a full disk would make it), the broker is never stopped, and the
    exchange is healthy again once PostgreSQL can start."""
    var = tmp_path / "var"
    ex = Exchange(var).start()
    pgdata = var / "pg"
    try:
        ex.wait_healthy()
        token = ex.create_org("community", "金陵名人居社区", "鼓楼区", "江东街道")
        state = ex.state
        broker_pid, postgres_pid = int(state["broker_pid"]), int(state["postgres_pid"])

        pgdata.chmod(0o000)  # PostgreSQL refuses a data directory with these permissions
        os.kill(postgres_pid, signal.SIGKILL)

        def failed_restarts() -> int:
            lines = ex.output.read_text().splitlines()
            return sum(line.startswith("PostgreSQL would not start") for line in lines)

        wait_for(
            "two failed restarts of PostgreSQL, each reported",
            lambda: failed_restarts() >= 2,
            timeout=60,
        )
        pgdata.chmod(0o700)

        wait_for(
            "a new PostgreSQL",
            lambda: ex.state.get("postgres_pid") not in (None, postgres_pid),
            timeout=60,
        )
        ex.wait_healthy()
        assert ex.process is not None and ex.process.poll() is None, "the supervisor went on"
        assert ex.state["broker_pid"] == broker_pid, "the broker was never stopped"
        assert "keeps failing" not in ex.output.read_text()

        with ex.http() as http:  # and postings are taken, decided and archived again
            auth = {"Authorization": f"Bearer {token}"}
            r = http.post("/v1/needs", json=f.volunteer_need(title="数据库重启之后"), headers=auth)
            assert r.status_code == 202, r.text
            need_id = r.json()["need_id"]
            wait_for(
                "the new need to be visible",
                lambda: http.get(f"/v1/needs/{need_id}", headers=auth).status_code == 200,
                timeout=60,
            )
    except BaseException:
        with contextlib.suppress(OSError):
            pgdata.chmod(0o700)
        try:
            print(ex.diagnostics())
        finally:
            ex.kill_tree()
        raise
    ex.stop()
