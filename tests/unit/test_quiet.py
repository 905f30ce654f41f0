"""When an idle consumer stops fetching and when it looks again (services/platform/quiet.py),
and how often the doorbell rings (services/platform/doorbell.py): pure, on given times."""

from __future__ import annotations

import asyncio

from services.platform.doorbell import Ringer
from services.platform.quiet import Quiet, QuietClock, tick_due


def clock(now: float = 0.0) -> QuietClock:
    return QuietClock(idle_after=5.0, check_every=1.0, probe=0.1, awake_until=now + 5.0)


def test_a_consumer_pauses_only_after_idle_after_seconds_without_records() -> None:
    c = clock()
    assert c.due(4.9) == (None, 5.0)
    assert c.heard(4.0) is None  # records at 4 s: awake until 9 s
    assert c.due(8.9) == (None, 9.0)
    assert c.due(9.0) == ("pause", 10.0)
    assert c.paused


def test_a_paused_consumer_looks_every_check_for_a_probe_and_pauses_again() -> None:
    c = clock()
    c.due(5.0)  # paused
    assert c.due(6.0) == ("resume", 6.1)
    assert c.due(6.1) == ("pause", 7.1)  # nothing came in the look


def test_records_found_in_a_look_keep_it_awake() -> None:
    c = clock()
    c.due(5.0)
    c.due(6.0)  # looking until 6.1
    assert c.heard(6.05) is None  # already fetching: nothing to resume
    assert c.due(6.1) == (None, 11.05)


def test_the_doorbell_resumes_a_paused_consumer_at_once() -> None:
    c = clock()
    c.due(5.0)
    assert c.heard(5.3) == "resume"
    assert not c.paused
    assert c.due(5.4) == (None, 10.3)


def test_a_ring_skipped_by_the_ringer_reaches_no_one_asleep() -> None:
    """The ringer rings at most every 0.5 s; a consumer woken by a ring stays awake
    idle_after (5 s) > 0.5 s, so every skipped ring falls while everyone listening is awake."""
    now = [0.0]
    ringer = Ringer(every=0.5, clock=lambda: now[0])
    rung = []
    for t in [0.0, 0.1, 0.49, 0.5, 0.9, 2.0]:
        now[0] = t
        if ringer.due():
            rung.append(t)
    assert rung == [0.0, 0.5, 2.0]
    c = clock()
    c.due(5.0)  # asleep
    c.heard(10.0)  # the ring at 10.0
    for skipped in (10.1, 10.49):  # rings the ringer skipped
        assert not c.paused and c.due(skipped)[0] is None


def test_quiet_pauses_and_resumes_its_consumer_on_the_loop() -> None:
    acts: list[str] = []
    now = [0.0]

    async def scenario() -> None:
        q = Quiet(
            lambda: acts.append("pause"),
            lambda: acts.append("resume"),
            idle_after=0.05,
            check_every=10.0,
            clock=lambda: now[0],
        )
        task = asyncio.create_task(q.run())
        now[0] = 0.06
        q.saw(0)  # an empty fetch says nothing, but lets the loop look at the time
        for _ in range(100):  # a bounded number of turns of the loop, no sleeping
            if acts:
                break
            await asyncio.sleep(0)
        q.ring()
        task.cancel()
        assert q.pauses == 1

    asyncio.run(scenario())
    assert acts == ["pause", "resume"]


def test_a_failing_pause_leaves_the_consumer_fetching() -> None:
    def refuse() -> None:
        raise RuntimeError("rebalancing")

    now = [1.0]

    async def scenario() -> Quiet:
        q = Quiet(refuse, lambda: None, idle_after=0.5, check_every=1.0, clock=lambda: now[0])
        q.state.awake_until = 0.0  # idle already
        task = asyncio.create_task(q.run())
        for _ in range(10):
            await asyncio.sleep(0)
        task.cancel()
        return q

    q = asyncio.run(scenario())
    assert not q.state.paused and q.state.awake_until == 1.5


def test_ticks_are_read_but_are_no_work() -> None:
    from services.platform.quiet import work_in

    tick = [("event_id", b"1"), ("event_type", b"ClockTicked")]
    need = [("event_id", b"2"), ("event_type", b"NeedPosted")]
    assert work_in([tick, tick]) == 0
    assert work_in([tick, need, {"event_type": b"MatchProposed"}, None]) == 3  # no header: work


def test_a_failing_resume_on_a_record_never_reaches_the_consumers_loop() -> None:
    calls: list[str] = []

    def refuse() -> None:
        calls.append("resume")
        raise RuntimeError("not assigned")

    now = [0.0]

    async def scenario() -> Quiet:
        q = Quiet(lambda: None, refuse, idle_after=1.0, check_every=1.0, clock=lambda: now[0])
        q.state.paused = True
        q.saw(3)  # would raise into the ledger's or an agent's loop if not caught
        return q

    q = asyncio.run(scenario())
    assert calls and not q.state.paused and q.state.awake_until == 1.0


def test_the_clock_ticks_every_interval_while_work_flows_and_each_minute_once_idle() -> None:
    # asked every 5 s; ticks every 60 s once 10 s have passed without work
    times = {"busy_every": 5.0, "idle_every": 60.0, "quiet_after": 10.0}
    assert tick_due(since_tick=5.0, quiet_for=0.0, **times)
    assert tick_due(since_tick=5.0, quiet_for=9.9, **times)
    assert not tick_due(since_tick=5.0, quiet_for=10.0, **times)
    assert not tick_due(since_tick=57.0, quiet_for=600.0, **times)
    assert tick_due(since_tick=57.6, quiet_for=600.0, **times)
    # an idle interval no longer than the busy one changes nothing
    assert tick_due(since_tick=0.0, quiet_for=600.0, busy_every=5.0, idle_every=5.0, quiet_after=1)


def test_quiet_for_counts_from_the_last_work_or_from_the_start() -> None:
    now = [100.0]

    async def run() -> list[float]:
        q = Quiet(lambda: None, lambda: None, idle_after=5.0, clock=lambda: now[0])
        seen = [q.quiet_for()]
        now[0] = 130.0
        seen.append(q.quiet_for())
        q.saw(0)  # an empty fetch or ticks only: not work
        seen.append(q.quiet_for())
        q.saw(2)
        now[0] = 131.5
        seen.append(q.quiet_for())
        q.ring()
        seen.append(q.quiet_for())
        return seen

    assert asyncio.run(run()) == [0.0, 30.0, 30.0, 1.5, 0.0]
