"""`exchange audit receipt verify <link or file>`: a donor receipt's checks, in Python.

The same checks the receipt page runs in the browser (services/audit/evidence/receipt.py): the link
pins the exchange's key and the checkpoint the receipt was issued with; the exchange's answer
(`GET /v1/receipts/{id}`, fetched here unless the file holds it) must prove the donation is in
the newest signed checkpoint and that the newest tree extends the issued one. Exit 0 when every
check passes, 1 with the reasons when one fails, 2 when the receipt cannot be read or fetched.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from services.audit.evidence.receipt import Check, Pinned, parse_fragment, receipt_checks
from services.settings import Settings


def add_command(asub: Any) -> None:
    """Register `receipt verify` under `exchange audit`."""
    receipt = asub.add_parser("receipt", help="donor receipts: check one (docs/receipts.md)")
    rsub = receipt.add_subparsers(dest="receipt_command", required=True, metavar="ACTION")
    verify = rsub.add_parser("verify", help="check a receipt link or receipt file")
    verify.add_argument(
        "receipt",
        help="the receipt link (with its #fragment), or a file holding the link, or a JSON "
        'file {"link": ..., "answer": <the GET /v1/receipts/{id} answer>} to check offline',
    )
    verify.add_argument(
        "--public-key",
        metavar="HEX",
        help="the exchange's published public key: the receipt's pinned key must be this one",
    )
    verify.set_defaults(func=_cmd_receipt_verify)


class Unreadable(Exception):
    """The receipt cannot be read or fetched (exit 2)."""


def read_source(source: str) -> tuple[str, dict[str, Any] | None]:
    """The receipt link, and the exchange's answer when the file holds one."""
    if source.startswith(("http://", "https://")):
        return source, None
    try:
        text = Path(source).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise Unreadable(f"cannot read {source}: {exc}") from None
    if text.startswith("{"):
        doc = json.loads(text)
        return str(doc["link"]), doc.get("answer")
    return text, None


def split_link(link: str) -> tuple[str, str, Pinned]:
    """(base URL, receipt id, pinned anchor) of a receipt link."""
    parts = urlsplit(link)
    segments = parts.path.rstrip("/").split("/")
    if len(segments) < 2 or segments[-2] != "receipts" or not segments[-1]:
        raise Unreadable(f"not a receipt link (…/receipts/<id>#…): {link}")
    try:
        pinned = parse_fragment(parts.fragment)
    except ValueError as exc:
        raise Unreadable(f"the link pins no usable key and checkpoint: {exc}") from None
    prefix = "/".join(segments[:-2])
    return f"{parts.scheme}://{parts.netloc}{prefix}", segments[-1], pinned


def fetch(base: str, rid: str, pinned: Pinned) -> dict[str, Any]:
    """The exchange's answer for the receipt, from the issued checkpoint's size."""
    try:
        r = httpx.get(
            f"{base}/v1/receipts/{rid}",
            params={"from": pinned.issued.head.tree_size},
            timeout=60,
        )
    except httpx.HTTPError as exc:
        raise Unreadable(f"cannot reach {base}: {exc}") from None
    if r.status_code == 503:
        raise Unreadable(
            f"not yet covered by a signed checkpoint; try again in {r.headers.get('Retry-After')}"
            f" s ({r.json().get('detail', '')})"
        )
    if r.status_code != 200:
        raise Unreadable(f"the exchange answered {r.status_code}: {r.text[:300]}")
    answer: dict[str, Any] = r.json()
    return answer


def report(checks: list[Check]) -> str:
    """One line per check (a passed key change says which hand-overs it followed)."""
    return "".join(
        f"{'ok  ' if c.ok else 'FAIL'} {c.name}"
        + (f": {c.detail}" if c.ok and c.detail else "")
        + ("" if c.ok else f": {c.reason}" + (f" ({c.detail})" if c.detail else ""))
        + "\n"
        for c in checks
    )


def _cmd_receipt_verify(settings: Settings, args: argparse.Namespace) -> int:
    try:
        link, answer = read_source(args.receipt)
        base, rid, pinned = split_link(link)
        if args.public_key and bytes.fromhex(args.public_key.strip()) != pinned.public_key:
            print("NOT VERIFIED: the receipt pins another key than the published one given")
            return 1
        answer = answer or fetch(base, rid, pinned)
    except (Unreadable, ValueError, KeyError) as exc:
        print(f"cannot check the receipt: {exc}")
        return 2
    checks = receipt_checks(answer, rid, pinned)
    print(report(checks), end="")
    if all(c.ok for c in checks):
        d = answer.get("donation", {})
        amount = d.get("amount", {})
        print(
            f"verified: donation {d.get('donation_id')} of {amount.get('amount_minor')} "
            f"{amount.get('currency')} (minor units) into fund {d.get('fund_id')} is event "
            f"{answer['event']['leaf_index'] + 1} of the signed log of "
            f"{answer['checkpoint']['tree_size']}, which extends the log of "
            f"{pinned.issued.head.tree_size} the receipt was issued with"
        )
        return 0
    print("NOT VERIFIED")
    return 1
