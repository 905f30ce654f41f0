"""The auditor's long checks as background jobs in the gateway process: one at a time per kind.

Why jobs and not a request that waits: verify and replay read the whole archive; a page that
waited for them would time out on a large log and hold a browser tab hostage. A job runs in its
own thread with its own event loop and database connection (services/web/auditor_data.py), so
the gateway's loop keeps answering; the page shows the job's progress and re-reads itself
(`data-refresh`, services/web/static/app.js) until it is done.

The state machine is pure and kept in memory: `running` → `done` (a result) or `failed` (a
reason). Starting a kind that is already running returns the running job (a second click, or a
second auditor, never starts a second scan). Results are the last of each kind since the
gateway started; a restart forgets them, and the page then says "not checked yet".
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

KINDS = ("verify", "invariants", "sequences", "replay")
"""The checks an auditor can run again from the pages."""

Work = Callable[["Job"], dict[str, Any]]
"""A check: runs (blocking) in a thread, reports progress on the job, returns its result."""


class JobStateError(RuntimeError):
    """A transition the state machine does not allow (a finished job changed again)."""


@dataclass
class Job:
    """One run of a check: its progress while it runs, then its result or why it failed."""

    kind: str
    started_at: datetime
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    state: str = "running"
    done: int = 0
    total: int | None = None
    finished_at: datetime | None = None
    result: dict[str, Any] | None = None
    error: str | None = None

    @property
    def running(self) -> bool:
        return self.state == "running"

    @property
    def percent(self) -> int | None:
        """How far along, 0–100, when the total is known (never 100 before it is done)."""
        if self.state == "done":
            return 100
        if not self.total:
            return None
        return min(99, 100 * self.done // self.total)

    def advance(self, done: int, total: int | None = None) -> None:
        """Progress: `done` units of `total` (ignored once finished: a late report from the
        worker's thread must not reopen a job)."""
        if not self.running:
            return
        self.done = max(self.done, done)
        if total is not None:
            self.total = total

    def finish(self, result: dict[str, Any], at: datetime) -> None:
        """The check ran to its end; `result` says what it found."""
        if not self.running:
            raise JobStateError(f"{self.kind} job {self.id} is already {self.state}")
        self.state, self.result, self.finished_at = "done", result, at

    def fail(self, error: str, at: datetime) -> None:
        """The check could not run (no database, no pinned key …): `error` says why."""
        if not self.running:
            raise JobStateError(f"{self.kind} job {self.id} is already {self.state}")
        self.state, self.error, self.finished_at = "failed", error, at


class JobBoard:
    """The latest job of each kind; at most one running per kind."""

    def __init__(self) -> None:
        self.latest: dict[str, Job] = {}
        self._lock = threading.Lock()

    def begin(self, kind: str, now: datetime) -> tuple[Job, bool]:
        """The running job of `kind`, or a new one: (job, whether it is new). Pure apart from
        the board itself; the caller starts the work only for a new job."""
        if kind not in KINDS:
            raise ValueError(f"no such check: {kind}")
        with self._lock:
            current = self.latest.get(kind)
            if current is not None and current.running:
                return current, False
            job = Job(kind, now)
            self.latest[kind] = job
            return job, True

    def start(self, kind: str, work: Work) -> Job:
        """Begin `kind` and run `work` in a daemon thread (a gateway stopping mid-check does not
        wait for it); the job is finished or failed from the event loop's thread."""
        job, new = self.begin(kind, datetime.now(UTC))
        if not new:
            return job
        loop = asyncio.get_running_loop()

        def run() -> None:
            try:
                result = work(job)
            except Exception as exc:  # the job's answer, not the gateway's crash
                loop.call_soon_threadsafe(_fail, job, f"{type(exc).__name__}: {exc}")
            else:
                loop.call_soon_threadsafe(_finish, job, result)

        threading.Thread(target=run, name=f"audit-{kind}", daemon=True).start()
        return job


def _finish(job: Job, result: dict[str, Any]) -> None:
    job.finish(result, datetime.now(UTC))


def _fail(job: Job, error: str) -> None:
    job.fail(error, datetime.now(UTC))
