"""Tying every child's life to its supervisor's, and telling a live process from a reused pid.

Why: a supervisor killed with SIGKILL cannot stop its children. Left running, they go on
acknowledging postings (gateway) and writing positions (ledger) while a second `exchange up`
starts a new broker and restores beside them. So every child the supervisor starts is asked
to die with it, twice over:

- on Linux the kernel does it: `die_with_parent` is a `preexec_fn` that sets
  `PR_SET_PDEATHSIG`, so the child gets a signal the moment its parent *thread* exits (the
  supervisor starts every child from its main thread, which lives as long as it does);
- everywhere, a service also watches a pipe whose write end only the supervisor holds
  (`watch_supervisor`): when the supervisor is gone, however it died, the read end sees EOF
  and the service stops itself.

`start_time` and `same_process` recognise a recorded process again without trusting a bare
pid, which the kernel reuses.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1
SUPERVISOR_FD_ENV = "EXCHANGE_SUPERVISOR_FD"
"""Environment variable naming the read end of the supervisor's lifeline pipe in a service."""


def die_with_parent(sig: int) -> Callable[[], None] | None:
    """A `preexec_fn` that makes the kernel send `sig` to the child when its parent dies.

    Linux only (None elsewhere: the pipe watched by `watch_supervisor` still works). The setting
    survives `exec` and `Popen(user=...)` (Python changes the uid before calling preexec_fn, and
    a uid change after prctl would clear it). If the parent died between fork and prctl the
    child exits at once instead of starting as an orphan."""
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # resolved before fork, not in the child
    parent = os.getpid()

    def preexec() -> None:
        if prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
        if os.getppid() != parent:
            os._exit(1)

    return preexec


def start_time(pid: int) -> str | None:
    """When process `pid` started (clock ticks since boot, as text), or None if there is no
    such live process. A zombie counts as dead: here nothing may reap it for a while.

    Without /proc (not Linux) a live pid gives "" : identity then rests on the pid alone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return None
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        return ""
    if fields[0] in ("Z", "X"):
        return None
    return fields[19]  # field 22 of stat(5); fields[0] is field 3


def same_process(pid: int, started: str | None) -> bool:
    """True if `pid` is alive and is the process that was recorded starting at `started`."""
    now = start_time(pid)
    return now is not None and (not started or not now or now == started)


def wait_gone(pids: list[tuple[int, str | None]], timeout: float) -> list[int]:
    """Wait until none of the recorded processes is alive; return the pids still alive."""
    deadline = time.monotonic() + timeout
    while True:
        alive = [pid for pid, started in pids if same_process(pid, started)]
        if not alive or time.monotonic() >= deadline:
            return alive
        time.sleep(0.05)


def watch_supervisor(grace: float = 10.0) -> None:
    """In a service: stop when the supervisor that started it is gone.

    The supervisor passes the read end of a pipe whose write end only it holds; when it exits
    (even by SIGKILL) the kernel closes the write end and `read` returns EOF. The service is
    then sent SIGTERM (its usual clean stop) and, if it has not exited within `grace` seconds,
    leaves at once. Does nothing when the service was not started by a supervisor."""
    raw = os.environ.pop(SUPERVISOR_FD_ENV, None)
    if not raw:
        return
    fd = int(raw)

    def watch() -> None:
        with contextlib.suppress(OSError):
            while os.read(fd, 1):  # the supervisor never writes: this returns at EOF
                pass
        log.warning("the supervisor is gone; stopping")
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(grace)
        os._exit(75)

    threading.Thread(target=watch, name="supervisor-lifeline", daemon=True).start()
