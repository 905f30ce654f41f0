"""The Merkle tree is RFC 6962's: the Certificate Transparency reference vectors hold, and
proofs agree with a naive, recursive reading of the RFC for every shape of tree."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.audit.evidence import merkle

pytestmark = pytest.mark.unit

# The reference leaves and heads of the Certificate Transparency test suite (RFC 6962).
CT_LEAVES = [
    bytes.fromhex(h)
    for h in (
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    )
]
CT_ROOTS = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
CT_INCLUSION = {
    (0, 8): [
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    ],
    (5, 8): [
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    ],
}
CT_CONSISTENCY = {
    (1, 8): [
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    ],
    (6, 8): [
        "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    ],
    (2, 5): [
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
    ],
}
HASHED = [merkle.leaf_hash(d) for d in CT_LEAVES]


def naive_root(leaves: list[bytes]) -> bytes:
    """MTH exactly as RFC 6962 2.1 writes it, recursion and all."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return hashlib.sha256(b"\x01" + naive_root(leaves[:k]) + naive_root(leaves[k:])).digest()


def test_the_reference_tree_heads_for_every_size() -> None:
    for n, expected in enumerate(CT_ROOTS):
        assert merkle.root(HASHED[:n]).hex() == expected


def test_the_reference_inclusion_proofs() -> None:
    root = merkle.root(HASHED)
    for (index, size), expected in CT_INCLUSION.items():
        proof = merkle.inclusion_proof(HASHED[:size], index)
        assert [p.hex() for p in proof] == expected
        assert merkle.verify_inclusion(index, size, HASHED[index], proof, root)


def test_the_reference_consistency_proofs() -> None:
    for (old, new), expected in CT_CONSISTENCY.items():
        proof = merkle.consistency_proof(HASHED[:new], old)
        assert [p.hex() for p in proof] == expected
        old_root, new_root = merkle.root(HASHED[:old]), merkle.root(HASHED[:new])
        assert merkle.verify_consistency(old, new, old_root, new_root, proof)


leaf_lists = st.lists(st.binary(min_size=0, max_size=8), min_size=1, max_size=70, unique=True).map(
    lambda data: [merkle.leaf_hash(d) for d in data]
)


@given(leaf_lists)
@settings(max_examples=150, deadline=None)
def test_the_incremental_head_equals_the_naive_one(leaves: list[bytes]) -> None:
    frontier = merkle.Frontier()
    for n, leaf in enumerate(leaves, start=1):
        frontier.append(leaf)
        assert frontier.root() == naive_root(leaves[:n])


@given(leaf_lists, st.data())
@settings(max_examples=150, deadline=None)
def test_a_tree_resumed_from_its_peaks_goes_on_as_the_whole_tree(
    leaves: list[bytes], data: st.DataObject
) -> None:
    cut = data.draw(st.integers(0, len(leaves)))
    before = merkle.Frontier()
    before.extend(leaves[:cut])
    resumed = merkle.Frontier.resume(before.size, before.peaks)
    assert resumed.root() == before.root()
    resumed.extend(leaves[cut:])
    assert (resumed.size, resumed.root()) == (len(leaves), naive_root(leaves))


def test_peaks_that_do_not_fit_the_size_are_refused() -> None:
    tree = merkle.Frontier()
    tree.extend(merkle.leaf_hash(bytes([i])) for i in range(6))  # 6 = 4 + 2: two peaks
    assert len(tree.peaks) == 2
    with pytest.raises(ValueError, match="2 peaks"):
        merkle.Frontier.resume(6, tree.peaks[:1])
    with pytest.raises(ValueError):
        merkle.Frontier.resume(7, tree.peaks)


@given(leaf_lists, st.data())
@settings(max_examples=150, deadline=None)
def test_every_inclusion_proof_verifies_and_a_wrong_one_does_not(
    leaves: list[bytes], data: st.DataObject
) -> None:
    n = len(leaves)
    index = data.draw(st.integers(0, n - 1))
    root = naive_root(leaves)
    proof = merkle.inclusion_proof(leaves, index)
    assert merkle.verify_inclusion(index, n, leaves[index], proof, root)
    assert not merkle.verify_inclusion(index, n, merkle.leaf_hash(b"forged"), proof, root)
    if n > 1:
        assert not merkle.verify_inclusion((index + 1) % n, n, leaves[index], proof, root)
        assert not merkle.verify_inclusion(index, n, leaves[index], proof[:-1], root)


@given(leaf_lists, st.data())
@settings(max_examples=150, deadline=None)
def test_every_consistency_proof_verifies_and_a_rewritten_history_does_not(
    leaves: list[bytes], data: st.DataObject
) -> None:
    n = len(leaves)
    m = data.draw(st.integers(1, n))
    proof = merkle.consistency_proof(leaves, m)
    old_root, new_root = naive_root(leaves[:m]), naive_root(leaves)
    assert merkle.verify_consistency(m, n, old_root, new_root, proof)
    rewritten = list(leaves)
    rewritten[data.draw(st.integers(0, m - 1))] = merkle.leaf_hash(b"rewritten")
    if rewritten != leaves:  # the later log changed one of the events the old head covers
        assert not merkle.verify_consistency(m, n, old_root, naive_root(rewritten), proof)
        forged = merkle.consistency_proof(rewritten, m)
        assert not merkle.verify_consistency(m, n, old_root, naive_root(rewritten), forged)
    if m < n:
        assert not merkle.verify_consistency(m, n, old_root, new_root, [])
        assert not merkle.verify_consistency(m, n, new_root, new_root, proof)
