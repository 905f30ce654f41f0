"""The Merkle tree of RFC 6962 (Certificate Transparency), section 2.1, over SHA-256.

Why this exact construction and not our own: a tree head is only evidence if somebody else can
recompute it. With the RFC's leaf and node prefixes (0x00, 0x01) and its split rule (the largest
power of two smaller than n), any Certificate Transparency library can check our tree heads and
proofs, and a leaf can never be passed off as an inner node (second pre-image).

Functions here take *leaf hashes* (already `leaf_hash`ed), so that a verifier holding only the
hashes of the archive's rows can use them. Pure: no I/O.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import Self

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()
"""The tree head of an empty tree (RFC 6962: the hash of the empty string)."""


def leaf_hash(data: bytes) -> bytes:
    """MTH({d}) = SHA-256(0x00 || d)."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 || left || right): an inner node."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def split(n: int) -> int:
    """k, the largest power of two smaller than n (n > 1): where RFC 6962 splits a tree."""
    return 1 << ((n - 1).bit_length() - 1)


def root(leaves: Sequence[bytes]) -> bytes:
    """The Merkle tree head of `leaves` (leaf hashes), as RFC 6962 defines MTH."""
    frontier = Frontier()
    frontier.extend(leaves)
    return frontier.root()


class Frontier:
    """The roots of the perfect subtrees a growing tree is made of (a "compact range").

    Appending a leaf and computing the head are O(log n) and memory is O(log n), so the ledger can
    keep the head of millions of events without holding their hashes."""

    def __init__(self) -> None:
        self.size = 0
        self._peaks: list[bytes] = []  # left to right, strictly decreasing subtree sizes

    def append(self, leaf: bytes) -> None:
        """Add one leaf hash at the right end of the tree."""
        node = leaf
        self.size += 1
        carry = self.size
        while carry & 1 == 0:  # merge equal-sized subtrees, as adding 1 in binary carries
            node = node_hash(self._peaks.pop(), node)
            carry >>= 1
        self._peaks.append(node)

    @classmethod
    def resume(cls, size: int, peaks: Sequence[bytes]) -> Self:
        """The frontier of a tree of `size` leaves from its stored `peaks` (as `peaks` gave)."""
        if size < 0 or len(peaks) != size.bit_count():
            raise ValueError(f"a tree of {size} leaves has {size.bit_count()} peaks")
        frontier = cls()
        frontier.size = size
        frontier._peaks = [bytes(p) for p in peaks]
        return frontier

    @property
    def peaks(self) -> list[bytes]:
        """The subtree roots, left to right: with `size`, all it takes to resume the tree."""
        return list(self._peaks)

    def extend(self, leaves: Iterable[bytes]) -> None:
        """Append several leaf hashes in order."""
        for leaf in leaves:
            self.append(leaf)

    def root(self) -> bytes:
        """The tree head of every leaf appended so far."""
        if not self._peaks:
            return EMPTY_ROOT
        node = self._peaks[-1]
        for peak in reversed(self._peaks[:-1]):
            node = node_hash(peak, node)
        return node


def inclusion_proof(leaves: Sequence[bytes], index: int) -> list[bytes]:
    """PATH(index, D[n]) of RFC 6962 2.1.1: the hashes that lead from leaf `index` to the head."""
    if not 0 <= index < len(leaves):
        raise ValueError(f"leaf {index} is not in a tree of {len(leaves)}")
    return _path(index, leaves)


def _path(m: int, d: Sequence[bytes]) -> list[bytes]:
    n = len(d)
    if n == 1:
        return []
    k = split(n)
    if m < k:
        return [*_path(m, d[:k]), root(d[k:])]
    return [*_path(m - k, d[k:]), root(d[:k])]


def consistency_proof(leaves: Sequence[bytes], old_size: int) -> list[bytes]:
    """PROOF(m, D[n]) of RFC 6962 2.1.2: shows the first `old_size` leaves are a prefix of all."""
    if not 0 < old_size <= len(leaves):
        raise ValueError(f"no consistency proof from size {old_size} to {len(leaves)}")
    return _subproof(old_size, leaves, True)


def _subproof(m: int, d: Sequence[bytes], whole: bool) -> list[bytes]:
    n = len(d)
    if m == n:
        return [] if whole else [root(d)]
    k = split(n)
    if m <= k:
        return [*_subproof(m, d[:k], whole), root(d[k:])]
    return [*_subproof(m - k, d[k:], False), root(d[:k])]


def root_from_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes]) -> bytes:
    """The head that `proof` says a tree of `size` with `leaf` at `index` has (RFC 9162 2.1.3.2).

    Raises ValueError for a proof of the wrong shape."""
    if not 0 <= index < size:
        raise ValueError(f"leaf {index} is not in a tree of {size}")
    fn, sn = index, size - 1
    node = leaf
    for p in proof:
        if sn == 0:
            raise ValueError("inclusion proof is too long")
        if fn & 1 or fn == sn:
            node = node_hash(p, node)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            node = node_hash(node, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ValueError("inclusion proof is too short")
    return node


def verify_inclusion(
    index: int, size: int, leaf: bytes, proof: Sequence[bytes], expected_root: bytes
) -> bool:
    """True when `proof` shows `leaf` at `index` in the tree of `size` whose head is given."""
    try:
        return root_from_inclusion(index, size, leaf, proof) == expected_root
    except ValueError:
        return False


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> bool:
    """True when `proof` shows the tree of `old_size` with head `old_root` is a prefix of the
    tree of `new_size` with head `new_root` (RFC 9162 2.1.4.2): the later log extends it."""
    if not 0 < old_size <= new_size:
        return old_size == 0 and not proof  # everything extends the empty tree
    if old_size == new_size:
        return not proof and old_root == new_root
    if not proof:
        return False
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # a power of two: the old head is itself a node here
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == old_root and sr == new_root
