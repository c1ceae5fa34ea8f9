"""Child identifiers in bulk: a keyed permutation of positions, in the registry's own format.

A child's position (chunk index times the chunk stride, plus its place in the chunk) goes
through a four-round Feistel network over 60 bits keyed by the seed. A Feistel network is a
bijection, so two positions never share an id, which 60 random bits would only make unlikely;
the output looks random, so ids say nothing about LA or order. The 60 bits are then written as
the registry writes them (`reference_app.kit.identifiers`): 12 Crockford base-32 characters and a
Luhn mod 32 check character.
"""

from __future__ import annotations

import hashlib

import numpy as np
import numpy.typing as npt

from reference_app.kit.identifiers import ALPHABET, PAYLOAD_LENGTH

_HALF_BITS = 30
_HALF_MASK = np.uint64((1 << _HALF_BITS) - 1)
_ROUNDS = 4
_ALPHABET = np.frombuffer(ALPHABET.encode("ascii"), dtype=np.uint8)

U64 = npt.NDArray[np.uint64]


def _round_keys(seed: int) -> list[np.uint64]:
    digest = hashlib.sha256(f"contactpoint-child-ids:{seed}".encode()).digest()
    return [
        np.uint64(int.from_bytes(digest[8 * i : 8 * i + 8], "big") & 0xFFFFFFFF)
        for i in range(_ROUNDS)
    ]


def _mix(half: U64, key: np.uint64) -> U64:
    # A cheap keyed mixing function on 30 bits (multiply-xorshift); any function works in a
    # Feistel network, the structure guarantees the bijection.
    x = (half ^ key) * np.uint64(0x9E3779B1)
    x ^= x >> np.uint64(15)
    x = (x * np.uint64(0x85EBCA77)) & np.uint64(0xFFFFFFFFFFFF)
    x ^= x >> np.uint64(13)
    return x & _HALF_MASK


def permute(positions: npt.NDArray[np.int64], seed: int) -> U64:
    """Map distinct positions below 2**60 to distinct pseudo-random 60-bit numbers."""
    x = positions.astype(np.uint64)
    left = (x >> np.uint64(_HALF_BITS)) & _HALF_MASK
    right = x & _HALF_MASK
    with np.errstate(over="ignore"):
        for key in _round_keys(seed):
            left, right = right, left ^ _mix(right, key)
    return (left << np.uint64(_HALF_BITS)) | right


def encode(numbers: U64) -> list[str]:
    """Write 60-bit numbers as registry child identifiers (payload plus check character)."""
    n = len(numbers)
    digits = np.empty((n, PAYLOAD_LENGTH), dtype=np.uint8)
    for i in range(PAYLOAD_LENGTH):
        shift = np.uint64(5 * (PAYLOAD_LENGTH - 1 - i))
        digits[:, i] = ((numbers >> shift) & np.uint64(31)).astype(np.uint8)
    # Luhn mod 32 from the right: the rightmost payload digit is doubled.
    factors = np.where(np.arange(PAYLOAD_LENGTH)[::-1] % 2 == 0, 2, 1).astype(np.int64)
    addends = digits.astype(np.int64) * factors
    total = (addends // 32 + addends % 32).sum(axis=1)
    check = ((32 - total % 32) % 32).astype(np.uint8)
    chars = _ALPHABET[np.concatenate([digits, check[:, None]], axis=1)]
    ids: list[str] = chars.view(f"S{PAYLOAD_LENGTH + 1}").ravel().astype(str).tolist()
    return ids
