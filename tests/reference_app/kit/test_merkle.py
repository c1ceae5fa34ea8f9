"""Tests for the RFC 9162 Merkle tree in reference_app.kit.merkle."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import cast

import pytest

from reference_app.kit.merkle import (
    EMPTY_ROOT,
    HASH_SIZE,
    CompactRange,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root_from_leaf_hashes,
    verify_consistency,
    verify_inclusion,
)

# ---------------------------------------------------------------------------------------------
# Published known-answer vectors.
#
# Leaf inputs, roots for sizes 1..8, audit paths and consistency proofs are copied from
#   google/certificate-transparency: cpp/merkletree/merkle_tree_test.cc
#     (kInputs, kSHA256Roots, kSHA256Paths, kSHA256Proofs)
# and the same values (plus the extra consistency vector 6 -> 7) from
#   transparency-dev/merkle: proof/verify_test.go
#     (leaves, roots, inclusionProofs, consistencyProofs).
# In both sources leaf numbers in the path vectors are 1-based; here they are 0-based indices.
# ---------------------------------------------------------------------------------------------

INPUTS = [
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

ROOTS = [
    bytes.fromhex(h)
    for h in (
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    )
]

SHA256_EMPTY = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

# (0-based leaf index, tree size, audit path)
PATH_VECTORS: list[tuple[int, int, list[str]]] = [
    (0, 1, []),
    (
        0,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        5,
        8,
        [
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (
        1,
        5,
        [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
]

# (old size, new size, consistency proof)
CONSISTENCY_VECTORS: list[tuple[int, int, list[str]]] = [
    (1, 1, []),
    (
        1,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        6,
        8,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        2,
        5,
        [
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
    (
        6,
        7,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
]

VECTOR_LEAVES = [leaf_hash(d) for d in INPUTS]


def _unhex(hashes: Sequence[str]) -> list[bytes]:
    return [bytes.fromhex(h) for h in hashes]


def _flip(h: bytes) -> bytes:
    return bytes([h[0] ^ 0x10]) + h[1:]


# ---------------------------------------------------------------------------------------------
# Independent reference, written directly from the recursive definitions of RFC 9162 s. 2.1
# (MTH, PATH, PROOF/SUBPROOF) using hashlib only, to cross-check the module on many sizes.
# ---------------------------------------------------------------------------------------------


def _ref_k(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def _ref_mth(d: Sequence[bytes]) -> bytes:
    if not d:
        return hashlib.sha256(b"").digest()
    if len(d) == 1:
        return d[0]
    k = _ref_k(len(d))
    return hashlib.sha256(b"\x01" + _ref_mth(d[:k]) + _ref_mth(d[k:])).digest()


def _ref_path(m: int, d: Sequence[bytes]) -> list[bytes]:
    if len(d) == 1:
        return []
    k = _ref_k(len(d))
    if m < k:
        return [*_ref_path(m, d[:k]), _ref_mth(d[k:])]
    return [*_ref_path(m - k, d[k:]), _ref_mth(d[:k])]


def _ref_subproof(m: int, d: Sequence[bytes], b: bool) -> list[bytes]:
    n = len(d)
    if m == n:
        return [] if b else [_ref_mth(d)]
    k = _ref_k(n)
    if m <= k:
        return [*_ref_subproof(m, d[:k], b), _ref_mth(d[k:])]
    return [*_ref_subproof(m - k, d[k:], False), _ref_mth(d[:k])]


def _leaves(n: int) -> list[bytes]:
    return [leaf_hash(i.to_bytes(4, "big")) for i in range(n)]


# ---------------------------------------------------------------------------------------------
# Hashing primitives
# ---------------------------------------------------------------------------------------------


def test_constants() -> None:
    assert HASH_SIZE == 32
    assert EMPTY_ROOT.hex() == SHA256_EMPTY
    assert root_from_leaf_hashes([]) == EMPTY_ROOT
    assert CompactRange().root() == EMPTY_ROOT


def test_leaf_and_node_hash_domain_separation() -> None:
    assert leaf_hash(b"abc") == hashlib.sha256(b"\x00abc").digest()
    a, b = leaf_hash(b"a"), leaf_hash(b"b")
    assert node_hash(a, b) == hashlib.sha256(b"\x01" + a + b).digest()
    assert node_hash(a, b) != node_hash(b, a)
    assert leaf_hash(a + b) != node_hash(a, b)


@pytest.mark.parametrize(("left", "right"), [(b"", b"\x00" * 32), (b"\x00" * 32, b"\x00" * 31)])
def test_node_hash_rejects_wrong_length(left: bytes, right: bytes) -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        node_hash(left, right)


# ---------------------------------------------------------------------------------------------
# Known-answer tests
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", range(1, 9))
def test_published_roots(size: int) -> None:
    assert root_from_leaf_hashes(VECTOR_LEAVES[:size]) == ROOTS[size - 1]
    cr = CompactRange()
    cr.extend(VECTOR_LEAVES[:size])
    assert cr.root() == ROOTS[size - 1]


def test_published_roots_incrementally() -> None:
    cr = CompactRange()
    for size, leaf in enumerate(VECTOR_LEAVES, start=1):
        cr.append(leaf)
        assert cr.size == size
        assert cr.root() == ROOTS[size - 1]


@pytest.mark.parametrize(("index", "size", "path"), PATH_VECTORS)
def test_published_inclusion_proofs(index: int, size: int, path: list[str]) -> None:
    expected = _unhex(path)
    assert inclusion_proof(VECTOR_LEAVES[:size], index) == expected
    assert verify_inclusion(VECTOR_LEAVES[index], index, size, expected, ROOTS[size - 1])


@pytest.mark.parametrize(("old", "new", "proof"), CONSISTENCY_VECTORS)
def test_published_consistency_proofs(old: int, new: int, proof: list[str]) -> None:
    expected = _unhex(proof)
    assert consistency_proof(VECTOR_LEAVES[:new], old) == expected
    assert verify_consistency(old, new, ROOTS[old - 1], ROOTS[new - 1], expected)


def test_reference_implementation_matches_published_vectors() -> None:
    # Guards the reference used below: if it were wrong, the exhaustive tests would be moot.
    for size in range(1, 9):
        assert _ref_mth(VECTOR_LEAVES[:size]) == ROOTS[size - 1]
    for index, size, path in PATH_VECTORS:
        assert _ref_path(index, VECTOR_LEAVES[:size]) == _unhex(path)
    for old, new, proof in CONSISTENCY_VECTORS:
        if old < new:
            assert _ref_subproof(old, VECTOR_LEAVES[:new], True) == _unhex(proof)


# ---------------------------------------------------------------------------------------------
# Exhaustive checks for every tree size 1..70
# ---------------------------------------------------------------------------------------------

SIZES = range(1, 71)
ALL_LEAVES = _leaves(max(SIZES))


@pytest.mark.parametrize("n", SIZES)
def test_roots_agree(n: int) -> None:
    leaves = ALL_LEAVES[:n]
    expected = _ref_mth(leaves)
    assert root_from_leaf_hashes(leaves) == expected
    cr = CompactRange()
    cr.extend(leaves)
    assert cr.size == n
    assert len(cr.hashes) == n.bit_count()
    assert cr.root() == expected


@pytest.mark.parametrize("n", SIZES)
def test_inclusion_proofs_exhaustive(n: int) -> None:
    leaves = ALL_LEAVES[:n]
    root = root_from_leaf_hashes(leaves)
    other_leaf = leaf_hash(b"not in the tree")
    for index in range(n):
        proof = inclusion_proof(leaves, index)
        assert proof == _ref_path(index, leaves)
        leaf = leaves[index]
        assert verify_inclusion(leaf, index, n, proof, root)
        # Tampering of any kind must be caught.
        assert not verify_inclusion(other_leaf, index, n, proof, root)
        assert not verify_inclusion(leaf, index, n, proof, _flip(root))
        if n > 1:
            assert not verify_inclusion(leaf, (index + 1) % n, n, proof, root)
            assert not verify_inclusion(leaf, index, n, proof[:-1], root)
            assert not verify_inclusion(leaf, index, n, [*proof, root], root)
            assert not verify_inclusion(leaf, index, n, [root, *proof], root)
        for i in range(len(proof)):
            bad = list(proof)
            bad[i] = _flip(bad[i])
            assert not verify_inclusion(leaf, index, n, bad, root)
        # A different claimed size needs a different proof (only checked where it must).
        if n > 1:
            assert not verify_inclusion(leaf, index, 2 * n, proof, root)


@pytest.mark.parametrize("n", SIZES)
def test_consistency_proofs_exhaustive(n: int) -> None:
    leaves = ALL_LEAVES[:n]
    new_root = root_from_leaf_hashes(leaves)
    for old in range(1, n + 1):
        old_root = root_from_leaf_hashes(leaves[:old])
        proof = consistency_proof(leaves, old)
        assert proof == (_ref_subproof(old, leaves, True) if old < n else [])
        assert verify_consistency(old, n, old_root, new_root, proof)
        assert not verify_consistency(old, n, _flip(old_root), new_root, proof)
        assert not verify_consistency(old, n, old_root, _flip(new_root), proof)
        for i in range(len(proof)):
            bad = list(proof)
            bad[i] = _flip(bad[i])
            assert not verify_consistency(old, n, old_root, new_root, bad)
        if proof:
            assert not verify_consistency(old, n, old_root, new_root, proof[:-1])
            assert not verify_consistency(old, n, old_root, new_root, [*proof, new_root])
            assert not verify_consistency(old, n, old_root, new_root, [old_root, *proof])
            assert not verify_consistency(old, n, old_root, new_root, [])
            assert not verify_consistency(old, n, new_root, old_root, proof)


@pytest.mark.parametrize("n", range(71))
def test_compact_range_serialisation_round_trip(n: int) -> None:
    cr = CompactRange()
    cr.extend(ALL_LEAVES[:n])
    raw = cr.to_bytes()
    assert raw[:8] == n.to_bytes(8, "big")
    assert len(raw) == 8 + HASH_SIZE * n.bit_count()
    back = CompactRange.from_bytes(raw)
    assert back == cr
    assert back.size == n
    assert back.hashes == cr.hashes
    assert back.root() == cr.root()
    # The restored frontier must keep growing into the same tree.
    back.extend(ALL_LEAVES[n : n + 5])
    assert back.root() == root_from_leaf_hashes(ALL_LEAVES[: n + 5])


# ---------------------------------------------------------------------------------------------
# Larger tree
# ---------------------------------------------------------------------------------------------


def test_large_tree_compact_range_matches_batch_root() -> None:
    leaves = [leaf_hash(i.to_bytes(8, "big")) for i in range(100_000)]
    cr = CompactRange()
    cr.extend(leaves)
    root = root_from_leaf_hashes(leaves)
    assert cr.root() == root
    index = 77_777
    proof = inclusion_proof(leaves, index)
    assert len(proof) == 17
    assert verify_inclusion(leaves[index], index, len(leaves), proof, root)
    old = 65_537
    old_root = root_from_leaf_hashes(leaves[:old])
    assert verify_consistency(old, len(leaves), old_root, root, consistency_proof(leaves, old))


# ---------------------------------------------------------------------------------------------
# Edge cases and argument validation
# ---------------------------------------------------------------------------------------------


def test_consistency_from_empty_tree() -> None:
    leaves = ALL_LEAVES[:5]
    root = root_from_leaf_hashes(leaves)
    assert consistency_proof(leaves, 0) == []
    assert consistency_proof([], 0) == []
    assert verify_consistency(0, 5, EMPTY_ROOT, root, [])
    assert verify_consistency(0, 0, EMPTY_ROOT, EMPTY_ROOT, [])
    assert not verify_consistency(0, 5, root, root, [])
    assert not verify_consistency(0, 5, EMPTY_ROOT, root, [root])
    assert not verify_consistency(0, 0, EMPTY_ROOT, root, [])


def test_verify_returns_false_for_malformed_proof_elements() -> None:
    leaves = ALL_LEAVES[:6]
    root = root_from_leaf_hashes(leaves)
    proof = inclusion_proof(leaves, 3)
    assert not verify_inclusion(leaves[3], 3, 6, [*proof[:-1], proof[-1][:-1]], root)
    assert not verify_inclusion(leaves[3], 3, 6, [b"", *proof], root)
    old_root = root_from_leaf_hashes(leaves[:3])
    cproof = consistency_proof(leaves, 3)
    assert not verify_consistency(3, 6, old_root, root, [*cproof, b""])
    assert not verify_consistency(3, 6, old_root, root, [cproof[0] + b"\x00", *cproof[1:]])


def test_inclusion_argument_errors() -> None:
    leaves = ALL_LEAVES[:4]
    root = root_from_leaf_hashes(leaves)
    with pytest.raises(ValueError, match="out of range"):
        inclusion_proof(leaves, 4)
    with pytest.raises(ValueError, match="out of range"):
        inclusion_proof(leaves, -1)
    with pytest.raises(ValueError, match="out of range"):
        inclusion_proof([], 0)
    with pytest.raises(ValueError, match="32 bytes"):
        inclusion_proof([*leaves[:3], b"short"], 0)
    with pytest.raises(ValueError, match="out of range"):
        verify_inclusion(leaves[0], 4, 4, [], root)
    with pytest.raises(ValueError, match="out of range"):
        verify_inclusion(leaves[0], -1, 4, [], root)
    with pytest.raises(ValueError, match="out of range"):
        verify_inclusion(leaves[0], 0, 0, [], root)
    with pytest.raises(ValueError, match="32 bytes"):
        verify_inclusion(b"WrongLeaf", 0, 4, inclusion_proof(leaves, 0), root)
    with pytest.raises(ValueError, match="32 bytes"):
        verify_inclusion(leaves[0], 0, 4, inclusion_proof(leaves, 0), root[:-1])


def test_consistency_argument_errors() -> None:
    leaves = ALL_LEAVES[:4]
    root = root_from_leaf_hashes(leaves)
    with pytest.raises(ValueError, match="out of range"):
        consistency_proof(leaves, 5)
    with pytest.raises(ValueError, match="out of range"):
        consistency_proof(leaves, -1)
    with pytest.raises(ValueError, match="old size"):
        verify_consistency(5, 4, root, root, [])
    with pytest.raises(ValueError, match="old size"):
        verify_consistency(-1, 4, root, root, [])
    with pytest.raises(ValueError, match="32 bytes"):
        verify_consistency(2, 4, b"WrongRoot", root, consistency_proof(leaves, 2))
    with pytest.raises(ValueError, match="32 bytes"):
        verify_consistency(2, 4, root, b"", consistency_proof(leaves, 2))


def test_root_rejects_wrong_length_leaf() -> None:
    with pytest.raises(ValueError, match="leaf hash 2"):
        root_from_leaf_hashes([*ALL_LEAVES[:2], b"x" * 33])


def test_compact_range_constructor_validation() -> None:
    leaves = ALL_LEAVES[:3]
    good = CompactRange()
    good.extend(leaves)
    assert CompactRange(3, good.hashes) == good
    assert CompactRange(3, list(good.hashes)).root() == root_from_leaf_hashes(leaves)
    with pytest.raises(ValueError, match="needs 2 hashes"):
        CompactRange(3, good.hashes[:1])
    with pytest.raises(ValueError, match="needs 0 hashes"):
        CompactRange(0, good.hashes[:1])
    with pytest.raises(ValueError, match="32 bytes"):
        CompactRange(3, [good.hashes[0], b"short"])
    with pytest.raises(ValueError, match="size must be"):
        CompactRange(-1)
    with pytest.raises(ValueError, match="size must be"):
        CompactRange(1 << 64, [EMPTY_ROOT])
    with pytest.raises(ValueError, match="32 bytes"):
        good.append(b"short")
    assert good.size == 3  # a rejected append leaves the range untouched


def test_compact_range_hashes_cannot_be_mutated_from_outside() -> None:
    source = bytearray(ALL_LEAVES[0])
    # Typed as bytes, but a bytearray is what a careless caller could pass at runtime.
    cr = CompactRange(1, [cast("bytes", source)])
    before = cr.root()
    source[0] ^= 0xFF
    assert cr.root() == before


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\x00" * 7,
        b"\x00" * 9,
        b"\x00" * 8 + b"\x11" * 31,
        (1).to_bytes(8, "big"),  # size 1 needs one hash
        (3).to_bytes(8, "big") + b"\x11" * 32,  # size 3 needs two hashes
        (2).to_bytes(8, "big") + b"\x11" * 64,  # size 2 needs exactly one hash
        (0).to_bytes(8, "big") + b"\x11" * 32,  # empty range has no hashes
    ],
)
def test_compact_range_from_bytes_rejects_malformed(raw: bytes) -> None:
    with pytest.raises(ValueError, match=r"compact range must be|needs \d+ hashes"):
        CompactRange.from_bytes(raw)
