"""`exchange audit …`: verify the archive, print the public key, prove and check consistency.

Exit codes: 0 verified, 1 evidence of tampering (the first broken event is printed), 2 the check
could not run (no trusted key given from outside the var dir, no database), 3 (`verify`) the
archive is intact but holds events whose `producer` header is not their topic's single writer
(docs/audit.md, "Who wrote it"). `verify` fails closed: events without a signed checkpoint, an
unsigned tail older than the checkpoint cadence allows, an archive smaller than a checkpoint
held outside (`--held`, or a `--witness` directory's files) or than `--expect-at-least`, rows
beyond the ledger's own head in a `--witness` directory, and a checkpoint under an untrusted key
all exit 1; a `--witness` directory that is missing or holds no checkpoint exits 2. Once the
archive verifies, `verify` also folds it and compares the money journal and every read model with
the fold (services/audit/replay/derived.py; `--no-derived` skips it): a difference exits 1."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from services.running import bootstrap_servers, database_url
from services.settings import Settings

if TYPE_CHECKING:
    import asyncpg

    from services.audit.evidence.verify import Summary
    from services.audit.replay.derived import DerivedCheck


def add_commands(sub: Any) -> None:
    """Register `audit` and its actions on the `exchange` command's subparsers."""
    audit = sub.add_parser("audit", help="tamper evidence: verify the archive, keys, proofs")
    asub = audit.add_subparsers(dest="audit_command", required=True, metavar="ACTION")

    verify = asub.add_parser(
        "verify", help="recompute every hash chain and signed checkpoint of the archive"
    )
    verify.add_argument("--against-kafka", action="store_true", help="also compare with topics")
    verify.add_argument("--database-url", help="default: DATABASE_URL or the running exchange's")
    verify.add_argument("--bootstrap-servers", help="default: KAFKA_BOOTSTRAP_SERVERS or running")
    _add_trust(verify)
    verify.add_argument(
        "--held",
        action="append",
        default=[],
        metavar="FILE",
        help="a CheckpointRecorded event (or its payload) held outside: the archive must extend "
        "it (repeatable)",
    )
    verify.add_argument(
        "--witness",
        action="append",
        default=[],
        metavar="DIR",
        help="a witness directory the ledger writes its checkpoints to (EXCHANGE_WITNESS_DIR): "
        "each checkpoint file must be signed by the trusted key and extended by the archive, "
        "and rows beyond the ledger's own head (ledger-head.json) are reported (repeatable)",
    )
    verify.add_argument(
        "--expect-at-least",
        type=int,
        default=0,
        metavar="N",
        help="fail when the archive holds fewer than N events",
    )
    verify.add_argument(
        "--unsigned-limit",
        type=float,
        metavar="SECONDS",
        help="longest an event may stay without a signed checkpoint (default: 3 x "
        "EXCHANGE_CHECKPOINT_EVERY_SECONDS, at least 60)",
    )
    verify.add_argument(
        "--no-derived",
        dest="derived",
        action="store_false",
        help="skip folding the archive to compare the money journal and the read models with "
        "it (the slowest step; `exchange audit replay` does it too, so skip it when you run "
        "replay right after)",
    )
    verify.set_defaults(func=_cmd_verify)

    from services.audit.entrypoints.receipt_cli import add_command as add_receipt_command

    add_receipt_command(asub)

    asub.add_parser(
        "key", help="print the exchange's public key, its fingerprint and key id, to publish"
    ).set_defaults(func=_cmd_key)

    prove = asub.add_parser(
        "prove", help="print a consistency proof between two signed checkpoints (JSON)"
    )
    prove.add_argument("--from-size", type=int, required=True, help="the older checkpoint's size")
    prove.add_argument("--to-size", type=int, help="the newer one's (default: the latest)")
    prove.add_argument("--database-url", help="default: DATABASE_URL or the running exchange's")
    prove.set_defaults(func=_cmd_prove)

    check = asub.add_parser("verify-proof", help="check a proof document with only the public key")
    check.add_argument("proof", help="file written by `exchange audit prove` (- for stdin)")
    _add_trust(check)
    check.add_argument(
        "--held", help="a CheckpointRecorded event you hold: must be the proof's old checkpoint"
    )
    check.set_defaults(func=_cmd_verify_proof)

    from services.audit.entrypoints.replay_cli import add_replay_commands

    add_replay_commands(asub)

    from services.audit.entrypoints.reports_cli import add_report_commands

    add_report_commands(asub)  # sequences, as-of, trail, disclosure


