"""Runs processors as a faust-streaming app: catch up, then one agent per processor.

Settings that Tansu needs (and that are valid on Apache Kafka) are applied here once: short
session timeout and heartbeat so group joins take seconds, a small fetch wait, and
at-least-once delivery with concurrency 1 (faust `exactly_once` is unsafe on Tansu).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import faust

from schemas.topics import partitions_of
from services.domain.outputs import Outgoing
from services.platform import logs, quiet
from services.platform.access import principal_of
from services.platform.batches import take_batches
from services.platform.db import Heartbeat, connect_pool, migrate
from services.platform.kafka import Record, client_security, ensure_topics, headers_for
from services.platform.processor import Processor, catch_up, process
from services.settings import Settings

log = logging.getLogger(__name__)


Ticker = Callable[[datetime], Outgoing]
"""Makes the message that records "it is now T" (see services.matcher.processor.clock_tick)."""


def create_app(
    settings: Settings,
    app_id: str,
    processors: Sequence[Processor],
    ticker: Ticker | None = None,
    ticker_of: str | None = None,
) -> faust.App:
    """A faust app whose agents feed `processors` and write what they decide, awaiting acks.

    One app may carry several processors (services/composition.py): each writes under its own
    `producer` header and beats under its own name, as it would in a process of its own; the
    ticker writes as `ticker_of` (default: the app)."""
    bootstrap = settings.require_kafka()
    app = faust.App(
        app_id,
        broker=[f"kafka://{b}" for b in bootstrap.split(",")],
        value_serializer="raw",
        key_serializer="raw",
        web_enabled=False,
        store="memory://",
        datadir=str(settings.var_dir / "faust" / app_id),
        broker_session_timeout=settings.session_timeout_ms / 1000,
        broker_heartbeat_interval=settings.heartbeat_interval_ms / 1000,
        consumer_auto_offset_reset="earliest",
        processing_guarantee="at_least_once",
        producer_acks=-1,
        stream_wait_empty=False,
        **client_security(settings, "faust"),
    )
    _limit_fetch_wait(settings.fetch_max_wait_ms)
    idle = quiet.from_settings(settings, *_pausing_in_thread(app))
    for proc in processors:
        _add_agent(app, proc, idle)
    if idle is not None:
        _add_quiet(app, idle, settings.require_database())
    _add_heartbeat(app, settings, app_id, [p.name for p in processors])
    if ticker is not None and settings.tick_seconds > 0:
        _add_clock(
            app,
            ticker,
            settings.tick_seconds,
            principal_of(ticker_of or app_id),
            idle,
            settings.idle_tick_seconds,
        )
    return app


def _limit_fetch_wait(wait_ms: int) -> None:
    """Make faust's worker consumer use our fetch wait instead of its hard-coded 1,500 ms.

    faust-streaming 0.15 passes `fetch_max_wait_ms=1500` to aiokafka with no setting to change
    it, and Tansu answers a fetch only after about half the wait, which would add ~750 ms to
    every hop. aiokafka reads the value from this attribute when the consumer starts."""
    from faust.transport.drivers import aiokafka as driver

    thread: Any = driver.AIOKafkaConsumerThread
    if getattr(thread, "_exchange_fetch_wait", None) == wait_ms:
        return
    original = getattr(thread, "_exchange_original_create", thread._create_worker_consumer)

    def create(self: Any, transport: Any) -> Any:
        consumer = original(self, transport)
        consumer._fetch_max_wait_ms = wait_ms
        return consumer

    thread._exchange_original_create = original
    thread._create_worker_consumer = create
    thread._exchange_fetch_wait = wait_ms


def _pausing_in_thread(app: faust.App) -> tuple[Callable[[], None], Callable[[], None]]:
    """Pause and resume for the app's consumer, which faust runs on a thread of its own with
    its own event loop: each act is handed to that loop (aiokafka is not thread-safe)."""
    pause, resume = quiet.pausing(
        lambda: getattr(getattr(app.consumer, "_thread", None), "_consumer", None)
    )

    def on_consumer_thread(act: Callable[[], None]) -> Callable[[], None]:
        def hand_over() -> None:
            thread = getattr(app.consumer, "_thread", None)
            loop = getattr(thread, "thread_loop", None)
            if loop is not None and not loop.is_closed():
                loop.call_soon_threadsafe(_logged, act)

        return hand_over

    return on_consumer_thread(pause), on_consumer_thread(resume)


def _logged(act: Callable[[], None]) -> None:
    """Run a pause or resume on the consumer's thread; a failure there (a rebalance in between)
    is logged: the consumer then keeps fetching, which is always safe."""
    try:
        act()
    except Exception as exc:
        log.warning("pausing or resuming the consumer failed", extra={"error": repr(exc)})


def _add_quiet(app: faust.App, idle: quiet.Quiet, dsn: str) -> None:
    """Start pausing when idle once partitions are assigned (the consumer thread exists)."""

    @app.task  # type: ignore[untyped-decorator]
    async def quieten() -> None:
        tasks = quiet.start(idle, dsn)
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()


def _topic(app: faust.App, name: str) -> Any:
    return app.topic(
        name,
        partitions=partitions_of(name),
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
    )


BATCH_MAX = 500
BATCH_WINDOW = 0.002
"""How long an agent waits for more events before processing what it has (seconds)."""


def _add_agent(app: faust.App, proc: Processor, idle: quiet.Quiet | None = None) -> None:
    source = app.topic(
        *proc.inputs, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
    )
    sinks = {name: _topic(app, name) for name in proc.outputs}
    sinks.update({f"{t}.dlq": _topic(app, f"{t}.dlq") for t in proc.inputs})
    writer = principal_of(proc.name)

    async def agent(stream: Any) -> None:
        # Events come in small batches (whatever arrives within 2 ms of the first, at most 500,
        # and nothing while idle: services/platform/batches.py): every
        # output is handed to the producer at once and all acks are awaited before the batch
        # counts as done, so at-least-once holds without one broker round trip per message.
        batches = take_batches(stream, BATCH_MAX, BATCH_WINDOW)
        agens = getattr(stream, "_active_agens", None)  # faust >= 0.15 closes these on stop
        if agens is not None:
            agens.add(batches)
        async for events in batches:
            if idle is not None:
                idle.saw(quiet.work_in(event.message.headers for event in events))
            pending = []
            for event in events:
                for out in process(proc, Record.of(event.message)):
                    pending.append(
                        await sinks[out.topic].send(
                            key=out.key,
                            value=out.value,
                            partition=out.partition,
                            headers=headers_for(out.event_id, out.event_type, writer),
                        )
                    )
            for sent in pending:
                await sent

    agent.__name__ = proc.name.replace("-", "_")
    app.agent(source, name=proc.name, concurrency=1)(agent)


def _add_clock(
    app: faust.App,
    ticker: Ticker,
    interval: float,
    writer: str,
    idle: quiet.Quiet | None = None,
    idle_interval: float = 0.0,
) -> None:
    """Write a tick every `interval` seconds (every `idle_interval` while the app has had no
    work: `quiet.tick_due`): the wall clock is read here, at the edge, and enters decisions
    only as a logged event."""
    sinks: dict[str, Any] = {}
    last = float("-inf")

    @app.timer(interval=interval)  # type: ignore[untyped-decorator]
    async def tick() -> None:
        nonlocal last
        now = time.monotonic()
        if idle is not None and not quiet.tick_due(
            now - last, idle.quiet_for(), interval, idle_interval, idle.state.idle_after
        ):
            return
        last = now
        out = ticker(datetime.now(UTC))
        if out.topic not in sinks:
            sinks[out.topic] = _topic(app, out.topic)
        sent = await sinks[out.topic].send(
            key=out.key, value=out.value, headers=headers_for(out.event_id, out.event_type, writer)
        )
        await sent


def _add_heartbeat(
    app: faust.App, settings: Settings, service: str, members: Sequence[str]
) -> None:
    """Beat in PostgreSQL, once under each member's name (/healthz knows services, not
    processes); ready once faust finished a rebalance (partitions assigned).

    The rebalance signal fires before app tasks start, so it only sets a flag: waiting in it
    for the task would deadlock faust's start-up."""
    assigned = asyncio.Event()

    async def on_assigned(sender: Any, **kwargs: Any) -> None:
        assigned.set()

    app.on_rebalance_complete.connect(on_assigned)  # type: ignore[arg-type]

    @app.task  # type: ignore[untyped-decorator]
    async def heartbeat() -> None:
        logs.configure(service, settings.log_level, settings.log_json)
        pool = await connect_pool(settings.require_database(), max_size=2)
        beats = [Heartbeat(pool, name, settings.heartbeat_seconds) for name in members]
        for beat in beats:
            beat.start()
        await assigned.wait()
        for beat in beats:
            beat.ready = True
            await beat.beat()
        log.info("ready: partitions assigned", extra={"members": list(members)})


