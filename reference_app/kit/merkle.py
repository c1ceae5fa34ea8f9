"""Certificate Transparency Merkle tree (RFC 9162 s. 2.1, SHA-256) for a tamper-evident audit log.

Leaves are always handled as leaf hashes (see :func:`leaf_hash`), so callers can store and
ship 32-byte values instead of the log entries themselves.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "CompactRange",
    "consistency_proof",
    "inclusion_proof",
    "leaf_hash",
    "node_hash",
    "root_from_leaf_hashes",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE: int = 32
EMPTY_ROOT: bytes = hashlib.sha256(b"").digest()

# Domain-separation prefixes: they stop a leaf from being passed off as an interior node
# (second-preimage attack on the tree).
_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"

# Sizes are serialised as unsigned 64-bit integers, as in RFC 9162 tree heads.
_SIZE_BYTES = 8
_MAX_SIZE = (1 << (8 * _SIZE_BYTES)) - 1

_sha256 = hashlib.sha256


def _node(left: bytes, right: bytes) -> bytes:
    # Unchecked node_hash for the hot loops, whose inputs were validated on entry.
    return _sha256(_NODE_PREFIX + left + right).digest()


def _check_hash(value: bytes, what: str) -> None:
    if len(value) != HASH_SIZE:
        raise ValueError(f"{what} must be {HASH_SIZE} bytes, got {len(value)}")


def _check_leaves(leaves: Sequence[bytes]) -> None:
    if any(len(h) != HASH_SIZE for h in leaves):
        bad = next(i for i, h in enumerate(leaves) if len(h) != HASH_SIZE)
        _check_hash(leaves[bad], f"leaf hash {bad}")


def _split(n: int) -> int:
    """Largest power of two strictly below ``n`` (n >= 2): the RFC's split point k."""
    return 1 << ((n - 1).bit_length() - 1)


