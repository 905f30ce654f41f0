"""The SIGUSR1 task dump names the innermost await of every task, not only its outer frame."""

from __future__ import annotations

import asyncio
import logging
import os
import signal

import pytest

from services.platform.taskdump import describe_tasks, install


async def _parked_in_inner(event: asyncio.Event) -> None:
    await event.wait()


async def _parked_in_outer(event: asyncio.Event) -> None:
    await _parked_in_inner(event)


def test_the_dump_follows_the_chain_of_awaits() -> None:
    async def main() -> str:
        event = asyncio.Event()
        task = asyncio.create_task(_parked_in_outer(event), name="parked")
        await asyncio.sleep(0)
        try:
            return describe_tasks(asyncio.get_running_loop())
        finally:
            event.set()
            await task

    dump = asyncio.run(main())
    section = dump.split("--- task parked\n", 1)[1].split("---", 1)[0]
    assert "in _parked_in_outer" in section
    assert "in _parked_in_inner" in section
    assert "in wait" in section  # down to asyncio.Event.wait
    assert "--- thread MainThread" in dump


def test_sigusr1_logs_the_dump(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        install(loop)
        try:
            os.kill(os.getpid(), signal.SIGUSR1)
            for _ in range(100):  # the handler runs on a later turn of the loop
                if any("task dump" in r.message for r in caplog.records):
                    return
                await asyncio.sleep(0.01)
        finally:
            loop.remove_signal_handler(signal.SIGUSR1)

    with caplog.at_level(logging.WARNING, logger="services.platform.taskdump"):
        asyncio.run(main())
    dumps = [r for r in caplog.records if "task dump" in r.message]
    assert dumps and "asyncio tasks" in dumps[0].dump  # type: ignore[attr-defined]
