"""`kill -USR1 PID`: log where every asyncio task and thread of a service is waiting.

Why: a service that is alive but makes no progress (not ready, nothing logged) shows only an
idle event loop to a sampling profiler; the question is which `await` each task is parked on.
Faust workers answer SIGUSR1 the same way (mode's `cry`); this gives the plain asyncio services
(the matcher workers, the ledger) the same tool, for operators and for the fault suite.
"""

from __future__ import annotations

import asyncio
import io
import logging
import signal
import sys
import threading
import traceback

log = logging.getLogger(__name__)


def describe_tasks(loop: asyncio.AbstractEventLoop) -> str:
    """Every pending task's name and stack, then every thread's stack, as one text."""
    out = io.StringIO()
    tasks = sorted(asyncio.all_tasks(loop), key=lambda t: t.get_name())
    out.write(f"{len(tasks)} asyncio tasks\n")
    for task in tasks:
        out.write(f"--- task {task.get_name()}\n")
        out.write(await_chain(task.get_coro()))
    frames = sys._current_frames()
    for thread in threading.enumerate():
        frame = frames.get(thread.ident or -1)
        out.write(f"--- thread {thread.name}\n")
        if frame is not None:
            out.write("".join(traceback.format_stack(frame, limit=30)))
    return out.getvalue()


def await_chain(coro: object) -> str:
    """Where a coroutine is suspended, outermost first, down the chain of awaits.
    (`Task.print_stack` shows only the outermost frame of a suspended coroutine.)"""
    lines = []
    seen = 0
    while coro is not None and seen < 60:
        seen += 1
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
        if frame is not None:
            code = frame.f_code
            lines.append(f"  {code.co_filename}:{frame.f_lineno} in {code.co_name}\n")
        nxt = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
        if nxt is None or not (hasattr(nxt, "cr_frame") or hasattr(nxt, "gi_frame")):
            if nxt is not None:
                lines.append(f"  awaiting {nxt!r}\n"[:400])
            break
        coro = nxt
    return "".join(lines)


def install(loop: asyncio.AbstractEventLoop) -> None:
    """Log `describe_tasks` at WARNING whenever the process receives SIGUSR1."""

    def dump() -> None:
        log.warning("task dump (SIGUSR1)", extra={"dump": describe_tasks(loop)})

    loop.add_signal_handler(signal.SIGUSR1, dump)


__all__ = ["describe_tasks", "install"]
