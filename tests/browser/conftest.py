"""The web app in a real browser: Debian's Chromium driven by Playwright, against the real
exchange (started like the e2e tier's). Screenshots of each main page go to a folder printed at
the end of the run, for a person to look at.

Playwright's own browser download does not work on these machines; the tests launch the
system's `chromium` (`apt-get install -y chromium`; `.ci/run` installs it when missing). Without
it they fail and say so, rather than pass silently."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.harness import Exchange

pytestmark = pytest.mark.browser

CHROMIUM = os.environ.get("EXCHANGE_CHROMIUM", "/usr/bin/chromium")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


@dataclass
class Site:
    """The running exchange and a token for each role the tests play."""

    ex: Exchange
    foundation: str
    community: str
    auditor: str
    social_org: str
    shots: Path

    @property
    def url(self) -> str:
        return self.ex.url

    def api(self, method: str, path: str, token: str, body: Any = None) -> httpx.Response:
        return httpx.request(
            method,
            f"{self.url}{path}",
            json=body,
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )


@pytest.fixture(scope="session")
def chromium_path() -> str:
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        pytest.fail(
            f"the browser tests need Chromium at {CHROMIUM}: install it with "
            "`apt-get update && apt-get install -y chromium` (or set EXCHANGE_CHROMIUM)",
            pytrace=False,
        )
    return CHROMIUM


def pin_a_key(var_dir: Path) -> str:
    """Give the ledger its signing key before its first start and return the public key, as
    an operator publishes it (`exchange audit key`) for the gateway to pin
    (EXCHANGE_AUDIT_PUBLIC_KEY): the auditor's pages then judge signatures."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import (
        Encoding,
        NoEncryption,
        PrivateFormat,
        PublicFormat,
    )

    key = Ed25519PrivateKey.generate()
    path = var_dir / "keys" / "ledger-ed25519.pem"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    path.chmod(0o600)
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex()


@pytest.fixture(scope="package")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    var = tmp_path_factory.mktemp("web") / "var"
    # for the exchange's processes only, never this test process: the pinned key, and a
    # checkpoint every few seconds, so that a donation's receipt can be issued without waiting
    # a minute for the first signed head that covers it
    only_the_exchange = {
        "EXCHANGE_AUDIT_PUBLIC_KEY": pin_a_key(var),
        "EXCHANGE_CHECKPOINT_EVERY_SECONDS": "4",
    }
    before = {k: os.environ.get(k) for k in only_the_exchange}
    os.environ.update(only_the_exchange)
    try:
        ex = Exchange(var).start()
    finally:
        for k, v in before.items():
            if v is None:
                del os.environ[k]
            else:
                os.environ[k] = v
    shots = tmp_path_factory.getbasetemp() / "screenshots"
    shots.mkdir(exist_ok=True)
    try:
        ex.wait_healthy(timeout=240)
        foundation, community, auditor, social_org = ex.create_orgs(
            ("foundation", "南京市玄武区慈善基金会", "玄武区", None),
            ("community", "锁金村街道锁金新村社区", "玄武区", "锁金村街道"),
            ("auditor", "玄武区审计办公室", "玄武区", None),
            ("social-org", "玄武区社工服务中心", "玄武区", None),
        )
        yield Site(ex, foundation, community, auditor, social_org, shots=shots)
    finally:
        print(f"\nscreenshots of the web app: {shots}")
        try:
            ex.stop(timeout=90)
        finally:
            ex.kill_tree()


@pytest.fixture(scope="package")
def browser(chromium_path: str) -> Iterator[Any]:
    """Package-scoped, never longer: Playwright's sync API keeps an event loop running in this
    thread while it is open, and every later `asyncio.run` (the other tiers) would fail."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=chromium_path, args=FLAGS)
        yield b
        b.close()
