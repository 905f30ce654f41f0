// A donor's receipt, checked in the browser without trusting the server (docs/receipts.md).
//
// The link pins the exchange's public key and the checkpoint the receipt was issued with, in
// its fragment (never sent to a server). This script fetches the receipt's proofs and checks:
// the archived event is this donation (its canonical bytes, parsed here); its content hash is
// a leaf under the newest signed checkpoint (RFC 6962 inclusion proof); the issued checkpoint
// is signed by the pinned key, and the newest by that key or by one it handed over to through
// statements both keys signed (Ed25519, WebCrypto; each key within its span of tree sizes);
// the newest tree extends the issued one (RFC 6962 consistency proof). The same algorithms as
// services/audit/evidence (merkle, checkpoint, rotation, receipt); tests/vectors/receipts.json
// keeps them in step.
"use strict";

(function () {
  const subtle = globalThis.crypto && globalThis.crypto.subtle;
  const enc = new TextEncoder();

  function concat(...parts) {
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const p of parts) { out.set(p, at); at += p.length; }
    return out;
  }
  function hex(bytes) {
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }
  function unhex(text) {
    if (typeof text !== "string" || text.length % 2 || /[^0-9a-fA-F]/.test(text)) {
      throw new Error("not hex");
    }
    const out = new Uint8Array(text.length / 2);
    for (let i = 0; i < out.length; i++) out[i] = parseInt(text.substr(i * 2, 2), 16);
    return out;
  }
  function unb64(text, url) {
    let t = url ? text.replace(/-/g, "+").replace(/_/g, "/") : text;
    t += "=".repeat((4 - (t.length % 4)) % 4);
    const bin = atob(t);
    return Uint8Array.from(bin, (c) => c.charCodeAt(0));
  }
  function b64(bytes) {
    return btoa(String.fromCharCode(...bytes));
  }
  function same(a, b) {
    if (a.length !== b.length) return false;
    let d = 0;
    for (let i = 0; i < a.length; i++) d |= a[i] ^ b[i];
    return d === 0;
  }

  async function sha256(bytes) {
    if (!subtle) throw new Error("no_webcrypto");
    return new Uint8Array(await subtle.digest("SHA-256", bytes));
  }
  const leafHash = (data) => sha256(concat(Uint8Array.of(0), data));
  const nodeHash = (left, right) => sha256(concat(Uint8Array.of(1), left, right));
  const odd = (x) => x % 2 === 1;
  const half = (x) => Math.floor(x / 2);

  // RFC 9162 2.1.3.2: the root an inclusion proof leads to; throws for a proof of wrong shape
  async function rootFromInclusion(index, size, leaf, proof) {
    if (!(index >= 0 && index < size)) throw new Error(`leaf ${index} is not in a tree of ${size}`);
    let fn = index, sn = size - 1, node = leaf;
    for (const p of proof) {
      if (sn === 0) throw new Error("inclusion proof is too long");
      if (odd(fn) || fn === sn) {
        node = await nodeHash(p, node);
        if (!odd(fn)) while (fn && !odd(fn)) { fn = half(fn); sn = half(sn); }
      } else {
        node = await nodeHash(node, p);
      }
      fn = half(fn); sn = half(sn);
    }
    if (sn !== 0) throw new Error("inclusion proof is too short");
    return node;
  }

  async function verifyInclusion(index, size, leaf, proof, root) {
    try { return same(await rootFromInclusion(index, size, leaf, proof), root); }
    catch (e) { return false; }
  }

  // RFC 9162 2.1.4.2: the tree of size m with head oldRoot is a prefix of size n's, newRoot
  async function verifyConsistency(m, n, oldRoot, newRoot, proof) {
    if (!(m > 0 && m <= n)) return m === 0 && proof.length === 0;
    if (m === n) return proof.length === 0 && same(oldRoot, newRoot);
    if (proof.length === 0) return false;
    const path = proof.slice();
    if ((m & (m - 1)) === 0) path.unshift(oldRoot);
    let fn = m - 1, sn = n - 1;
    while (odd(fn)) { fn = half(fn); sn = half(sn); }
    let fr = path[0], sr = path[0];
    for (const c of path.slice(1)) {
      if (sn === 0) return false;
      if (odd(fn) || fn === sn) {
        fr = await nodeHash(c, fr);
        sr = await nodeHash(c, sr);
        if (!odd(fn)) while (fn && !odd(fn)) { fn = half(fn); sn = half(sn); }
      } else {
        sr = await nodeHash(sr, c);
      }
      fn = half(fn); sn = half(sn);
    }
    return sn === 0 && same(fr, oldRoot) && same(sr, newRoot);
  }

  // the signed note of a checkpoint (services/audit/checkpoint.py `note`)
  function note(size, root, chain) {
    return enc.encode(`community-exchange/ledger\n${size}\n${b64(root)}\nchain ${hex(chain)}\n`);
  }

  async function ed25519Verify(publicKey, signature, message) {
    if (!subtle) throw new Error("no_webcrypto");
    let key;
    try {
      key = await subtle.importKey("raw", publicKey, { name: "Ed25519" }, false, ["verify"]);
    } catch (e) {
      if (e && e.name === "NotSupportedError") throw new Error("no_ed25519");
      return false; // a malformed key verifies nothing
    }
    try { return await subtle.verify({ name: "Ed25519" }, key, signature, message); }
    catch (e) { return false; }
  }

  // the row whose canonical bytes these are (docs/audit.md "What is hashed")
  const TAG = enc.encode("community-exchange/archive-row/v1\0");
  function parseCanonical(data) {
    const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
    const dec = new TextDecoder("utf-8", { fatal: true });
    let at = 0;
    const take = (n) => {
      if (at + n > data.length) throw new Error("the canonical bytes end early");
      const out = data.subarray(at, at + n); at += n; return out;
    };
    const u32 = () => { take(4); return view.getUint32(at - 4); };
    const i64 = () => { take(8); return Number(view.getBigInt64(at - 8)); };
    const blob = () => take(u32());
    const text = () => dec.decode(blob());
    const present = () => {
      const f = take(1)[0];
      if (f > 1) throw new Error("a presence byte is neither 0 nor 1");
      return f === 1;
    };
    if (!same(take(TAG.length), TAG)) throw new Error("not an archive row");
    const id = hex(take(16));
    const row = {
      event_id: `${id.slice(0, 8)}-${id.slice(8, 12)}-${id.slice(12, 16)}-${id.slice(16, 20)}-${id.slice(20)}`,
      topic: text(),
    };
    take(4); row.partition = view.getInt32(at - 4);
    row.offset = i64();
    row.key = present() ? blob() : null;
    row.value = blob();
    row.headers = [];
    for (let i = u32(); i > 0; i--) row.headers.push([text(), text()]);
    row.event_type = text();
    row.stream_id = present() ? text() : null;
    row.stream_seq = present() ? i64() : null;
    row.recorded_at_us = present() ? i64() : null;
    if (at !== data.length) throw new Error("bytes are left after the row");
    return row;
  }

  function donationIn(rid) {
    try {
      const raw = unb64(rid, true);
      if (raw.length !== 32) return null;
      const h = hex(raw.subarray(0, 16));
      return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
    } catch (e) { return null; }
  }

  function parseFragment(fragment) {
    const f = new URLSearchParams(fragment.replace(/^#/, ""));
    for (const k of ["k", "n", "r", "c", "s"]) if (!f.get(k)) return null;
    const pin = {
      key: unb64(f.get("k"), true), size: Number(f.get("n")),
      root: unb64(f.get("r"), true), chain: unb64(f.get("c"), true), sig: unb64(f.get("s"), true),
    };
    if (pin.key.length !== 32 || pin.root.length !== 32 || !(pin.size > 0)) return null;
    return pin;
  }

  function fail(name, reason, detail) { return { name, ok: false, reason, detail: detail || "" }; }
  function pass(name) { return { name, ok: true, reason: "", detail: "" }; }

  // a key hand-over statement's signed bytes (services/audit/evidence/rotation.py `rotation_note`)
  function rotationNote(oldKey, newKey, after) {
    return enc.encode(`community-exchange/ledger\nkey-rotation\nfrom ${hex(oldKey)}\nto ${hex(newKey)}\nafter ${after}\n`);
  }

  async function handoverValid(r) {
    const text = rotationNote(r.oldKey, r.newKey, r.after);
    return (await ed25519Verify(r.oldKey, r.oldSig, text)) &&
      (await ed25519Verify(r.newKey, r.newSig, text));
  }

  // The keys trusted from the pinned one, as services/audit/evidence/rotation.py `KeyRing`:
  // walk forward from the pinned key, following the one statement whose old key is the current
  // key and that both keys signed, to its new key; each key is trusted for its span of tree
  // sizes. A valid statement naming the pinned key as the new one bounds its span from below.
  // Returns {spans: key id hex → {key, lowest, highest}, steps: statements followed, stop}.
  async function keyChain(pinKey, statements) {
    const valid = [];
    const seen = new Set();
    const invalid = [];
    for (const r of statements) {
      if (!(await handoverValid(r))) { invalid.push(r); continue; }
      const id = `${hex(r.oldKey)} ${hex(r.newKey)} ${r.after}`;
      if (!seen.has(id)) { seen.add(id); valid.push(r); }
    }
    const spans = new Map();
    const pinId = hex(await sha256(pinKey));
    spans.set(pinId, { key: pinKey, lowest: 0, highest: null });
    const steps = [];
    let current = pinKey, stop = null;
    for (;;) {
      const from = valid.filter((r) => same(r.oldKey, current));
      if (from.length > 1) {
        stop = ["handover_fork", `${from.length} hand-overs from one key`];
        break;
      }
      if (from.length === 0) {
        const bad = invalid.find((r) => same(r.oldKey, current));
        stop = bad ? ["handover_invalid", `the hand-over at tree size ${bad.after}`]
          : ["no_handover", ""];
        break;
      }
      const r = from[0], newId = hex(await sha256(r.newKey));
      const held = spans.get(hex(await sha256(current)));
      if (spans.has(newId) || r.after < held.lowest) {
        stop = ["handover_backwards", `the hand-over at tree size ${r.after}`];
        break;
      }
      held.highest = r.after;
      spans.set(newId, { key: r.newKey, lowest: r.after, highest: null });
      steps.push(r);
      current = r.newKey;
    }
    const toPin = valid.filter((r) => same(r.newKey, pinKey));
    const pinned = spans.get(pinId);
    if (toPin.length === 1 && !spans.has(hex(await sha256(toPin[0].oldKey))) &&
        !(pinned.highest !== null && toPin[0].after > pinned.highest)) {
      pinned.lowest = toPin[0].after;
    }
    return { spans, steps, stop };
  }

  // a checkpoint signed by its key in `spans`, within that key's span of tree sizes
  async function signedCheck(name, spans, size, root, chain, keyId, sig) {
    const held = spans.get(hex(keyId));
    if (!held) return fail(name, "key_changed", `key id ${hex(keyId).slice(0, 16)}…`);
    if (size < held.lowest || (held.highest !== null && size > held.highest)) {
      return fail(name, "outside_span",
        `${size} ∉ ${held.lowest}–${held.highest === null ? "…" : held.highest}`);
    }
    try {
      const ok = await ed25519Verify(held.key, sig, note(size, root, chain));
      return ok ? pass(name) : fail(name, "bad_signature");
    } catch (e) {
      return fail(name, e.message === "no_ed25519" ? "no_ed25519" : "no_webcrypto");
    }
  }

  // the key checks (services/audit/evidence/receipt.py `key_checks`): [key_change,] signature,
  // issued
  async function keyChecks(pin, cp, statements) {
    if (!pin) return [fail("signature", "no_pin"), fail("issued", "no_pin")];
    let chain;
    try { chain = await keyChain(pin.key, statements); }
    catch (e) {
      const why = e.message === "no_ed25519" ? "no_ed25519" : "no_webcrypto";
      return [fail("signature", why), fail("issued", why)];
    }
    const checks = [];
    const pinId = await sha256(pin.key);
    let reached = true;
    if (!same(cp.keyId, pinId)) {
      const ids = [];
      for (const r of chain.steps) ids.push(hex(await sha256(r.newKey)));
      const at = ids.indexOf(hex(cp.keyId));
      reached = at >= 0;
      if (reached) {
        const c = pass("key_change");
        c.handovers = await Promise.all(chain.steps.slice(0, at + 1).map(async (r) => ({
          after: r.after, from: hex(await sha256(r.oldKey)), to: hex(await sha256(r.newKey)),
        })));
        checks.push(c);
      } else {
        checks.push(fail("key_change", ...chain.stop));
      }
    }
    checks.push(reached ? await signedCheck("signature", chain.spans, cp.size, cp.root, cp.chain, cp.keyId, cp.sig)
      : fail("signature", "key_changed", `key id ${hex(cp.keyId).slice(0, 16)}…`));
    checks.push(await signedCheck("issued", chain.spans, pin.size, pin.root, pin.chain, pinId, pin.sig));
    return checks;
  }

  // every check of a receipt answer against the pinned anchor (services/audit/evidence/receipt.py)
  async function checkReceipt(doc, rid, pin, shown) {
    if (!subtle) return [fail("answer", "no_webcrypto")];
    let canonical, index, cp, path, from, proof, statements;
    try {
      canonical = unb64(doc.event.canonical_bytes, false);
      index = Number(doc.event.leaf_index);
      const c = doc.checkpoint;
      cp = {
        size: Number(c.tree_size), root: unhex(c.root_hash), chain: unhex(c.chain_hash),
        keyId: unhex(c.key_id), sig: unhex(c.signature),
      };
      path = doc.inclusion_proof.map(unhex);
      from = doc.consistency ? Number(doc.consistency.from_size) : -1;
      proof = doc.consistency ? doc.consistency.proof.map(unhex) : [];
      statements = (doc.key_rotations || []).map((r) => ({
        oldKey: unhex(r.old_public_key), newKey: unhex(r.new_public_key),
        after: Number(r.after), oldSig: unhex(r.old_signature), newSig: unhex(r.new_signature),
      }));
      if (statements.some((r) => !Number.isInteger(r.after))) throw new Error("after is not a number");
    } catch (e) {
      return [fail("answer", "answer_unreadable", String(e))];
    }
    const checks = [];
    try {
      const row = parseCanonical(canonical);
      const env = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(row.value));
      const p = env.payload || {};
      const amount = (p.donation || {}).amount || {};
      if (row.event_type !== "DonationReceived" || env.event_type !== "DonationReceived") {
        checks.push(fail("event", "event_not_donation", row.event_type));
      } else if (String(p.donation_id) !== donationIn(rid)) {
        checks.push(fail("event", "event_other_donation", String(p.donation_id)));
      } else if (amount.amount_minor !== shown.amountMinor || amount.currency !== shown.currency
                 || String(p.fund_id) !== shown.fundId) {
        checks.push(fail("event", "event_differs"));
      } else {
        checks.push(pass("event"));
      }
    } catch (e) {
      checks.push(fail("event", "event_unreadable", String(e.message || e)));
    }
    const leaf = await leafHash(await sha256(canonical));
    let root = null, why = "";
    try { root = await rootFromInclusion(index, cp.size, leaf, path); }
    catch (e) { why = e.message; }
    checks.push(root && same(root, cp.root) ? pass("inclusion") : fail("inclusion", "not_included", why));
    checks.push(...await keyChecks(pin, cp, statements));
    if (!pin) {
      checks.push(fail("consistency", "no_pin"));
    } else if (from !== pin.size) {
      checks.push(fail("consistency", "no_consistency"));
    } else if (await verifyConsistency(pin.size, cp.size, pin.root, cp.root, proof)) {
      checks.push(pass("consistency"));
    } else {
      checks.push(fail("consistency", "not_consistent", `${pin.size} → ${cp.size}`));
    }
    return checks;
  }

  globalThis.ReceiptVerifier = {
    sha256, leafHash, nodeHash, rootFromInclusion, verifyInclusion, verifyConsistency, note,
    rotationNote, handoverValid, keyChain, ed25519Verify, parseCanonical, parseFragment, checkReceipt, hex, unhex, unb64,
  };

  // ---- the page ----

  function say(el, key) { return el.dataset["msg" + key.replace(/(^|_)(\w)/g, (m, s, c) => c.toUpperCase())] || key; }

  function keepFragmentOnLanguageLinks() {
    if (!location.hash) return;
    for (const a of document.querySelectorAll("a.lang")) {
      const url = new URL(a.href, location.href);
      url.searchParams.set("back", location.pathname + location.hash);
      a.href = url.pathname + url.search;
    }
  }

  // the hand-overs a passed key change followed, in the page's language
  function handoversSaid(strings, check) {
    return (check.handovers || []).map((h, i) =>
      say(strings, i ? "handover_next" : "handover_pinned")
        .replace("{after}", String(h.after)).replace("{key}", h.to.slice(0, 16))).join(" ");
  }

  function show(page, checks) {
    const strings = document.getElementById("receipt-strings");
    let all = true;
    for (const c of checks) {
      all = all && c.ok;
      // a failure before any check (no answer, no WebCrypto) is shown on the first line
      const li = document.querySelector(`[data-check="${c.name}"]`) ||
        document.querySelector('[data-check="event"]');
      li.dataset.state = c.ok ? "ok" : "failed";
      li.hidden = false;  // the key change line shows only when the key changed
      li.querySelector(".check-result").textContent = say(strings, c.ok ? "ok" : "failed");
      li.querySelector(".check-reason").textContent = c.ok ? handoversSaid(strings, c) :
        say(strings, "reason_" + c.reason) + (c.detail ? ` (${c.detail})` : "");
      if (c.reason === "key_changed") document.getElementById("key-change").hidden = false;
    }
    const verdict = document.getElementById("verdict");
    verdict.dataset.state = all ? "verified" : "failed";
    verdict.textContent = say(strings, all ? "verified" : "not_verified");
  }

  async function run(page) {
    const strings = document.getElementById("receipt-strings");
    const rid = page.dataset.receipt;
    let pin = null;
    try { pin = parseFragment(location.hash); } catch (e) { pin = null; }
    const pinned = document.getElementById("pinned-key");
    if (pinned) pinned.textContent = pin ? hex(pin.key) : say(strings, "no_pin_short");
    const url = `/v1/receipts/${encodeURIComponent(rid)}` + (pin ? `?from=${pin.size}` : "");
    let response;
    try { response = await fetch(url, { cache: "no-store", credentials: "omit" }); }
    catch (e) { return show(page, [fail("answer", "unreachable")]); }
    if (response.status === 503) {
      const wait = Number(response.headers.get("Retry-After") || "10");
      const verdict = document.getElementById("verdict");
      verdict.dataset.state = "waiting";
      verdict.textContent = say(strings, "waiting").replace("{seconds}", String(wait));
      setTimeout(() => location.reload(), Math.min(wait, 120) * 1000);
      return;
    }
    if (!response.ok) return show(page, [fail("answer", "answer_unreadable", String(response.status))]);
    const doc = await response.json();
    const shown = {
      amountMinor: Number(page.dataset.amountMinor),
      currency: page.dataset.currency,
      fundId: page.dataset.fundId,
    };
    show(page, await checkReceipt(doc, rid, pin, shown));
  }

  document.addEventListener("DOMContentLoaded", () => {
    keepFragmentOnLanguageLinks();
    for (const b of document.querySelectorAll("[data-print]")) {
      b.addEventListener("click", () => window.print());
    }
    const page = document.getElementById("receipt");
    if (page && page.dataset.retry) {  // not yet covered by a checkpoint: look again then
      setTimeout(() => location.reload(), Math.min(Number(page.dataset.retry), 120) * 1000);
    } else if (page && page.dataset.receipt) {
      run(page);
    }
  });
})();