def _root(level: list[bytes]) -> bytes:
    # Pairing level by level and promoting an odd last node unchanged gives exactly the
    # RFC's "split at the largest power of two" tree, in linear time and without recursion.
    if not level:
        return EMPTY_ROOT
    while len(level) > 1:
        paired = [_node(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            paired.append(level[-1])
        level = paired
    return level[0]


def _range_root(leaves: Sequence[bytes], lo: int, hi: int) -> bytes:
    return _root(list(leaves[lo:hi]))


def leaf_hash(data: bytes) -> bytes:
    """Return the RFC 9162 leaf hash SHA-256(0x00 || data)."""
    return _sha256(_LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """Return the RFC 9162 interior node hash SHA-256(0x01 || left || right)."""
    _check_hash(left, "left hash")
    _check_hash(right, "right hash")
    return _node(left, right)


def root_from_leaf_hashes(leaves: Sequence[bytes]) -> bytes:
    """Return the Merkle Tree Hash MTH(D[n]) of a list of leaf hashes (EMPTY_ROOT if empty)."""
    _check_leaves(leaves)
    return _root(list(leaves))


def inclusion_proof(leaves: Sequence[bytes], index: int) -> list[bytes]:
    """Return the audit path PATH(index, D[n]) for the leaf at ``index``, leaf end first."""
    n = len(leaves)
    if not 0 <= index < n:
        raise ValueError(f"leaf index {index} out of range for tree size {n}")
    _check_leaves(leaves)
    # Walk down from the root; each step records the sibling subtree the leaf is not in.
    # Each leaf is hashed into at most one sibling, so the whole proof costs O(n).
    path: list[bytes] = []
    lo, hi = 0, n
    while hi - lo > 1:
        k = _split(hi - lo)
        if index < lo + k:
            path.append(_range_root(leaves, lo + k, hi))
            hi = lo + k
        else:
            path.append(_range_root(leaves, lo, lo + k))
            lo += k
    path.reverse()
    return path


def consistency_proof(leaves: Sequence[bytes], old_size: int) -> list[bytes]:
    """Return PROOF(old_size, D[n]) showing the first ``old_size`` leaves are a prefix of D[n].

    The proof is empty when ``old_size`` is 0 or equal to the tree size.
    """
    n = len(leaves)
    if not 0 <= old_size <= n:
        raise ValueError(f"old size {old_size} out of range for tree size {n}")
    _check_leaves(leaves)
    if old_size in (0, n):
        return []
    # Iterative form of SUBPROOF(m, D[lo:hi], b): the RFC appends each sibling after the
    # sub-proof, so items are collected root end first and reversed at the end.
    proof: list[bytes] = []
    m, lo, hi = old_size, 0, n
    old_root_known = True
    while m != hi - lo:
        k = _split(hi - lo)
        if m <= k:
            proof.append(_range_root(leaves, lo + k, hi))
            hi = lo + k
        else:
            proof.append(_range_root(leaves, lo, lo + k))
            lo += k
            m -= k
            old_root_known = False
    if not old_root_known:
        # This subtree is part of the old tree but not its root, so the verifier needs it.
        proof.append(_range_root(leaves, lo, hi))
    proof.reverse()
    return proof


def verify_inclusion(
    leaf: bytes, index: int, tree_size: int, proof: Sequence[bytes], root: bytes
) -> bool:
    """Check that leaf hash ``leaf`` is at ``index`` in the tree of ``tree_size`` with ``root``.

    Implements RFC 9162 s. 2.1.3.2. Returns False for any proof that does not verify,
    including one of the wrong length or with elements that are not 32 bytes.
    """
    _check_hash(leaf, "leaf hash")
    _check_hash(root, "root")
    if not 0 <= index < tree_size:
        raise ValueError(f"leaf index {index} out of range for tree size {tree_size}")
    if any(len(p) != HASH_SIZE for p in proof):
        return False
    fn, sn, r = index, tree_size - 1, leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = _node(p, r)
            # A right-edge node with no sibling on this level is promoted unchanged.
            while fn and not fn & 1:
                fn >>= 1
                sn >>= 1
        else:
            r = _node(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> bool:
    """Check that the tree (new_size, new_root) extends the tree (old_size, old_root).

    Implements RFC 9162 s. 2.1.4.2. Returns False for any proof that does not verify,
    including one of the wrong length or with elements that are not 32 bytes.
    """
    _check_hash(old_root, "old root")
    _check_hash(new_root, "new root")
    if not 0 <= old_size <= new_size:
        raise ValueError(f"need 0 <= old size <= new size, got {old_size} and {new_size}")
    if any(len(p) != HASH_SIZE for p in proof):
        return False
    if old_size == 0:
        # Every tree extends the empty one; there is nothing to prove about the new root
        # unless it is empty too.
        return not proof and old_root == EMPTY_ROOT and (new_size > 0 or new_root == EMPTY_ROOT)
    if old_size == new_size:
        return not proof and old_root == new_root
    if not proof:
        return False
    path = list(proof)
    if old_size & (old_size - 1) == 0:
        # The old tree is a complete subtree of the new one, so the proof omits its root.
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
            fr = _node(c, fr)
            sr = _node(c, sr)
            while fn and not fn & 1:
                fn >>= 1
                sn >>= 1
        else:
            sr = _node(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == old_root and sr == new_root


class CompactRange:
    """The right frontier of a tree: the roots of its perfect subtrees, enough to append and to
    compute the root.

    ``hashes`` holds one root per set bit of ``size``, largest (leftmost) subtree first, so an
    append-only log can persist O(log n) state instead of every leaf hash.
    """

    __slots__ = ("_hashes", "_size")

    def __init__(self, size: int = 0, hashes: Sequence[bytes] = ()) -> None:
        if not 0 <= size <= _MAX_SIZE:
            raise ValueError(f"size must be between 0 and {_MAX_SIZE}, got {size}")
        expected = size.bit_count()
        if len(hashes) != expected:
            raise ValueError(f"a range of size {size} needs {expected} hashes, got {len(hashes)}")
        for i, h in enumerate(hashes):
            _check_hash(h, f"hash {i}")
        self._size = size
        # Copied to bytes so a caller's bytearray cannot change the state behind our back.
        self._hashes = [bytes(h) for h in hashes]

    @property
    def size(self) -> int:
        """Number of leaves appended so far."""
        return self._size

    @property
    def hashes(self) -> tuple[bytes, ...]:
        """Roots of the perfect subtrees, largest first."""
        return tuple(self._hashes)

    def append(self, leaf: bytes) -> None:
        """Append one leaf hash."""
        _check_hash(leaf, "leaf hash")
        if self._size == _MAX_SIZE:
            raise ValueError("tree is full")
        h = leaf
        s = self._size
        # Each trailing 1 bit of the size is a perfect subtree of the same height as the new
        # one, so they merge, exactly like a binary carry.
        while s & 1:
            h = _node(self._hashes.pop(), h)
            s >>= 1
        self._hashes.append(bytes(h))
        self._size += 1

    def extend(self, leaves: Iterable[bytes]) -> None:
        """Append leaf hashes in order."""
        for leaf in leaves:
            self.append(leaf)

    def root(self) -> bytes:
        """Return the Merkle Tree Hash of all leaves appended (EMPTY_ROOT when empty)."""
        if not self._hashes:
            return EMPTY_ROOT
        r = self._hashes[-1]
        for h in reversed(self._hashes[:-1]):
            r = _node(h, r)
        return r

    def to_bytes(self) -> bytes:
        """Serialise as the size (8-byte big-endian) followed by the concatenated hashes."""
        return self._size.to_bytes(_SIZE_BYTES, "big") + b"".join(self._hashes)

    @classmethod
    def from_bytes(cls, raw: bytes) -> CompactRange:
        """Parse the output of :meth:`to_bytes`; raise ValueError if it is malformed."""
        if len(raw) < _SIZE_BYTES or (len(raw) - _SIZE_BYTES) % HASH_SIZE:
            raise ValueError(
                f"compact range must be {_SIZE_BYTES} bytes plus a multiple of {HASH_SIZE},"
                f" got {len(raw)} bytes"
            )
        size = int.from_bytes(raw[:_SIZE_BYTES], "big")
        hashes = [raw[i : i + HASH_SIZE] for i in range(_SIZE_BYTES, len(raw), HASH_SIZE)]
        return cls(size, hashes)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CompactRange):
            return NotImplemented
        return self._size == other._size and self._hashes == other._hashes

    def __repr__(self) -> str:
        return f"CompactRange(size={self._size}, root={self.root().hex()})"
