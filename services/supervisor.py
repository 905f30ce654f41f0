"""`exchange up`: the whole exchange on one machine, supervised, stopped cleanly by Ctrl-C.

Order of start: PostgreSQL, broker, migrations, topics, restore (an empty broker is refilled
from PostgreSQL), then the services as child processes, then /healthz, then the demo. Each
service runs exactly as production runs it (`exchange services run NAME`), one process each.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import IO, Any

import httpx

from services import SERVICES
from services.embedded.broker import EmbeddedBroker, free_port
from services.embedded.postgres import EmbeddedPostgres
from services.platform.db import migrate
from services.platform.kafka import ensure_topics
from services.restore import restore_if_empty
from services.settings import Settings

log = logging.getLogger(__name__)

RESTARTS_PER_MINUTE = 5


@dataclass
class Child:
    """One service process and its restart history."""

    name: str
    process: subprocess.Popen[bytes] | None = None
    restarts: list[float] = field(default_factory=list)
    log: IO[bytes] | None = None


class Supervisor:
    """Owns the embedded broker and database (when it started them) and every service process."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.var = settings.var_dir.resolve()
        self.run_dir = self.var / "run"
        self.log_dir = self.var / "logs"
        self.broker: EmbeddedBroker | None = None
        self.postgres: EmbeddedPostgres | None = None
        self.children = {name: Child(name) for name in SERVICES}
        self.stopping = False
        self.bootstrap = settings.kafka_bootstrap_servers or ""
        self.database_url = settings.database_url or ""
        self.http_port = 0
        self.ready = False
        self._lock: IO[str] | None = None

    # ---- start ----

    def _take_lock(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        # held open for the supervisor's lifetime: the lock is the open file
        self._lock = open(self.run_dir / "exchange.lock", "w")  # noqa: SIM115
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SystemExit(f"another exchange is already running on {self.var}") from None

    def start_infrastructure(self) -> None:
        """Database, broker, schema, topics and (for an empty broker) the restore."""
        self._take_lock()
        self.log_dir.mkdir(parents=True, exist_ok=True)
        if not self.database_url:
            say("starting embedded PostgreSQL …")
            self.postgres = EmbeddedPostgres.start(self.var / "pg")
            self.database_url = self.postgres.url
        if not self.settings.kafka_bootstrap_servers:
            self._start_broker()
        asyncio.run(migrate(self.database_url))
        self._prepare_broker()

    def _start_broker(self) -> None:
        say("starting embedded broker (Tansu) …")
        self.broker = EmbeddedBroker.start(self.log_dir / "broker.log")
        self.bootstrap = self.broker.bootstrap

    def _prepare_broker(self) -> None:
        ensure_topics(self.bootstrap)
        report = asyncio.run(restore_if_empty(self.bootstrap, self.database_url))
        if not report.skipped and (report.archived or report.postings):
            say(
                f"broker restored from PostgreSQL: {report.archived} archived events, "
                f"{report.postings} postings not yet archived, "
                f"{report.snapshots_dropped} matcher snapshots dropped (the matcher replays "
                "its partitions from the start)"
            )

    def child_env(self) -> dict[str, str]:
        """The environment every service process gets: where Kafka, PostgreSQL and HTTP are."""
        return {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "DATABASE_URL": self.database_url,
            "EXCHANGE_HTTP_PORT": str(self.http_port),
            "EXCHANGE_HTTP_HOST": self.settings.http_host,
            "EXCHANGE_VAR_DIR": str(self.var),
            "PYTHONUNBUFFERED": "1",
        }

    def start_child(self, child: Child) -> None:
        """Start one service as `python -m services.cli services run NAME`."""
        if child.log is None:
            child.log = open(self.log_dir / f"{child.name}.log", "ab")  # noqa: SIM115 (closed in stop)
        child.process = subprocess.Popen(
            [sys.executable, "-m", "services.cli", "services", "run", child.name],
            env=self.child_env(),
            stdout=child.log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )

    def start_services(self) -> None:
        """Start every service and record where everything is for other commands and tests."""
        if not self.http_port:
            self.http_port = self.settings.http_port or free_port(self.settings.http_host, 8000)
        for child in self.children.values():
            self.start_child(child)
        self.write_state()

    @property
    def http_url(self) -> str:
        """Base URL of the gateway."""
        return f"http://{self.settings.http_host}:{self.http_port}"

    def write_state(self) -> None:
        """var/run/exchange.json: URLs and process ids of this running exchange, and whether it
        has finished starting (healthy, demo loaded): the readiness signal for scripts."""
        state: dict[str, Any] = {
            "ready": self.ready,
            "supervisor_pid": os.getpid(),
            "http_url": self.http_url,
            "kafka_bootstrap_servers": self.bootstrap,
            "database_url": self.database_url,
            "broker_pid": self.broker.process.pid if self.broker else None,
            "postgres_pid": self.postgres.pid if self.postgres else None,
            "services": {c.name: c.process.pid for c in self.children.values() if c.process},
        }
        tmp = self.run_dir / "exchange.json.tmp"
        tmp.write_text(json.dumps(state, indent=2))
        tmp.replace(self.run_dir / "exchange.json")

    def wait_healthy(self, timeout: float = 180) -> dict[str, Any] | None:
        """Poll /healthz until 200 (None if asked to stop meanwhile); fail if a service keeps
        dying or the deadline passes."""
        deadline = time.monotonic() + timeout
        last: dict[str, Any] = {}
        while time.monotonic() < deadline and not self.stopping:
            self.check_children()
            try:
                r = httpx.get(f"{self.http_url}/healthz", timeout=2)
                last = r.json()
                if r.status_code == 200:
                    return last
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(0.25)
        if self.stopping:
            return None
        raise RuntimeError(f"exchange not healthy after {timeout}s: {json.dumps(last)}")

    # ---- run ----

    def check_children(self) -> None:
        """Restart a service that died; give up if it dies too often, restart all on broker loss."""
        if self.broker is not None and not self.broker.alive():
            say("embedded broker stopped; restarting it and every service (it forgets all)")
            self.stop_children()
            self._start_broker()
            self._prepare_broker()
            for child in self.children.values():
                self.start_child(child)
            self.write_state()
            return
        for child in self.children.values():
            if child.process is None or child.process.poll() is None or self.stopping:
                continue
            now = time.monotonic()
            child.restarts = [t for t in child.restarts if now - t < 60] + [now]
            if len(child.restarts) > RESTARTS_PER_MINUTE:
                raise RuntimeError(
                    f"service {child.name} keeps failing; see "
                    f"{self.log_dir / (child.name + '.log')}"
                )
            say(f"service {child.name} exited ({child.process.returncode}); restarting")
            self.start_child(child)
            self.write_state()

    def load_demo_supervised(self) -> None:
        """Load the demo from a thread while this one keeps the services running."""
        import threading

        from services.demo.loader import load_demo

        result: dict[str, str] = {}

        def work() -> None:
            try:
                result["summary"] = load_demo(self.http_url, self.database_url)
            except Exception as exc:
                result["error"] = str(exc)

        thread = threading.Thread(target=work, name="demo", daemon=True)
        thread.start()
        while thread.is_alive() and not self.stopping:
            self.check_children()
            thread.join(0.25)
        if "error" in result:
            raise RuntimeError(result["error"])
        if "summary" in result:
            say(result["summary"])

    def serve_forever(self) -> None:
        """Watch the services until SIGINT or SIGTERM."""
        while not self.stopping:
            self.check_children()
            time.sleep(0.5)

    # ---- stop ----

    def stop_children(self, timeout: float = 20) -> None:
        """SIGTERM every service, wait, SIGKILL what is left."""
        procs = [
            c.process for c in self.children.values() if c.process and c.process.poll() is None
        ]
        for p in procs:
            p.terminate()
        deadline = time.monotonic() + timeout
        for p in procs:
            try:
                p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def stop(self) -> None:
        """Stop services, then the broker, then PostgreSQL."""
        self.stopping = True
        self.stop_children()
        if self.broker:
            self.broker.stop()
        if self.postgres:
            self.postgres.stop()
        for child in self.children.values():
            if child.log:
                child.log.close()
        state = self.run_dir / "exchange.json"
        state.unlink(missing_ok=True)


def say(message: str) -> None:
    """One line for the person at the terminal."""
    print(message, flush=True)


def up(settings: Settings, demo: bool) -> int:
    """Run the whole exchange until Ctrl-C. Returns the process exit code."""
    sup = Supervisor(settings)

    def _stop(signum: int, frame: object) -> None:
        sup.stopping = True

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    try:
        sup.start_infrastructure()
        sup.start_services()
        say("starting services: " + ", ".join(SERVICES) + " …")
        if sup.wait_healthy() is None:
            return 130
        if demo:
            sup.load_demo_supervised()
        sup.ready = True
        sup.write_state()
        say("")
        say(f"Community Exchange is up.  API:     {sup.http_url}/v1")
        say(f"                           Docs:    {sup.http_url}/docs")
        say(f"                           Health:  {sup.http_url}/healthz")
        say(f"                           Metrics: {sup.http_url}/metrics")
        say(f"Logs in {sup.log_dir}. Press Ctrl-C to stop.")
        sup.serve_forever()
        return 0
    except RuntimeError as exc:
        say(f"error: {exc}")
        return 1
    finally:
        say("stopping …")
        sup.stop()
        say("stopped.")
