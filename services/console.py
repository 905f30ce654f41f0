"""The `exchange` console script: what an operator types, made quick to start and to end.

An operator's one-shot command (`exchange orgs create`) has a 0.3-s budget (bench/one_shot.py),
and most of it is Python starting and stopping, not the command. Two costs here are the
process's own, not any command's:

- importing the command line and the validation library allocates hundreds of thousands of
  objects, and the cyclic garbage collector walks them again and again while they are made
  (about 20 ms); none of them is garbage. Collection is off while `services.cli` loads, then
  what was loaded is frozen out of later collections (`gc.freeze`) and collection resumes, so a
  long-running command (`exchange up`, a service) collects as usual over less;
- after the command, the interpreter's teardown frees every module one by one (about 70 ms).
  When the command returned and left no other thread, the process runs its exit handlers
  (logging's flush among them), flushes its output and ends with `os._exit`.

Tests call `services.cli.main`, which exits the ordinary way.
"""

from __future__ import annotations

import atexit
import gc
import os
import sys
import threading


def run() -> None:
    """Entry point of the `exchange` console script."""
    gc.disable()
    try:
        from services.cli import main
    finally:
        gc.freeze()
        gc.enable()
    try:
        main()
    except SystemExit as done:
        if threading.active_count() > 1 or not isinstance(done.code, int | None):
            raise
        atexit._run_exitfuncs()
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except OSError:  # a closed pipe (`exchange orgs list | head -1`): nothing to say it to
            pass
        os._exit(done.code or 0)
