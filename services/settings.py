"""One settings object per process, read from the environment once in `main()` and passed down.

Nothing connects at import time; every service receives what it needs from here.

The environment is read here, in a few lines, rather than by pydantic-settings: that library
and what it imports (its command-line, dotenv and cloud-secret sources) cost an operator's
one-shot command about 60–90 ms of its 0.3-s budget (bench/one_shot.py), for a reading of
flat variables that pydantic's own validation already converts and checks.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, SecretStr

ENV_PREFIX = "EXCHANGE_"


def _names(field: str, alias: object) -> tuple[str, ...]:
    """The names a field is given by, in the environment and as a keyword: its aliases (first
    wins), else `EXCHANGE_<FIELD>`; and always the field's own name."""
    if isinstance(alias, AliasChoices):
        choices = tuple(str(c) for c in alias.choices)
    else:
        choices = (ENV_PREFIX + field.upper(),)
    return (*choices, field)


def _keyed(given: dict[str, Any], environ: dict[str, str]) -> dict[str, Any]:
    """One value per field, under the key pydantic validates it by: keyword arguments first,
    then the environment (names matched case-insensitively, as pydantic-settings did)."""
    upper_env = {k.upper(): v for k, v in environ.items()}
    upper_given = {k.upper(): v for k, v in given.items()}
    values: dict[str, Any] = {}
    for field, info in Settings.model_fields.items():
        names = _names(field, info.validation_alias)
        key = names[0] if isinstance(info.validation_alias, AliasChoices) else field
        for source in (upper_given, upper_env):
            name = next((n.upper() for n in names if n.upper() in source), None)
            if name is not None:
                values[key] = source[name]
                break
    return values


