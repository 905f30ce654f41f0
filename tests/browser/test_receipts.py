"""A donor's receipt, checked in the donor's own browser (docs/receipts.md).

A foundation (its own, so no other test's data is touched) records a donation in the web app
and issues the receipt: a link and a QR code on a printable page. A donor with no cookies, on a
360 px phone, opens the link and sees it verified, in Chinese and in English. Then each way of
cheating is tried on its own and the page says "not verified" with the reason: an insider
changes the archived event's bytes in PostgreSQL; a proof element is altered on the way; the
checkpoint's signature is altered; and the log is rewritten and re-signed with the exchange's
own key after the receipt was issued. When the exchange hands its key over to a new one (a
statement both keys sign, docs/audit.md "Key rotation"), the receipt still verifies and says so
on a line of its own; a hand-over the old key did not sign is caught. The page's verifier also
agrees with every test vector the Python side made (tests/vectors/receipts.json)."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from playwright.sync_api import Page, Route, expect

from services.audit.evidence.checkpoint import TreeHead, raw_public_key, sign
from services.audit.evidence.merkle import consistency_proof, inclusion_proof, leaf_hash, root
from services.audit.evidence.proofs import checkpoint_from_json, checkpoint_json
from services.audit.evidence.receipt import parse_fragment
from services.audit.evidence.rotation import Rotation, rotate, rotation_json, rotation_note
from tests.browser.conftest import Site
from tests.browser.test_web_app import PHONE, accessibility, shot, sign_in, until_shown

pytestmark = [pytest.mark.browser, pytest.mark.timeout(600)]
VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "receipts.json"
FUND = "六合区收据测试助餐基金"


def _flip_hex(text: str) -> str:
    return ("0" if text[0] != "0" else "1") + text[1:]


def _sql(site: Site, query: str, *args: Any) -> Any:
    async def run() -> Any:
        conn = await asyncpg.connect(site.ex.state["database_url"])
        try:
            return await conn.fetch(query, *args)
        finally:
            await conn.close()

    # in a thread of its own: Playwright's sync API keeps an event loop running in this one
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, run()).result()


def _swap(site: Site, seq: int, old: str, new: str) -> None:
    """As an insider: change the archived row's bytes in place (hashes left as they were)."""
    changed = _sql(
        site,
        "UPDATE archive SET value = convert_to(replace(convert_from(value, 'UTF8'), $2, $3),"
        " 'UTF8') WHERE archive_seq = $1 AND position($2 in convert_from(value, 'UTF8')) > 0"
        " RETURNING archive_seq",
        seq,
        old,
        new,
    )
    assert len(changed) == 1, (seq, old)


def _receipt_verify(link: str) -> subprocess.CompletedProcess[str]:
    """`exchange audit receipt verify LINK`."""
    args = [sys.executable, "-m", "services.cli", "audit", "receipt", "verify", link]
    return subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)


def _verdict(page: Page, state: str) -> None:
    expect(page.locator("#verdict")).to_have_attribute("data-state", state, timeout=30_000)


def _tampered(page: Page, change: Callable[[dict[str, Any]], None]) -> None:
    """Every receipt answer the page fetches goes through `change` on its way."""

    def handle(route: Route) -> None:
        response = route.fetch()
        doc = response.json()
        change(doc)
        route.fulfill(response=response, json=doc)

    page.route(re.compile(r"/v1/receipts/"), handle)


def _ledger_key(site: Site) -> Ed25519PrivateKey:
    """The exchange's signing key (the key receipts pin)."""
    pem = (site.ex.var_dir / "keys" / "ledger-ed25519.pem").read_bytes()
    key = load_pem_private_key(pem, password=None)
    assert isinstance(key, Ed25519PrivateKey)
    return key


def _handed_over(site: Site, *, old_signed: bool = True) -> Callable[[dict[str, Any]], None]:
    """Since the receipt was issued the exchange handed its key over to a new one made here,
    from the issued checkpoint's size on, and the newest checkpoint is signed by the new key.
    `old_signed=False`: whoever made the statement held only the new key, and signed the old
    key's part with it."""
    old, new = _ledger_key(site), Ed25519PrivateKey.generate()

    def change(doc: dict[str, Any]) -> None:
        assert doc["key_rotations"] == []  # the real exchange has not rotated
        after = doc["consistency"]["from_size"]
        statement = rotate(old, new, after)
        if not old_signed:
            text = rotation_note(raw_public_key(old.public_key()), statement.new_public_key, after)
            statement = Rotation(
                statement.old_public_key, statement.new_public_key, after, new.sign(text),
                statement.new_signature,
            )  # fmt: skip
        doc["checkpoint"] = checkpoint_json(sign(checkpoint_from_json(doc["checkpoint"]).head, new))
        doc["key_rotations"] = [rotation_json(statement)]

    return change