def _add_trust(parser: Any) -> None:
    parser.add_argument(
        "--public-key", help="the trusted public key, 64 hex digits (`exchange audit key`)"
    )
    parser.add_argument(
        "--public-key-file",
        metavar="PATH",
        help="a pinned file outside the var dir holding it (hex, PEM or `exchange audit key`'s "
        "output); default: EXCHANGE_AUDIT_PUBLIC_KEY. The key file beside the data is not trusted",
    )


def _trusted(settings: Settings, args: argparse.Namespace) -> Ed25519PublicKey:
    from services.audit.evidence.keys import KeyRefused, anchored_public_key

    try:
        return anchored_public_key(settings, args.public_key, args.public_key_file)
    except KeyRefused as exc:  # the check could not run, which is not tampering (1)
        print(f"cannot verify: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


UNSIGNED_FLOOR = 60.0
"""The shortest default limit for an unsigned event, in seconds (see `_unsigned_limit`)."""


def _unsigned_limit(settings: Settings, given: float | None) -> float:
    """How long an event may stay unsigned before `verify` calls the archive stale: the ledger
    signs `checkpoint_every_seconds` after the first unsigned event (and at a clean stop), so a
    healthy ledger stays well within three intervals; the floor absorbs a slow batch."""
    if given is not None:
        return given
    return max(3 * settings.checkpoint_every_seconds, UNSIGNED_FLOOR)


def _held(paths: list[str]) -> dict[Any, str]:
    """Each held checkpoint, with the file it came from (to name it in a finding)."""
    from services.audit.evidence.proofs import checkpoint_from_json

    held = {}
    for path in paths:
        try:
            doc = json.loads(Path(path).read_text())
            held[checkpoint_from_json(doc.get("payload", doc))] = path
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            print(f"cannot verify: cannot read the held checkpoint {path}: {exc}", file=sys.stderr)
            raise SystemExit(2) from None
    return held


def _witnesses(settings: Settings, paths: list[str]) -> list[Any]:
    """Every `--witness DIR`, read; a missing or empty one stops the check (exit 2). One inside
    the var dir is used, with a warning: it sits beside the data it is meant to check."""
    from services.audit.evidence.witness import WitnessUnreadable, read_witness

    found = []
    for path in paths:
        try:
            found.append(read_witness(Path(path)))
        except WitnessUnreadable as exc:
            print(f"cannot verify: {exc}", file=sys.stderr)
            raise SystemExit(2) from None
        if Path(path).resolve().is_relative_to(settings.var_dir.resolve()):
            print(
                f"note: the witness directory {path} is inside the var dir: whoever can rewrite "
                "the database there can usually rewrite it too (keep one on other storage)",
                file=sys.stderr,
            )
    return found


def _progress(done: int, total: int) -> None:
    """A progress line on stderr, for people (nothing when stderr is not a terminal)."""
    if total and sys.stderr.isatty():
        sys.stderr.write(f"\rverifying archive: {done}/{total} events")
        if done >= total:
            sys.stderr.write("\n")


def _cmd_verify(settings: Settings, args: argparse.Namespace) -> int:
    from services.audit.evidence.database import compare_with_topics, verify_archive
    from services.ledger import provenance
    from services.platform.db import connect

    trusted = _trusted(settings, args)
    held = _held(args.held)
    witnesses = _witnesses(settings, args.witness)
    for w in witnesses:
        held.update({cp: str(file) for cp, file in w.checkpoints.items()})
    heads = [w.head_file for w in witnesses if w.head_file is not None]
    limit = _unsigned_limit(settings, args.unsigned_limit)
    dsn = database_url(settings, args.database_url)
    bootstrap = bootstrap_servers(settings, args.bootstrap_servers) if args.against_kafka else None

    async def run() -> int:
        conn = await connect(dsn)
        try:
            finding, summary = await verify_archive(
                conn,
                trusted,
                _progress,
                held=list(held),
                held_from=held,
                ledger_heads=heads,
                expect_at_least=args.expect_at_least,
                unsigned_limit=limit,
                rotations=[r for w in witnesses for r in w.rotations],
            )
            if finding is not None:
                print(f"BROKEN {finding}")
                return 1
            unarchived = 0
            if bootstrap is not None:
                print("comparing with the topics …", file=sys.stderr)
                finding, unarchived = await compare_with_topics(conn, bootstrap)
                if finding is not None:
                    print(f"BROKEN (against the topics) {finding}")
                    return 1
            derived = await _check_derived(conn, summary) if args.derived else None
            if derived is not None and not derived.equal:
                _print_derived_broken(derived)
                return 1
            foreign = await provenance.rescan(conn)
        finally:
            await conn.close()
        head = summary.head
        print(
            f"archive verified: {summary.events} events, hash chain intact, "
            f"{summary.checkpoints} signed checkpoints match"
        )
        print(f"tree head: size {head.tree_size} root {head.root_hash.hex()}")
        for r in summary.handovers:
            print(
                f"key hand-over: key id {r.old_key_id.hex()[:16]}… → {r.new_key_id.hex()[:16]}… "
                f"from tree size {r.after} (signed by both keys)"
            )
        if summary.last_signed is not None:
            cp = summary.last_signed
            print(
                f"last signed checkpoint: size {cp.head.tree_size} root {cp.head.root_hash.hex()}"
            )
        signed = summary.last_signed.head.tree_size if summary.last_signed else 0
        _print_witnessed(witnesses, summary.ledger_heads, signed)
        if bootstrap is not None:
            print(f"topics agree with the archive ({unarchived} records not archived yet)")
        _print_derived(derived)
        if foreign:
            print(f"PRODUCER {len(foreign)} events not written by their topic's only writer:")
            for seq, event_id, topic, reason in foreign[:20]:
                print(f"  archive_seq {seq}, event {event_id}, topic {topic}: {reason}")
            if len(foreign) > 20:
                print(f"  … and {len(foreign) - 20} more (table producer_flags)")
            return 3
        print("producers: no event flagged (each topic written by its writer alone)")
        return 0

    return asyncio.run(run())


async def _check_derived(conn: asyncpg.Connection, summary: Summary) -> DerivedCheck:
    """The derived tables against a fold of the verified archive, with a progress bar on
    stderr when it is a terminal."""
    from services.audit.replay.derived import verify_derived
    from services.audit.replay.rebuild import Progress

    bar = Progress("derived tables", summary.events)
    try:
        return await verify_derived(conn, summary, bar)
    finally:
        bar.close()


DERIVED_SHOWN = 20
"""Differing derived rows printed by `verify` (`exchange audit replay --show N` lists more)."""


def _print_derived_broken(derived: DerivedCheck) -> None:
    """Each derived row that differs from the fold (table, key, columns, both values, the
    events that wrote it), or why the archive could not be folded."""
    report = derived.report
    if derived.finding is not None or report is None:
        print(f"BROKEN {derived.finding}")
        return
    for d in report.shown[:DERIVED_SHOWN]:
        print(f"BROKEN (derived) table {d}")
    counts = ", ".join(f"{t} {n}" for t, n in report.differences.items() if n)
    print(
        f"derived tables: {sum(report.differences.values())} rows differ from a fold of the "
        f"verified archive ({counts}): changed behind the ledger's back, or projected by "
        "another version of the code (`exchange audit replay` lists every one)"
    )


def _print_derived(derived: DerivedCheck | None) -> None:
    """The success line of the derived check (or that it was skipped)."""
    if derived is None:
        print("derived tables: not checked (--no-derived)")
        return
    report = derived.report
    assert report is not None  # printed only when the tables are equal
    ignored = ", ".join(f"{t}.{c}" for t, cs in report.ignored.items() for c in cs)
    print(
        f"derived tables: money journal and {len(derived.read_models)} read models equal a "
        "fold of the archive"
    )
    print(
        f"  {report.events} events folded ({derived.after_walk} archived during the check), "
        f"{report.projected} projected: {', '.join(report.differences)}"
        + (f"; not compared (the ledger's clock): {ignored}" if ignored else "")
    )


def _print_witnessed(witnesses: list[Any], heads: list[Any], signed: int) -> None:
    """What each witness directory proved (only called when nothing was found)."""
    ledger_heads = iter(heads)
    for w in witnesses:
        print(
            f"witness {w.path}: {len(w.checkpoints)} checkpoints, each signed by the trusted key "
            "and consistent with the archive (the archive extends every one)"
        )
        if w.head_file is None:
            print(
                f"witness {w.path}: no ledger-head.json, rows after the last checkpoint unchecked"
            )
            continue
        head = next(ledger_heads)
        if head.tree_size < signed:
            print(
                f"ledger head {w.head_file}: older than the last signed checkpoint (a copy taken "
                f"earlier?): events after number {signed} were not checked against it"
            )
            continue
        print(
            f"ledger head {w.head_file}: the ledger wrote events up to number {head.tree_size} "
            f"(archive_seq {head.archive_seq}); the archive holds none beyond it"
        )


def _cmd_key(settings: Settings, args: argparse.Namespace) -> int:
    """The public key to publish; then the hand-overs recorded in the witness directory (each
    signed by both keys) and a key waiting to take over at the ledger's next start."""
    from services.audit.evidence.checkpoint import key_id, raw_public_key
    from services.audit.evidence.keys import fingerprint, key_path, load_key
    from services.audit.evidence.witness import ROTATION_FILE
    from services.ledger.key_rotation import next_key_path
    from services.ledger.witness import witness_path

    public = load_key(key_path(settings)).public_key()
    print(f"public_key  {raw_public_key(public).hex()}")
    print(f"fingerprint {fingerprint(public)}")
    print(f"key_id      {key_id(public).hex()}")
    print(public.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode(), end="")
    witness = witness_path(settings)
    files = sorted(witness.glob("rotation-*.json")) if witness.is_dir() else []
    for file in (f for f in files if ROTATION_FILE.match(f.name)):
        from services.audit.evidence.rotation import rotation_from_json, rotation_problem

        r = rotation_from_json(json.loads(file.read_text()))
        state = "signed by both keys" if rotation_problem(r) is None else rotation_problem(r)
        print(
            f"handed over: key id {r.old_key_id.hex()[:16]}… → {r.new_key_id.hex()[:16]}… from "
            f"tree size {r.after} ({state}; {file.name})"
        )
    waiting = next_key_path(key_path(settings))
    if waiting.exists():
        nxt = load_key(waiting).public_key()
        print(
            f"waiting: {waiting} (key id {key_id(nxt).hex()[:16]}…, public key "
            f"{raw_public_key(nxt).hex()}) takes over at the ledger's next start"
        )
    return 0


def _cmd_prove(settings: Settings, args: argparse.Namespace) -> int:
    from services.audit.evidence.database import prove, stored_rotations
    from services.audit.evidence.proofs import proof_document
    from services.platform.db import connect

    dsn = database_url(settings, args.database_url)

    async def run() -> int:
        conn = await connect(dsn)
        try:
            old, new, proof = await prove(conn, args.from_size, args.to_size)
            rotations = await stored_rotations(conn)
        except LookupError as exc:
            print(f"cannot prove: {exc}", file=sys.stderr)
            return 2
        finally:
            await conn.close()
        print(json.dumps(proof_document(old, new, proof, rotations), indent=2))
        return 0

    return asyncio.run(run())


def _cmd_verify_proof(settings: Settings, args: argparse.Namespace) -> int:
    from services.audit.evidence.proofs import checkpoint_from_json, checkpoint_json, proof_problem

    text = sys.stdin.read() if args.proof == "-" else Path(args.proof).read_text()
    doc = json.loads(text)
    why = proof_problem(doc, _trusted(settings, args))
    if why is None and args.held:
        held = checkpoint_from_json(json.loads(Path(args.held).read_text())["payload"])
        if checkpoint_json(held) != doc["old"]:
            why = "the proof's old checkpoint is not the one you hold"
    if why is not None:
        print(f"NOT PROVEN: {why}")
        return 1
    old, new = doc["old"]["tree_size"], doc["new"]["tree_size"]
    print(f"proven: the log of {new} events extends the signed log of {old} events")
    return 0