class Settings(BaseModel):
    """Settings of every exchange process. Prefix `EXCHANGE_`, except the two connection URLs
    (and the Kafka client's, which also go by their bare names). A keyword argument may use a
    field's name or any of its environment names; it wins over the environment."""

    model_config = ConfigDict(extra="ignore")

    def __init__(self, **given: Any) -> None:
        super().__init__(**_keyed(given, dict(os.environ)))

    var_dir: Path = Path("./var")
    """Where the embedded broker's and PostgreSQL's files, pid files and logs live."""

    kafka_bootstrap_servers: str | None = Field(
        default=None,
        validation_alias=AliasChoices(
            "KAFKA_BOOTSTRAP_SERVERS", "EXCHANGE_KAFKA_BOOTSTRAP_SERVERS"
        ),
    )
    """Kafka to use. Unset: `exchange up` starts the embedded broker and sets it for services."""

    kafka_security_protocol: Literal["PLAINTEXT", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        default="PLAINTEXT",
        validation_alias=AliasChoices(
            "KAFKA_SECURITY_PROTOCOL", "EXCHANGE_KAFKA_SECURITY_PROTOCOL"
        ),
    )
    """How every Kafka client of this process connects (`services.platform.kafka.
    client_security`). PLAINTEXT is the embedded default; production uses SASL_SSL so that each
    service proves who it is and the broker's ACLs keep every topic single-writer."""

    kafka_sasl_mechanism: Literal["SCRAM-SHA-512", "SCRAM-SHA-256"] = Field(
        default="SCRAM-SHA-512",
        validation_alias=AliasChoices("KAFKA_SASL_MECHANISM", "EXCHANGE_KAFKA_SASL_MECHANISM"),
    )
    """SCRAM variant the broker stores this service's credentials under."""

    kafka_sasl_username: str | None = Field(
        default=None,
        validation_alias=AliasChoices("KAFKA_SASL_USERNAME", "EXCHANGE_KAFKA_SASL_USERNAME"),
    )
    """This service's principal (one per service: deploy/README.md, "Who may write what")."""

    kafka_sasl_password: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("KAFKA_SASL_PASSWORD", "EXCHANGE_KAFKA_SASL_PASSWORD"),
    )
    """The principal's password; prefer `KAFKA_SASL_PASSWORD_FILE` (a mounted Secret)."""

    kafka_sasl_password_file: Path | None = Field(
        default=None,
        validation_alias=AliasChoices(
            "KAFKA_SASL_PASSWORD_FILE", "EXCHANGE_KAFKA_SASL_PASSWORD_FILE"
        ),
    )
    """A file holding the password (trailing newline ignored), read when a client is built, so
    the password is in no environment a `ps e` or a crash dump shows."""

    kafka_ssl_cafile: Path | None = Field(
        default=None,
        validation_alias=AliasChoices("KAFKA_SSL_CAFILE", "EXCHANGE_KAFKA_SSL_CAFILE"),
    )
    """CA bundle that signed the brokers' certificates (SASL_SSL); unset: the system's CAs."""

    database_url: str | None = Field(
        default=None, validation_alias=AliasChoices("DATABASE_URL", "EXCHANGE_DATABASE_URL")
    )
    """PostgreSQL to use. Unset: `exchange up` starts the embedded PostgreSQL under var_dir."""

    http_host: str = "127.0.0.1"
    """Address the HTTP gateway binds to."""

    http_port: int = 0
    """Gateway port; 0 picks 8000 when free, else any free port (printed at start)."""

    fetch_max_wait_ms: int = 10
    """Consumers' fetch wait. Tansu answers a fetch only after about half of it, so keep it
    small on the embedded default; 100–500 suits Apache Kafka."""

    ledger_fetch_max_wait_ms: int = 100
    """The ledger's fetch wait. The ledger is not on the way from a posting to its proposal, and
    on Tansu a fetch costs the broker CPU for every partition it names, for as long as it
    waits, again and again: the ledger reads all 53 partitions, and at 10 ms its fetches alone
    kept a fifth of a core busy in the broker (bench/README.md, `latency.py`). At 100 ms the
    archive trails by about 50 ms more; on Apache Kafka fetches return when data arrives."""

    composition: Literal["together", "apart"] = "together"
    """How `exchange up` groups services into processes: `together` runs the intake services
    and the router as one process (services/composition.py), `apart` one process per service,
    as the production manifests do. Only the supervisor reads it."""

    idle_after_seconds: float = 5.0
    """A consumer that has read nothing for this long stops fetching until the doorbell rings
    (the gateway's NOTIFY after publishing) or `idle_check_seconds` pass: an idle exchange then
    costs the broker almost nothing (services/platform/quiet.py). 0: always fetch."""

    idle_check_seconds: float = 2.0
    """How often a paused consumer looks anyway: the longest a record no doorbell announced
    (a clock tick, a ring lost while PostgreSQL was away) waits to be read."""

    idle_tick_seconds: float = 60.0
    """How often the clock ticks once nothing but ticks has happened for `idle_after_seconds`
    (it ticks every `tick_seconds` while work flows): expiries of an idle exchange come up to
    this late, and an idle exchange logs a tick a minute, not twelve (platform/quiet.py)."""

    session_timeout_ms: int = 6000
    """Consumer-group session timeout; 6 s is Kafka's minimum and makes Tansu joins take 3–6 s."""

    heartbeat_interval_ms: int = 1000
    """Consumer-group heartbeat interval."""

    snapshot_events: int = 20000
    """A matcher worker snapshots a partition's state to PostgreSQL after this many inputs (and
    when it gives the partition up), so a worker taking it over replays only the rest."""

    heartbeat_seconds: float = 2.0
    """How often each service records that it is alive in PostgreSQL (for /healthz); well
    inside `stale_after_seconds`. A service also beats at once when it becomes ready."""

    stale_after_seconds: float = 10.0
    """A service whose last heartbeat is older than this is reported down by /healthz."""

    archive_lag_seconds: float = 15.0
    """/healthz fails while a posting accepted longer ago than this is not yet archived."""

    decision_lag_seconds: float = 30.0
    """/healthz fails while a posting accepted longer ago than this is not yet decided (accepted
    or refused, and that decision archived): the bound the exchange states for "every 202 is
    decided". Generous against a busy 2-core machine, tight against a decision that never comes."""

    min_free_disk_mb: int = 512
    """/healthz fails (503, reason `low_disk`) when the var dir or PostgreSQL's data directory
    (when it is on this machine) has less free space than this, so operators hear of it before
    writes fail. PostgreSQL may need up to `max_wal_size` (1 GB by default) of WAL between
    checkpoints; 512 MB leaves time to act on a small machine."""

    db_acquire_timeout_seconds: float = 5.0
    """The gateway waits at most this long for a pooled PostgreSQL connection, then answers
    503 (`Retry-After`) instead of holding the request as long as the client waits."""

    db_connect_timeout_seconds: float = 5.0
    """Opening one PostgreSQL connection gives up after this long (asyncpg's default is 60 s),
    so an unreachable database is reported as 503 quickly."""

    retry_after_seconds: int = 5
    """`Retry-After` on a 503 (database unreachable or disk full): when clients should retry."""

    relay_behind_limit_seconds: float = 2.0
    """While the broker answers but the relay's oldest posting has waited longer than this for
    its acknowledgement, new postings are refused with 503 and `Retry-After` (nothing is
    written): the exchange is taking more than it can publish (services/gateway/relay.py).
    A broker that is down or stalled never causes it: postings then wait in the outbox.
    0: never refuse."""

    rate_reads_per_second: float = 100.0
    """Reads (GET) one token may make per second, sustained; 0 turns the limit off. Over it
    the gateway answers 429 with `Retry-After`. Generous for people and dashboards; a polling
    script feels it. Counted per gateway process (see `services/gateway/limits.py` for
    several gateways)."""

    rate_reads_burst: int = 400
    """Reads one token may make at once before the sustained rate applies."""

    rate_writes_per_second: float = 50.0
    """Postings one token may make per second, sustained; 0 turns the limit off (429 over
    it). Separate from reads, so a busy reader never blocks its own writes."""

    rate_writes_burst: int = 200
    """Postings one token may make at once before the sustained rate applies."""

    max_body_bytes: int = 64 * 1024
    """Largest request body the gateway reads (413 beyond it, before reading more). The
    largest posting is a few KiB; there are no bulk endpoints."""

    max_import_bytes: int = 16 * 1024 * 1024
    """Largest file the bulk import takes (`/v1/imports/…` and the web app's upload page;
    413 beyond it). 16 MiB holds tens of thousands of volunteers' rows (docs/import.md)."""

    max_streams_per_token: int = 3
    """Event streams (`GET /v1/events`) one principal may hold open at once (429 beyond);
    each open stream polls the archive, so an unbounded number is a load anyone could make."""

    min_seq_ahead_margin: int = 1000
    """A `min_seq` further than this beyond the archive's head is answered at once (409,
    reason `min_seq_ahead`) instead of being waited for (10 s): a sequence the exchange gave
    out is never ahead of its own database, so only a replica's lag is worth waiting for."""

    tick_seconds: float = 5.0
    """How often the matcher's clock writes a tick to clock.ticks (0: no ticks). Ticks are
    what expire proposals and needs; they are inputs on the log, never clock reads."""

    ledger_batch_size: int = 2000
    """Most events the ledger archives in one PostgreSQL transaction."""

    checkpoint_every_events: int = 1000
    """The ledger signs a checkpoint (Merkle tree head) after this many newly archived events."""

    checkpoint_every_seconds: float = 60.0
    """…or after this long, when anything was archived since the last checkpoint."""

    audit_key_path: Path | None = None
    """The ledger's Ed25519 signing key (PEM, mode 0600), created at first start. Unset:
    var_dir/keys/ledger-ed25519.pem."""

    witness_dir: Path | None = None
    """Where the ledger writes a copy of every checkpoint it signs (one file each, never
    overwritten) and `ledger-head.json`, the head of the archive as it last wrote it: evidence
    kept outside the database (docs/audit.md). Unset: var_dir/witness. Put it on other storage,
    ideally another host, that the database's administrators cannot write."""

    audit_public_key: str | None = None
    """The public key `exchange audit verify` trusts (64 hex digits, as `exchange audit key`
    prints it), pinned outside the var dir: the key file beside the data is no trust anchor."""

    receipt_secret: str | None = None
    """The secret a donor receipt's id is derived from (HMAC, docs/receipts.md): whoever
    holds it can make receipt links for any donation. Every gateway must use the same one.
    Unset: a random secret created once in var_dir/keys/receipt-secret (mode 0600)."""

    log_level: str = "INFO"
    """Log level of every service (structured JSON lines on stderr)."""

    log_json: bool = True
    """JSON log lines (for machines); false gives plain text (for people)."""

    def require_kafka(self) -> str:
        """The bootstrap servers, or a clear error for a service started without them."""
        if not self.kafka_bootstrap_servers:
            raise SystemExit("KAFKA_BOOTSTRAP_SERVERS is not set (exchange up sets it)")
        return self.kafka_bootstrap_servers

    def require_database(self) -> str:
        """The database URL, or a clear error for a service started without it."""
        if not self.database_url:
            raise SystemExit("DATABASE_URL is not set (exchange up sets it)")
        return self.database_url


_for_clients: Settings | None = None


def remember_for_clients(settings: Settings | None) -> None:
    """Keep the process's settings for clients built far from them (Kafka tooling, the
    restore, the audit readers: services.platform.kafka.security); None forgets them. Here
    rather than beside those clients so that `exchange`'s main can call it without importing
    them."""
    global _for_clients
    _for_clients = settings


def remembered_for_clients() -> Settings | None:
    """The settings given to `remember_for_clients`, or None (clients then use PLAINTEXT)."""
    return _for_clients
