"""Runs `exchange up` as a real process tree and talks to it over HTTP, as a user would."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import httpx

from services.embedded.broker import free_port

T = TypeVar("T")


def wait_for(
    what: str, probe: Callable[[], T | None], timeout: float = 120, interval: float = 0.2
) -> T:
    """Poll `probe` until it returns a truthy value; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = probe()
            if value:
                return value
        except (httpx.HTTPError, OSError, ValueError, LookupError) as exc:
            last_error = exc
        time.sleep(interval)
    raise AssertionError(
        f"timed out after {timeout}s waiting for {what} (last error: {last_error!r})"
    )


class Exchange:
    """One `exchange up` process tree on its own var dir and ports."""

    def __init__(self, var_dir: Path, demo: bool = False, http_port: int | None = None) -> None:
        self.var_dir = var_dir
        self.demo = demo
        self.http_port = http_port
        self.process: subprocess.Popen[bytes] | None = None
        self.output = var_dir / "supervisor.out"

    def start(self) -> Exchange:
        self.var_dir.mkdir(parents=True, exist_ok=True)
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL")
        }
        env.update({"EXCHANGE_VAR_DIR": str(self.var_dir), "PYTHONUNBUFFERED": "1"})
        # its own port: another exchange on this machine may hold the default 8000, and a
        # test that stops this one must not find the other answering there
        if self.http_port is not None:  # a restart keeps its address, as clients expect
            env["EXCHANGE_HTTP_PORT"] = str(self.http_port)
        env.setdefault("EXCHANGE_HTTP_PORT", str(free_port()))
        state = self.var_dir / "run" / "exchange.json"
        state.unlink(missing_ok=True)
        args = [sys.executable, "-m", "services.cli", "up"] + (["--demo"] if self.demo else [])
        with open(self.output, "ab") as out:
            self.process = subprocess.Popen(
                args,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        try:
            wait_for("the exchange to write its state file", state.exists, timeout=240)
        except AssertionError:
            self.kill_tree()
            raise
        return self

    def kill_tree(self) -> None:
        """Last resort after a failed start: SIGKILL the supervisor's process group (services,
        broker) and the PostgreSQL it started, so nothing outlives the test."""
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)
        pid_file = self.var_dir / "pg" / "postmaster.pid"
        with contextlib.suppress(FileNotFoundError, ValueError, IndexError, ProcessLookupError):
            os.kill(int(pid_file.read_text().splitlines()[0]), signal.SIGKILL)

    @property
    def state(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.var_dir / "run" / "exchange.json").read_text())
        return data

    @property
    def url(self) -> str:
        return str(self.state["http_url"])

    def http(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=10)

    def wait_healthy(self, timeout: float = 180) -> dict[str, Any]:
        def probe() -> dict[str, Any] | None:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"exchange exited: {self.output.read_text()[-3000:]}")
            if not self.state.get("ready"):
                return None
            r = httpx.get(f"{self.url}/healthz", timeout=5)
            return r.json() if r.status_code == 200 else None

        try:
            return wait_for("/healthz to answer 200", probe, timeout)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.diagnostics()}") from None

    def diagnostics(self, lines: int = 15) -> str:
        """The end of the supervisor's output and of every service log, for a failure message."""
        parts = []
        for path in [self.output, *sorted((self.var_dir / "logs").glob("*.log"))]:
            if path.exists():
                tail = path.read_text(errors="replace").splitlines()[-lines:]
                parts.append(f"--- {path.name}\n" + "\n".join(t[:400] for t in tail))
        return "\n".join(parts)

    def create_org(self, kind: str, name: str, district: str, street: str | None = None) -> str:
        """Register an organisation as the operator's command does; return its bearer token."""
        return self.create_orgs((kind, name, district, street))[0]

    def create_orgs(self, *orgs: tuple[str, str, str, str | None]) -> list[str]:
        """Register organisations (kind, name, district, street) as `exchange orgs create`
        does: `services.operator.register` as the command line, on the exchange's database,
        each its own transaction. In this process, without an interpreter start-up for each
        (a second apiece on two cores); the command itself, run as a process against a running
        exchange, is what docs/round-trip.sh does in the demo test, and its refusals are
        tested in tests/integration/test_org_names.py. Return the tokens in order."""
        from schemas.messages import OrgKind
        from services import operator
        from services.identity import COMMAND_LINE
        from services.platform.db import connect

        dsn = self.state["database_url"]

        async def register() -> list[str]:
            conn = await connect(dsn)
            try:
                tokens = []
                for kind, name, district, street in orgs:
                    kind_of = OrgKind(kind.replace("-", "_"))
                    _, token = await operator.register(
                        conn, COMMAND_LINE, kind_of, name, district, street
                    )
                    tokens.append(token)
                return tokens
            finally:
                await conn.close()

        # in a thread of its own: Playwright's sync API may keep an event loop running in this one
        with ThreadPoolExecutor(1) as pool:
            return pool.submit(asyncio.run, register()).result()

    def funded_community(
        self, foundation: str = "基准基金会", community: str = "基准社区", fen: int = 10**12
    ) -> str:
        """A foundation with a large fund that any money need in 鼓楼区 may draw on; the token
        of a community there that posts them (benches and tests that need a proposal)."""
        from tests import factories as f

        founder, poster = self.create_orgs(
            ("foundation", foundation, "鼓楼区", None),
            ("community", community, "鼓楼区", "江东街道"),
        )
        with httpx.Client(base_url=self.url, timeout=30) as http:
            h = {"Authorization": f"Bearer {founder}"}
            r = http.post("/v1/funds", json=f.fund(), headers=h)
            assert r.status_code in (201, 202), r.text
            fund = r.json()["fund_id"]
            r = http.post(f"/v1/funds/{fund}/donations", json=f.donation(fen), headers=h)
            assert r.status_code == 202, r.text
        return poster

    def pids(self) -> list[int]:
        """Every process of the exchange: supervisor, services, broker, PostgreSQL postmaster."""
        s = self.state
        pids = [s["supervisor_pid"], *s["services"].values()]
        pids += [p for p in (s.get("broker_pid"), s.get("postgres_pid")) if p]
        return [int(p) for p in pids]

    def kill_everything(self) -> None:
        """SIGKILL every process of the exchange at once, PostgreSQL included."""
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if self.process is not None:
            self.process.wait(10)
        for pid in self.pids():
            wait_for(f"process {pid} to be gone", lambda p=pid: not alive(p), timeout=20)

    def stop(self, timeout: float = 60) -> int:
        """Ctrl-C, as a person would; returns the exit code."""
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.process.send_signal(signal.SIGINT)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill_tree()
            raise


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie still answers kill(0); treat it as gone
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except FileNotFoundError:
        return False
