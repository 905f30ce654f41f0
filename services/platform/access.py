"""Who may write and read what on Kafka, derived from the topic registry so it never drifts.

Two uses of the same facts:

- **Broker ACLs** (`acl_grants`, printed by `exchange topics --acls`): one principal per
  service, Write only on the topics the registry says it owns, Read on what its processors
  consume (taken from the processors themselves), its consumer groups. So each topic has exactly
  one writer principal, and a `DonationReceived` produced onto funds.events by anyone else is
  refused by the broker instead of moving a fund's balance.
- **The `producer` header** (`producer_problem`): every service stamps its principal on what it
  writes, and the ledger (and `exchange audit verify`) compare it with the topic's writer.
  Kafka never tells a consumer which principal produced a record, so this header is all a
  consumer can see; anyone able to produce can also forge it. Without ACLs it catches only
  accidents (a service writing where it must not, a tool writing by hand); with ACLs on, the
  broker is what keeps strangers out and the header checks that services stay in their lane.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from schemas.topics import ALL_TOPICS, TopicSpec

PRODUCER_HEADER = "producer"
"""Kafka header naming the service principal that wrote a record (see module doc)."""

WORKER_PREFIXES = {"matcher-": "matcher"}
"""Processes that write as one principal: the matcher router and every matcher worker are the
registry's single writer `matcher` (they share its topics, each partition decided by one)."""

RESTORE_PRINCIPAL = "exchange-admin"
"""The operator's one-shot jobs (`db migrate`, `broker restore`): creates topics and, to refill
an empty broker, writes every topic. Not a service: it is the one exception to single-writer,
and its credentials belong only to those jobs (deploy/README.md)."""

AUDITOR_PRINCIPAL = "exchange-auditor"
"""`exchange audit … --against-kafka`, `replay --source kafka`: reads every topic, writes none."""

GROUP_OF = {"matcher": ("matcher",)}
"""Consumer groups of plain aiokafka services (services/matcher/worker.py `GROUP`); faust
services use their app id (the service name) as group, added in `service_principals`."""
GROUP_PREFIXES = {"matcher": ("matcher.",)}
"""Consumer groups a principal may use by prefix: the matcher workers move to `matcher.N` when
a rebalance of their group stalls (services/matcher/worker.py `group_name`)."""


def principal_of(service: str) -> str:
    """The Kafka principal (and `producer` header value) of a service process.

    `matcher-router`, `matcher-1`, `matcher-2`, … write as `matcher`; every other service is its
    own principal, named as in the registry's `owner`."""
    for prefix, principal in WORKER_PREFIXES.items():
        if service.startswith(prefix):
            return principal
    return service


def writer_of(topic: str) -> str | None:
    """The registry's single writer of `topic` (dead-letter topics included); None when the
    topic is not the exchange's (faust's internal topics, anything created by hand)."""
    spec = _SPECS.get(topic)
    return spec.owner if spec is not None else None


_SPECS: dict[str, TopicSpec] = {t.name: t for t in ALL_TOPICS}


def producer_of(headers: Iterable[Sequence[object]]) -> str | None:
    """The `producer` header's value (bytes or text, as Kafka or the archive's jsonb give it)."""
    for item in headers:
        name, value = item[0], item[1]
        if name == PRODUCER_HEADER:
            if isinstance(value, bytes | bytearray):
                return bytes(value).decode("utf-8", "replace")
            return str(value)
    return None


def producer_problem(topic: str, headers: Iterable[Sequence[object]]) -> str | None:
    """Why this record's claimed producer is not its topic's writer, or None when it is (or the
    topic is not registered). A missing header is a problem: every service stamps one."""
    expected = writer_of(topic)
    if expected is None:
        return None
    claimed = producer_of(headers)
    if claimed is None:
        return f"no producer header; {topic}'s only writer is {expected}"
    if claimed != expected:
        return f"producer {claimed!r} is not {topic}'s only writer {expected!r}"
    return None


# ---- ACLs ----


@dataclass(frozen=True, order=True)
class Grant:
    """One ALLOW ACL: `principal` may do `operation` on a resource."""

    principal: str
    resource: str  # "topic" | "group" | "cluster"
    name: str
    operation: str  # Kafka's names: Read, Write, Describe, Create
    pattern: str = "literal"  # or "prefixed"


@dataclass(frozen=True)
class ServicePrincipal:
    """One service principal: what it writes (from the registry), reads and joins."""

    name: str
    writes: tuple[str, ...]
    reads: tuple[str, ...]
    groups: tuple[str, ...]
    internal_prefixes: tuple[str, ...] = ()
    """Topic prefixes faust creates for its app (`<app id>-__assignor-__leader`, …)."""


