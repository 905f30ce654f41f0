"""`exchange up`: the whole exchange on one machine, supervised, stopped cleanly by Ctrl-C.

Order of start: the var dir's lock, then any process left by an earlier supervisor that died
is stopped, then PostgreSQL, broker, migrations, topics, restore (an empty broker is refilled
from PostgreSQL), then the services as child processes, then /healthz, then the demo. Each
process runs as production runs a service (`exchange services run NAME`); the intake services
and the router share one process unless `EXCHANGE_COMPOSITION=apart` (services/composition.py).

Every child dies with the supervisor (`services.platform.lifeline`). A child that dies is
restarted after a back-off that doubles from 1 s to 30 s; nothing ever gives up, so an exchange
whose database was unreachable, or whose disk was full, comes back by itself once the cause is
gone. PostgreSQL is restarted if it dies (then every service); the broker if it dies (then
every service, after a restore).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal

import httpx

from services.composition import members, processes
from services.embedded.broker import EmbeddedBroker, free_port
from services.embedded.postgres import EmbeddedPostgres
from services.platform.db import forget_readiness, migrate
from services.platform.kafka import ensure_topics
from services.platform.lifeline import (
    SUPERVISOR_FD_ENV,
    die_with_parent,
    same_process,
    start_time,
    wait_gone,
)
from services.restore import restore_if_empty
from services.settings import Settings

log = logging.getLogger(__name__)

RESTART_FIRST_DELAY = 1.0
"""Seconds before the first restart of something that died."""
RESTART_MAX_DELAY = 30.0
"""The back-off doubles up to this, and stays there for as long as the failure lasts."""
STABLE_AFTER = 60.0
"""A service that ran this long before dying starts its back-off again from the first delay."""
PROCESSES_FILE = "processes.json"
"""var/run/processes.json: every process this supervisor started, with its start time."""

Health = Literal["up", "down", "restarted"]


@dataclass
class Backoff:
    """Exponential back-off: `first`, doubling on each failure, capped at `cap`. Never gives up:
    what fails because of something outside (a full disk, a database restarting) must come back
    by itself once that is fixed, without anyone restarting the exchange."""

    first: float = RESTART_FIRST_DELAY
    cap: float = RESTART_MAX_DELAY
    failures: int = 0
    not_before: float = 0.0

    def failed(self, now: float) -> float:
        """Record a failure at `now`; return the delay before the next attempt."""
        delay = min(self.cap, self.first * 2.0 ** min(self.failures, 32))
        self.failures += 1
        self.not_before = now + delay
        return delay

    def due(self, now: float) -> bool:
        """True once the delay after the last failure has passed."""
        return now >= self.not_before

    def reset(self) -> None:
        """It worked: the next failure waits `first` again."""
        self.failures = 0
        self.not_before = 0.0


@dataclass
class Child:
    """One service process, its back-off and when it is due to be started again."""

    name: str
    argv: list[str] | None = None
    """The command; None: `python -m services.cli services run NAME`."""
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    backoff: Backoff = field(default_factory=Backoff)
    restart_at: float | None = None
    log: IO[bytes] | None = None

    @property
    def command(self) -> list[str]:
        """How to start it."""
        return self.argv or [sys.executable, "-m", "services.cli", "services", "run", self.name]


class Supervisor:
    """Owns the embedded broker and database (when it started them) and every service process."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.var = settings.var_dir.resolve()
        self.run_dir = self.var / "run"
        self.log_dir = self.var / "logs"
        self.broker: EmbeddedBroker | None = None
        self.postgres: EmbeddedPostgres | None = None
        self.children = {name: Child(name) for name in processes(settings.composition)}
        self.stopping = False
        self.bootstrap = settings.kafka_bootstrap_servers or ""
        self.demo_sign_ins: dict[str, str] = {}
        """Role → token printed after a demo load, for the web app's sign-in page."""
        self.database_url = settings.database_url or ""
        self.http_port = 0
        self.ready = False
        self._lock: IO[str] | None = None
        self.postgres_backoff = Backoff()
        self.broker_backoff = Backoff()
        self._postgres_down = False
        self._broker_lost = False
        # the lifeline: children get the read end; only this process holds the write end, so
        # they see EOF the moment it is gone, however it died (both ends are not inheritable)
        self._lifeline_read, self._lifeline_write = os.pipe()

    # ---- start ----

    def _take_lock(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        # held open for the supervisor's lifetime: the lock is the open file
        lock = open(self.run_dir / "exchange.lock", "w")  # noqa: SIM115
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            raise SystemExit(f"another exchange is already running on {self.var}") from None
        self._lock = lock

    def start_infrastructure(self) -> None:
        """Database, broker, schema, topics and (for an empty broker) the restore.

        Before any of it, processes left running by an earlier supervisor on this var dir that
        died are stopped: a restore beside a live ledger or gateway would rewrite positions
        under the ledger and publish beside a gateway nobody supervises."""
        self._take_lock()
        self.log_dir.mkdir(parents=True, exist_ok=True)
        stopped = reap_orphans(self.run_dir)
        if stopped:
            say("stopped what an earlier exchange left running: " + ", ".join(stopped))
        if not self.database_url:
            say("starting embedded PostgreSQL …")
            self.postgres = self._start_postgres(attempts=10)
            self.database_url = self.postgres.url
            self.write_processes()
        if not self.settings.kafka_bootstrap_servers:
            self._start_broker()
            self.write_processes()
        asyncio.run(_prepare_database(self.database_url))
        self._prepare_broker()

    def _start_postgres(self, attempts: int) -> EmbeddedPostgres:
        return EmbeddedPostgres.start(
            self.var / "pg", attempts=attempts, log_path=self.log_dir / "postgres.log"
        )

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
        """The environment every service process gets: where Kafka, PostgreSQL and HTTP are,
        and the lifeline to watch."""
        return {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "DATABASE_URL": self.database_url,
            "EXCHANGE_HTTP_PORT": str(self.http_port),
            "EXCHANGE_HTTP_HOST": self.settings.http_host,
            "EXCHANGE_VAR_DIR": str(self.var),
            "PYTHONUNBUFFERED": "1",
            SUPERVISOR_FD_ENV: str(self._lifeline_read),
        }

    def start_child(self, child: Child) -> None:
        """Start one service. The kernel SIGKILLs it if this process dies (Linux); everywhere
        it stops itself when the lifeline pipe closes. SIGKILL, not a clean stop: every
        service is built to survive kill -9, and what matters is that it is gone before
        another `exchange up` restores beside it."""
        if child.log is None:
            child.log = open(self.log_dir / f"{child.name}.log", "ab")  # noqa: SIM115 (closed in stop)
        child.started_at = time.monotonic()
        child.restart_at = None
        child.process = subprocess.Popen(
            child.command,
            env=self.child_env(),
            stdout=child.log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            pass_fds=(self._lifeline_read,),
            preexec_fn=die_with_parent(signal.SIGKILL),
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
        has finished starting (healthy, demo loaded): the readiness signal for scripts.

        A failed write (a full disk) is reported, not raised: the supervisor must keep
        supervising, and the next change writes the file again."""
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
        self._write_json("exchange.json", state)
        self.write_processes()

    def write_processes(self) -> None:
        """var/run/processes.json: every process this supervisor started, with its start time,
        so that a later `exchange up` can find them (and only them) if this one dies."""
        procs: list[tuple[str, int]] = []
        if self.postgres is not None and self.postgres.pid:
            procs.append(("postgres", self.postgres.pid))
        if self.broker is not None:
            procs.append(("broker", self.broker.process.pid))
        procs += [(c.name, c.process.pid) for c in self.children.values() if c.process]
        self._write_json(
            PROCESSES_FILE,
            {
                "supervisor": {"pid": os.getpid(), "started": start_time(os.getpid())},
                "processes": [
                    {"name": name, "pid": pid, "started": start_time(pid)}
                    for name, pid in procs
                    if start_time(pid) is not None
                ],
            },
        )

    def _write_json(self, name: str, data: dict[str, Any]) -> None:
        tmp = self.run_dir / (name + ".tmp")
        try:
            tmp.write_text(json.dumps(data, indent=2))
            tmp.replace(self.run_dir / name)
        except OSError as exc:
            say(f"warning: could not write {self.run_dir / name}: {exc}")

    def wait_healthy(self, note_every: float = 60) -> dict[str, Any] | None:
        """Poll /healthz until 200 (None if asked to stop meanwhile), supervising meanwhile.

        No deadline: a service that cannot start yet (database unreachable, disk full) is
        restarted with back-off until it can; every `note_every` seconds the person at the
        terminal is told what /healthz still says."""
        started = time.monotonic()
        next_note = started + note_every
        last: dict[str, Any] = {}
        while not self.stopping:
            self.supervise()
            try:
                r = httpx.get(f"{self.http_url}/healthz", timeout=2)
                last = r.json()
                if r.status_code == 200:
                    return last
            except (httpx.HTTPError, ValueError):
                pass
            if time.monotonic() >= next_note:
                next_note += note_every
                say(
                    f"not healthy yet after {time.monotonic() - started:.0f}s; still trying "
                    f"(logs in {self.log_dir}; details: exchange status): "
                    f"{json.dumps(last)[:300]}"
                )
            time.sleep(0.25)
        return None

    # ---- run ----

    def supervise(self) -> None:
        """One round: restart PostgreSQL or the broker if they died, then any service that died
        and whose back-off has passed. Never raises for a failure of what it supervises and
        never stops anything because something keeps failing."""
        if self.stopping:
            return
        now = time.monotonic()
        database = self._keep_postgres(now)
        broker = self._keep_broker(now, database_up=database != "down")
        if broker == "down":
            return  # the services are stopped until the new broker is restored
        if "restarted" in (database, broker):
            self.restart_services()
            return
        self._keep_services(now)

    def _keep_postgres(self, now: float) -> Health:
        """Restart the embedded PostgreSQL if it died, with back-off (a full disk can keep it
        from starting for a long time). The services are left alone meanwhile: those that
        need it fail and are restarted with their own back-off."""
        pg = self.postgres
        if pg is None or pg.alive():
            return "up"
        if not self._postgres_down:
            self._postgres_down = True
            say(f"PostgreSQL stopped (exit status {pg.returncode}); restarting it")
        if not self.postgres_backoff.due(now):
            return "down"
        try:
            self.postgres = self._start_postgres(attempts=1)
        except Exception as exc:
            delay = self.postgres_backoff.failed(now)
            say(
                f"PostgreSQL would not start (attempt {self.postgres_backoff.failures}): {exc}; "
                f"trying again in {delay:g}s"
            )
            return "down"
        self.postgres_backoff.reset()
        self._postgres_down = False
        self.database_url = self.postgres.url
        say("PostgreSQL restarted; restarting every service")
        return "restarted"

    def _keep_broker(self, now: float, database_up: bool) -> Health:
        """Restart the embedded broker if it died. It forgets everything, so every service is
        stopped first (and waited for: no old ledger may run during a restore), the new broker
        is restored from PostgreSQL, and only then are the services started again. A restore
        that fails is thrown away with its broker and retried with back-off."""
        broker = self.broker
        if broker is None:
            return "up"
        if not self._broker_lost:
            if broker.alive():
                return "up"
            self._broker_lost = True
            say("embedded broker stopped; restarting it and every service (it forgets all)")
            self.stop_children()
        if not database_up or not self.broker_backoff.due(now):
            return "down"
        try:
            if not broker.alive():
                self._start_broker()
                self.write_processes()
            self._prepare_broker()
        except Exception as exc:
            if self.broker is not None:  # never leave a half-restored broker to be reused
                self.broker.stop()
            delay = self.broker_backoff.failed(now)
            say(
                f"broker restart failed (attempt {self.broker_backoff.failures}): {exc!r}; "
                f"trying again in {delay:g}s"
            )
            return "down"
        self.broker_backoff.reset()
        self._broker_lost = False
        return "restarted"

    def _keep_services(self, now: float) -> None:
        """Restart each service that died once its back-off has passed. A service that ran for
        `STABLE_AFTER` seconds before dying starts again from the first delay."""
        changed = False
        for child in self.children.values():
            if child.process is None:
                continue  # not started yet
            if child.restart_at is not None:
                if now < child.restart_at:
                    continue
                say(f"restarting service {child.name} (attempt {child.backoff.failures})")
                try:
                    self.start_child(child)
                    changed = True
                except OSError as exc:
                    delay = child.backoff.failed(now)
                    child.restart_at = now + delay
                    say(f"could not start {child.name}: {exc}; trying again in {delay:g}s")
                continue
            code = child.process.poll()
            if code is None:
                continue
            if now - child.started_at >= STABLE_AFTER:
                child.backoff.reset()
            delay = child.backoff.failed(now)
            child.restart_at = now + delay
            say(
                f"service {child.name} exited ({code}); restarting in {delay:g}s; "
                f"see {self.log_dir / (child.name + '.log')}"
            )
        if changed:
            self.write_state()

    def restart_services(self) -> None:
        """Stop every service (waiting until each is gone), then start them all afresh: after
        the database or the broker came back, with fresh connections and back-offs."""
        self.stop_children()
        for child in self.children.values():
            child.backoff.reset()
            self.start_child(child)
        self.write_state()

    def load_demo_supervised(self) -> None:
        """Load the demo from a thread while this one keeps the services running."""
        import threading

        from services.demo.loader import load_demo

        result: dict[str, str] = {}

        def work() -> None:
            try:
                result["summary"] = load_demo(
                    self.http_url, self.database_url, sign_ins=self.demo_sign_ins
                )
            except Exception as exc:
                result["error"] = str(exc)

        thread = threading.Thread(target=work, name="demo", daemon=True)
        thread.start()
        while thread.is_alive() and not self.stopping:
            self.supervise()
            thread.join(0.25)
        if "error" in result:
            raise RuntimeError(result["error"])
        if "summary" in result:
            say(result["summary"])

    def serve_forever(self) -> None:
        """Watch the services until SIGINT or SIGTERM."""
        while not self.stopping:
            self.supervise()
            time.sleep(0.5)

    # ---- stop ----

    def stop_children(self, timeout: float = 20) -> None:
        """SIGTERM every service, wait, SIGKILL what is left; return only when all are gone."""
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
        for c in self.children.values():
            c.restart_at = None

    def stop(self) -> None:
        """Stop services, then the broker, then PostgreSQL. Removes the state files only if
        this process held the var dir's lock (else they describe another, live exchange)."""
        self.stopping = True
        self.stop_children()
        if self.broker:
            self.broker.stop()
        if self.postgres:
            self.postgres.stop()
        for child in self.children.values():
            if child.log:
                child.log.close()
        for fd in (self._lifeline_read, self._lifeline_write):
            with contextlib.suppress(OSError):
                os.close(fd)
        if self._lock is not None:
            (self.run_dir / "exchange.json").unlink(missing_ok=True)
            (self.run_dir / PROCESSES_FILE).unlink(missing_ok=True)


def reap_orphans(run_dir: Path, timeout: float = 60) -> list[str]:
    """Stop every process recorded in run_dir/processes.json that is still alive; return their
    names. Call it holding the var dir's lock: the supervisor that recorded them is then dead.

    Why stop rather than refuse or adopt: nothing supervises them any more, a memory-only broker
    and services whose supervisor is gone cannot be taken over (no handle to wait on, no way to
    know what they were doing), and refusing would leave the same clean-up to the operator.
    Stopping them is safe: every service is built to survive kill -9, so they get SIGKILL;
    PostgreSQL gets a fast shutdown (SIGINT). Raises SystemExit if any will not go, since
    nothing may start beside them."""
    path = run_dir / PROCESSES_FILE
    try:
        recorded = json.loads(path.read_text()).get("processes", [])
    except (FileNotFoundError, ValueError, AttributeError):
        return []
    live = [
        (str(p["name"]), int(p["pid"]), p.get("started"))
        for p in recorded
        if same_process(int(p["pid"]), p.get("started"))
    ]
    found = [f"{name} (pid {pid})" for name, pid, _ in live]
    if live:
        say(
            "an earlier exchange on this var dir died and left these running: "
            + ", ".join(f"{name} (pid {pid})" for name, pid, _ in live)
            + "; stopping them before anything starts"
        )
    for sig in (None, signal.SIGQUIT):
        for name, pid, _ in live:
            first = signal.SIGINT if name == "postgres" else signal.SIGKILL
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig or first)
        left = set(wait_gone([(pid, started) for _, pid, started in live], timeout))
        live = [p for p in live if p[1] in left]
        if not live:
            break
    if live:
        raise SystemExit(
            "could not stop processes of an earlier exchange: "
            + ", ".join(f"{name} (pid {pid})" for name, pid, _ in live)
            + "; stop them by hand, then run `exchange up` again"
        )
    path.unlink(missing_ok=True)
    return found


def say(message: str) -> None:
    """One line for the person at the terminal.

    Never raises: the terminal may be a file on the disk that just filled up (or a closed
    pipe), and a supervisor that died of a failed print took the whole exchange with it
    (found by the fault suite's full-disk test, where its output is a file in the var dir)."""
    with contextlib.suppress(OSError, ValueError):
        print(message, flush=True)


async def _prepare_database(dsn: str) -> None:
    """Migrate, then mark every service not ready (`forget_readiness`): in one event loop."""
    await migrate(dsn)
    await forget_readiness(dsn)


def _described(children: dict[str, Child]) -> list[str]:
    """Each process by name, with the services it runs when it runs several."""
    out = []
    for name in children:
        inside = members(name)
        out.append(name if inside == (name,) else f"{name} ({', '.join(inside)})")
    return out


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
        say("starting services: " + ", ".join(_described(sup.children)) + " …")
        if sup.wait_healthy() is None:
            return 130
        if demo:
            sup.load_demo_supervised()
        sup.ready = True
        sup.write_state()
        say("")
        say(f"Community Exchange is up.  Web app: {sup.http_url}/")
        say(f"                           API:     {sup.http_url}/v1")
        say(f"                           Docs:    {sup.http_url}/docs")
        say(f"                           Health:  {sup.http_url}/healthz")
        say(f"                           Metrics: {sup.http_url}/metrics")
        if sup.demo_sign_ins:
            say("Demo sign-ins (paste one on the web app's sign-in page):")
            for role, token in sup.demo_sign_ins.items():
                if role != "operator":
                    say(f"  {role:<27} {token}")
            if "operator" in sup.demo_sign_ins:
                say(
                    "The operator's token (the API's /v1/orgs: register and suspend organisations):"
                )
                say(f"  {'operator':<27} {sup.demo_sign_ins['operator']}")
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
