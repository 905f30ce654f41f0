"""Where the exchange running on this var dir can be reached: its database and its brokers.

Every operator command (`exchange …`, `exchange audit …`, `exchange ledger …`,
`exchange privacy …`) takes an explicit `--database-url` or `--bootstrap-servers`, then the
settings, then the state file `exchange up` wrote. That lookup lives here, below all of them, so
that no command module imports another's private helpers (services/cli.py and the audit
commands used to import each other for it).
"""

from __future__ import annotations

import json

from services.settings import Settings


def running_state(settings: Settings) -> dict[str, str]:
    """The state file of the exchange running on this var dir, or a clear error (SystemExit)."""
    path = settings.var_dir.resolve() / "run" / "exchange.json"
    if not path.exists():
        raise SystemExit(f"no exchange running on {settings.var_dir} (start one: exchange up)")
    data: dict[str, str] = json.loads(path.read_text())
    return data


def database_url(settings: Settings, given: str | None = None) -> str:
    """The database to use: `given` (a `--database-url`), else DATABASE_URL, else the running
    exchange's; SystemExit when there is none of them."""
    if given:
        return given
    return settings.database_url or running_state(settings)["database_url"]


def bootstrap_servers(settings: Settings, given: str | None = None) -> str:
    """The brokers to use: `given` (a `--bootstrap-servers`), else KAFKA_BOOTSTRAP_SERVERS, else
    the running exchange's; SystemExit when there is none of them."""
    if given or settings.kafka_bootstrap_servers:
        return str(given or settings.kafka_bootstrap_servers)
    return running_state(settings)["kafka_bootstrap_servers"]