def service_principals() -> list[ServicePrincipal]:
    """Every service principal, its writes from the registry's owners and its reads from the
    processors' own `inputs` and `outputs` (catch-up reads outputs and dead letters back)."""
    from services.intake.processor import KINDS, IntakeProcessor
    from services.matcher.processor import PartitionMatcher, Router

    writes: dict[str, list[str]] = {}
    for spec in ALL_TOPICS:
        writes.setdefault(spec.owner, []).append(spec.name)
    reads: dict[str, set[str]] = {}
    groups: dict[str, set[str]] = {p: set(GROUP_OF.get(p, ())) for p in writes}
    prefixes: dict[str, set[str]] = {p: set() for p in writes}
    faust_apps: list[tuple[str, tuple[str, ...], tuple[str, ...]]] = [
        (name, p.inputs, p.outputs)
        for name, p in [(n, IntakeProcessor(kind)) for n, kind in KINDS.items()]
    ]
    faust_apps.append(("matcher-router", Router.inputs, Router.outputs))
    processors = [*faust_apps, ("matcher-1", PartitionMatcher.inputs, PartitionMatcher.outputs)]
    for service, inputs, outputs in processors:
        principal = principal_of(service)
        seen = reads.setdefault(principal, set())
        seen.update(inputs)
        seen.update(outputs)
        seen.update(f"{t}.dlq" for t in inputs)
    for service, _, _ in faust_apps:
        groups.setdefault(principal_of(service), set()).add(service)
        prefixes.setdefault(principal_of(service), set()).add(f"{service}-")
    reads["ledger"] = {t.name for t in ALL_TOPICS}
    out = []
    for principal in sorted(set(writes) | set(reads)):
        out.append(
            ServicePrincipal(
                principal,
                tuple(sorted(writes.get(principal, ()))),
                tuple(sorted(reads.get(principal, ()))),
                tuple(sorted(groups.get(principal, ()))),
                tuple(sorted(prefixes.get(principal, ()))),
            )
        )
    return out


def acl_grants() -> list[Grant]:
    """Every ALLOW ACL the exchange needs; everything else is denied (`allow.everyone.if.no.acl.
    found=false`). Describe on every topic lets each service's start-up `ensure_topics` see that
    the topics exist (names only, no data)."""
    grants: set[Grant] = set()
    everything = [t.name for t in ALL_TOPICS]
    for sp in service_principals():
        user = f"User:{sp.name}"
        grants.update(Grant(user, "topic", t, "Write") for t in sp.writes)
        grants.update(Grant(user, "topic", t, "Read") for t in sp.reads)
        grants.update(Grant(user, "topic", t, "Describe") for t in everything)
        grants.update(Grant(user, "group", g, "Read") for g in sp.groups)
        grants.update(
            Grant(user, "group", g, "Read", "prefixed") for g in GROUP_PREFIXES.get(sp.name, ())
        )
        for prefix in sp.internal_prefixes:
            for op in ("Create", "Describe", "Read", "Write"):
                grants.add(Grant(user, "topic", prefix, op, "prefixed"))
    admin = f"User:{RESTORE_PRINCIPAL}"
    grants.add(Grant(admin, "cluster", "kafka-cluster", "Create"))
    for t in everything:
        grants.update(Grant(admin, "topic", t, op) for op in ("Describe", "Read", "Write"))
    auditor = f"User:{AUDITOR_PRINCIPAL}"
    for t in everything:
        grants.update(Grant(auditor, "topic", t, op) for op in ("Describe", "Read"))
    return sorted(grants)


def writers_by_topic(grants: Iterable[Grant]) -> dict[str, set[str]]:
    """Topic → the service principals the grants let write it (the restore job left out)."""
    out: dict[str, set[str]] = {}
    for g in grants:
        if (
            g.resource == "topic"
            and g.operation == "Write"
            and g.pattern == "literal"
            and g.principal != f"User:{RESTORE_PRINCIPAL}"
        ):
            out.setdefault(g.name, set()).add(g.principal)
    return out


def kafka_acls_commands(grants: Iterable[Grant], bootstrap: str = "$BOOTSTRAP") -> list[str]:
    """`kafka-acls.sh` command lines adding `grants` (run with an admin client config), one per
    principal, operation and resource kind: every JVM start costs seconds, and `--topic` and
    `--group` may be repeated."""
    batches: dict[tuple[str, str, str, str], list[str]] = {}
    for g in grants:
        batches.setdefault((g.principal, g.operation, g.resource, g.pattern), []).append(g.name)
    lines = []
    for (principal, operation, resource, pattern), names in sorted(batches.items()):
        target = (
            "--cluster"
            if resource == "cluster"
            else " ".join(f"--{resource} {n}" for n in sorted(names))
        )
        lines.append(
            f"kafka-acls.sh --bootstrap-server {bootstrap} --command-config $ADMIN_CONFIG"
            f" --add --allow-principal {principal} --operation {operation} {target}"
            f" --resource-pattern-type {pattern}"
        )
    return lines


def strimzi_users(
    grants: Iterable[Grant], cluster: str = "exchange-kafka"
) -> list[dict[str, object]]:
    """Strimzi `KafkaUser` documents (SCRAM-SHA-512, simple authorization) for `grants`."""
    by_user: dict[str, list[Grant]] = {}
    for g in grants:
        by_user.setdefault(g.principal.removeprefix("User:"), []).append(g)
    docs: list[dict[str, object]] = []
    for user, gs in sorted(by_user.items()):
        acls = []
        for g in gs:
            resource: dict[str, str] = {"type": g.resource}
            if g.resource != "cluster":
                resource |= {"name": g.name, "patternType": g.pattern}
            acls.append({"resource": resource, "operations": [g.operation]})
        docs.append(
            {
                "apiVersion": "kafka.strimzi.io/v1beta2",
                "kind": "KafkaUser",
                "metadata": {"name": user, "labels": {"strimzi.io/cluster": cluster}},
                "spec": {
                    "authentication": {"type": "scram-sha-512"},
                    "authorization": {"type": "simple", "acls": acls},
                },
            }
        )
    return docs
