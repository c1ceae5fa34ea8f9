"""Envelope encryption: round trips, and every kind of tampering refused."""

from __future__ import annotations

import io

import pytest

from reference_app.kit import envelope
from reference_app.kit.envelope import EnvelopeError


@pytest.fixture(scope="module")
def keys() -> tuple[bytes, bytes]:
    return envelope.generate_identity()


def _seal(keys: tuple[bytes, bytes], data: bytes, label: bytes = b"test") -> bytes:
    return envelope.seal(data, envelope.load_recipient(keys[1]), label)


@pytest.mark.parametrize("size", [0, 1, envelope.CHUNK - 1, envelope.CHUNK, 2 * envelope.CHUNK + 5])
def test_round_trip_at_chunk_boundaries(keys: tuple[bytes, bytes], size: int) -> None:
    data = bytes(range(256)) * (size // 256) + bytes(size % 256)
    blob = _seal(keys, data)
    assert envelope.open_sealed(blob, envelope.load_identity(keys[0])) == data


def test_the_plaintext_does_not_appear_in_the_envelope(keys: tuple[bytes, bytes]) -> None:
    blob = _seal(keys, b"Amelia Smith, 2014-03-02" * 10)
    assert b"Amelia" not in blob
    assert b"2014" not in blob


def _big(keys: tuple[bytes, bytes]) -> bytes:
    return _seal(keys, b"x" * (envelope.CHUNK + 100))


def _flip(blob: bytes, at: int) -> bytes:
    return blob[:at] + bytes([blob[at] ^ 1]) + blob[at + 1 :]


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda b: _flip(b, len(b) - 1), id="flipped-last-byte"),
        pytest.param(lambda b: _flip(b, 12), id="flipped-header"),
        pytest.param(lambda b: b[: len(b) - 200], id="truncated-last-chunk"),
        pytest.param(
            lambda b: b[: len(envelope.MAGIC) + 2 + 4 + 55 + 4 + envelope.CHUNK + 16],
            id="only-first-chunk",
        ),
        pytest.param(lambda b: b + b"\x00", id="extended"),
        pytest.param(lambda b: b"XXENV1\n" + b[7:], id="bad-magic"),
    ],
)
def test_tampering_is_refused(keys: tuple[bytes, bytes], tamper: object) -> None:
    blob = tamper(_big(keys))  # type: ignore[operator]
    with pytest.raises(EnvelopeError):
        envelope.open_sealed(blob, envelope.load_identity(keys[0]))


def test_another_key_cannot_open(keys: tuple[bytes, bytes]) -> None:
    other, _ = envelope.generate_identity()
    with pytest.raises(EnvelopeError):
        envelope.open_sealed(_seal(keys, b"data"), envelope.load_identity(other))


def test_an_unexpected_label_is_refused(keys: tuple[bytes, bytes]) -> None:
    blob = _seal(keys, b"data", label=b"export")
    with pytest.raises(EnvelopeError, match="another purpose"):
        envelope.open_sealed(blob, envelope.load_identity(keys[0]), expect_label=b"backup")
    label, _ = envelope.read_label(io.BytesIO(blob))
    assert label == b"export"


def test_keys_of_the_wrong_kind_are_refused() -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    ed = Ed25519PrivateKey.generate()
    pub = ed.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with pytest.raises(EnvelopeError):
        envelope.load_recipient(pub)
    with pytest.raises(EnvelopeError):
        envelope.load_recipient(b"not a key")