def _rewritten_and_resigned(site: Site) -> Callable[[dict[str, Any]], None]:
    """An insider who holds the signing key rewrites an early event (before the receipt's
    issued checkpoint) and signs a new head over the rewritten log, with proofs that fit it."""
    key = _ledger_key(site)

    def change(doc: dict[str, Any]) -> None:
        size = doc["checkpoint"]["tree_size"]
        rows = _sql(site, "SELECT content_hash FROM archive ORDER BY archive_seq LIMIT $1", size)
        leaves = [leaf_hash(bytes(r["content_hash"])) for r in rows]
        index = doc["event"]["leaf_index"]
        victim = 0 if index != 0 else 1
        leaves[victim] = leaf_hash(b"a rewritten event")
        head = TreeHead(size, root(leaves), bytes.fromhex(doc["checkpoint"]["chain_hash"]))
        doc["checkpoint"] = checkpoint_json(sign(head, key))
        doc["inclusion_proof"] = [p.hex() for p in inclusion_proof(leaves, index)]
        old = doc["consistency"]["from_size"]
        doc["consistency"]["proof"] = [p.hex() for p in consistency_proof(leaves, old)]

    return change


def test_a_donor_checks_a_receipt_and_every_cheat_is_caught(site: Site, browser: Any) -> None:
    problems: dict[str, list[str]] = {}
    token = site.ex.create_org("foundation", "六合区收据测试基金会", "六合区")

    # Given a foundation that opens a fund and records a donation in the web app (Chinese)
    desk = browser.new_context(locale="zh-CN")
    page = desk.new_page()
    sign_in(page, site, token)
    page.get_by_label("基金名称").fill(FUND)
    # its own district (六合区): its money pays no other browser test's need
    page.locator("form[action='/funds']").get_by_label("银发助餐").check()
    page.get_by_label("限定区域").fill("六合区")
    page.get_by_role("button", name="设立基金").click()
    until_shown(page, FUND, "the fund to be opened")
    page.get_by_label("捐赠方").fill("王女士")
    page.get_by_label("金额（元）").fill("1234.56")
    page.get_by_role("button", name="登记捐赠").click()
    until_shown(page, "¥1,234.56", "the donation to be available")

    # When it issues the receipt from the fund's page (once a signed checkpoint covers it)
    page.get_by_role("link", name=FUND).click()
    page.get_by_role("link", name=re.compile("开具收据：¥1,234.56")).click()
    until_shown(page, "扫描二维码", "a signed checkpoint to cover the donation", timeout=150)
    expect(page.get_by_role("img", name="捐赠收据二维码")).to_be_visible()
    link = page.locator("#receipt-link").get_attribute("href") or ""
    assert "/receipts/" in link and "#k=" in link, link
    problems["issue"] = accessibility(page)
    shot(page, site, "receipt-01-issued-zh")
    page.emulate_media(media="print")
    shot(page, site, "receipt-02-issued-print-zh")
    assert not page.get_by_role("button", name="打印收据").is_visible()

    # Then a donor with no cookies opens the link on a phone and sees it verified
    donor = browser.new_context(locale="zh-CN", viewport=PHONE, is_mobile=True, has_touch=True)
    errors: list[str] = []
    donor.on("weberror", lambda e: errors.append(str(e.error)))
    phone = donor.new_page()
    phone.goto(link)
    _verdict(phone, "verified")
    expect(phone.locator("#verdict")).to_contain_text("已验证")
    expect(phone.get_by_text("王女士")).to_be_visible()
    expect(phone.get_by_text("¥1,234.56").first).to_be_visible()
    assert phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    problems["receipt-zh"] = accessibility(phone)
    shot(phone, site, "receipt-03-verified-phone-zh")
    # …and in English, one click away (the link's pinned part survives the switch)
    phone.get_by_role("link", name="English").click()
    expect(phone.locator("html")).to_have_attribute("lang", "en")
    _verdict(phone, "verified")
    expect(phone.locator("#verdict")).to_contain_text("Verified")
    problems["receipt-en"] = accessibility(phone)
    shot(phone, site, "receipt-04-verified-phone-en")

    # …and so does the command, with the same checks in Python
    done = _receipt_verify(link)
    assert done.returncode == 0 and "verified:" in done.stdout, done.stdout + done.stderr

    # The page's verifier agrees with every vector the Python side made
    vectors = json.loads(VECTORS.read_text(encoding="utf-8"))
    disagreements = phone.evaluate(AGREE, vectors)
    assert disagreements == [], disagreements[:5]

    # (a) an insider changes the archived donation's bytes in PostgreSQL
    rid = link.split("/receipts/", 1)[1].split("#", 1)[0]
    seq = httpx.get(f"{site.url}/v1/receipts/{rid}", timeout=60).json()["event"]["archive_seq"]
    _swap(site, seq, '"amount_minor":123456', '"amount_minor":923456')
    try:
        cheat = donor.new_page()
        cheat.set_viewport_size(PHONE)
        cheat.goto(link)
        _verdict(cheat, "failed")
        expect(cheat.locator('[data-check="inclusion"] .check-reason')).to_contain_text(
            "The inclusion proof fails"
        )
        shot(cheat, site, "receipt-05-archive-row-changed-en")
        done = _receipt_verify(link)
        assert done.returncode == 1 and "FAIL inclusion" in done.stdout, done.stdout
        cheat.close()
    finally:
        _swap(site, seq, '"amount_minor":923456', '"amount_minor":123456')
    fresh = donor.new_page()
    fresh.goto(link)
    _verdict(fresh, "verified")  # restored: the others start from a good archive
    fresh.close()

    # (b) a proof element altered, (c) the signature altered, (d) a rewritten, re-signed log
    def proof_altered(doc: dict[str, Any]) -> None:
        doc["inclusion_proof"][0] = _flip_hex(doc["inclusion_proof"][0])

    def signature_altered(doc: dict[str, Any]) -> None:
        doc["checkpoint"]["signature"] = _flip_hex(doc["checkpoint"]["signature"])

    cheats = [
        ("b-proof-altered", proof_altered, "inclusion", "The inclusion proof fails"),
        ("c-signature-altered", signature_altered, "signature", "The signature does not verify"),
        ("d-log-rewritten", _rewritten_and_resigned(site), "consistency", "rewritten after issue"),
    ]
    for name, change, check, reason in cheats:
        cheat = donor.new_page()
        cheat.set_viewport_size(PHONE)
        _tampered(cheat, change)
        cheat.goto(link)
        _verdict(cheat, "failed")
        expect(cheat.locator(f'[data-check="{check}"]')).to_have_attribute("data-state", "failed")
        expect(cheat.locator(f'[data-check="{check}"] .check-reason')).to_contain_text(reason)
        failed = cheat.locator('.checks li[data-state="failed"]').count()
        assert failed == 1, name
        shot(cheat, site, f"receipt-06{name}-en")
        cheat.close()

    # (e) the exchange hands its key over after the receipt was issued: still verified, and
    # the key change is its own line; the command follows the same hand-over
    handover = _handed_over(site)
    moved = donor.new_page()
    moved.set_viewport_size(PHONE)
    _tampered(moved, handover)
    moved.goto(link)
    _verdict(moved, "verified")
    line = moved.locator('[data-check="key_change"]')
    expect(line).to_be_visible()
    expect(line).to_have_attribute("data-state", "ok")
    expect(line.locator(".check-reason")).to_contain_text("The exchange's key changed at")
    expect(line.locator(".check-reason")).to_contain_text("the old key you pinned signed")
    assert moved.locator('.checks li[data-state="failed"]').count() == 0
    shot(moved, site, "receipt-08-key-handed-over-en")
    moved.close()
    issued = parse_fragment(link.split("#", 1)[1]).issued.head.tree_size
    answer = httpx.get(f"{site.url}/v1/receipts/{rid}", params={"from": issued}, timeout=60).json()
    handover(answer)
    bundle = site.ex.var_dir / "receipt-handed-over.json"
    bundle.write_text(json.dumps({"link": link, "answer": answer}))
    done = _receipt_verify(str(bundle))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "the old key you pinned signed the change" in done.stdout, done.stdout

    # (f) a hand-over the pinned key did not sign: not verified, and the page says why
    forged = donor.new_page()
    forged.set_viewport_size(PHONE)
    _tampered(forged, _handed_over(site, old_signed=False))
    forged.goto(link)
    _verdict(forged, "failed")
    line = forged.locator('[data-check="key_change"]')
    expect(line).to_have_attribute("data-state", "failed")
    expect(line.locator(".check-reason")).to_contain_text("not signed by both keys")
    expect(forged.locator('[data-check="signature"]')).to_have_attribute("data-state", "failed")
    expect(forged.locator("#key-change")).to_be_visible()
    shot(forged, site, "receipt-09-hand-over-forged-en")
    forged.close()

    # the same failure, in Chinese
    donor.clear_cookies()
    cheat = donor.new_page()
    _tampered(cheat, signature_altered)
    cheat.goto(link)
    _verdict(cheat, "failed")
    expect(cheat.locator("#verdict")).to_contain_text("未通过验证")
    expect(cheat.locator('[data-check="signature"] .check-reason')).to_contain_text("签名")
    shot(cheat, site, "receipt-07-signature-altered-zh")

    # …and the key change, in Chinese
    moved = donor.new_page()
    _tampered(moved, _handed_over(site))
    moved.goto(link)
    _verdict(moved, "verified")
    expect(moved.locator('[data-check="key_change"] .check-reason')).to_contain_text(
        "您收据中固定的旧密钥签署了这次更换"
    )
    shot(moved, site, "receipt-10-key-handed-over-zh")
    moved.close()

    # a link without its pinned part verifies nothing
    cheat.goto(link.split("#", 1)[0])
    _verdict(cheat, "failed")

    assert not errors, errors
    assert not any(problems.values()), problems