def _catch_up_all(bootstrap: str, processors: Sequence[Processor]) -> None:
    """Catch every processor up, side by side: each reads its own inputs and outputs and
    writes only its own topics, and most of a catch-up is waiting for the broker, so one
    process running four (services/composition.py) takes about as long as one did (0.6 s
    each, one after the other, was 2.5 s of `exchange up`). The first failure is raised."""
    with ThreadPoolExecutor(len(processors), thread_name_prefix="catch-up") as pool:
        done = [pool.submit(catch_up, bootstrap, p, principal_of(p.name)) for p in processors]
        for future in done:
            future.result()


def run(
    settings: Settings,
    app_id: str,
    processors: Sequence[Processor],
    ticker: Ticker | None = None,
    ticker_of: str | None = None,
) -> None:
    """Catch every processor up, then run the faust worker in the foreground until signalled."""
    logs.configure(app_id, settings.log_level, settings.log_json)
    bootstrap = settings.require_kafka()
    asyncio.run(migrate(settings.require_database()))
    ensure_topics(bootstrap)
    _catch_up_all(bootstrap, processors)
    (settings.var_dir / "faust" / app_id).mkdir(parents=True, exist_ok=True)
    app = create_app(settings, app_id, processors, ticker, ticker_of)
    from faust.worker import Worker

    worker = Worker(app, loglevel=settings.log_level.lower(), quiet=True, redirect_stdouts=False)
    worker.execute_from_commandline()