AGREE = """async (v) => {
  const R = globalThis.ReceiptVerifier, out = [];
  const h = R.unhex;
  for (const c of v.inclusion) {
    const got = await R.verifyInclusion(c.index, c.size, await R.leafHash(h(c.leaf_data)),
                                        c.proof.map(h), h(c.root));
    if (got !== c.valid) out.push(["inclusion", c]);
  }
  for (const c of v.consistency) {
    const got = await R.verifyConsistency(c.old_size, c.new_size, h(c.old_root), h(c.new_root),
                                          c.proof.map(h));
    if (got !== c.valid) out.push(["consistency", c]);
  }
  for (const c of v.signatures) {
    const note = R.unb64(c.note, false);
    const made = R.note(c.tree_size, h(c.root_hash), h(c.chain_hash));
    if (R.hex(made) !== R.hex(note)) out.push(["note", c]);
    const got = await R.ed25519Verify(h(c.public_key), h(c.signature), note);
    if (got !== c.valid) out.push(["signature", c]);
  }
  for (const c of v.rotations) {
    const r = {oldKey: h(c.old_public_key), newKey: h(c.new_public_key), after: c.after,
               oldSig: h(c.old_signature), newSig: h(c.new_signature)};
    if (R.hex(R.rotationNote(r.oldKey, r.newKey, r.after)) !== R.hex(R.unb64(c.note, false))) {
      out.push(["rotation note", c]);
    }
    if (await R.handoverValid(r) !== c.valid) out.push(["rotation", c]);
  }
  for (const c of v.canonical) {
    const bytes = h(c.bytes);
    if (R.hex(await R.sha256(bytes)) !== c.content_hash) out.push(["content hash", c]);
    const row = R.parseCanonical(bytes);
    const same = row.event_id === c.event_id && row.topic === c.topic &&
      row.partition === c.partition && row.offset === c.offset &&
      (row.key === null ? null : R.hex(row.key)) === c.key &&
      new TextDecoder().decode(row.value) === c.value &&
      JSON.stringify(row.headers) === JSON.stringify(c.headers) &&
      row.event_type === c.event_type && row.stream_id === c.stream_id &&
      row.stream_seq === c.stream_seq && row.recorded_at_us === c.recorded_at_us;
    if (!same) out.push(["canonical", c, row]);
  }
  const twice = v.receipts.some((c) => c.key_changes && c.key_changes.length === 2);
  if (v.rotations.length < 5 || !twice) {
    out.push(["the rotation vectors are missing"]);
  }
  const [head, ...cases] = v.receipts;
  const pin = R.parseFragment(head.fragment);
  for (const c of cases) {
    const d = c.answer.donation;
    const shown = {amountMinor: d.amount.amount_minor, currency: d.amount.currency,
                   fundId: d.fund_id};
    const checks = await R.checkReceipt(c.answer, head.receipt_id, pin, shown);
    const got = Object.fromEntries(checks.map((x) => [x.name, x.ok]));
    const reasons = Object.fromEntries(
      checks.filter((x) => !x.ok).map((x) => [x.name, x.reason]));
    const changes = checks.flatMap((x) => (x.handovers || []).map((y) => y.after));
    if (JSON.stringify(got) !== JSON.stringify(c.checks) ||
        JSON.stringify(reasons) !== JSON.stringify(c.reasons) ||
        JSON.stringify(changes) !== JSON.stringify(c.key_changes)) {
      out.push(["receipt", c.what, got, reasons, changes]);
    }
  }
  return out;
}"""
