"""The old envelope, read for one release: files the old writer made open, tampering is refused."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from reference_app.kit import legacy_envelope
from reference_app.kit.legacy_envelope import EnvelopeError

# Made by the writer this project had before the age format, with this throwaway test key.
LEGACY = Path(__file__).parents[2] / "fixtures" / "legacy"


def _key() -> X25519PrivateKey:
    return legacy_envelope.load_identity((LEGACY / "identity.pem").read_bytes())


def _blob() -> bytes:
    return (LEGACY / "backup-0017.cpb").read_bytes()


def test_a_file_the_old_writer_made_opens() -> None:
    plain = legacy_envelope.open_sealed(_blob(), _key(), label_prefix=b"contactpoint-backup/")
    assert plain.startswith(b'{"alembic_revision":"0017"')
    label, _ = legacy_envelope.read_label(io.BytesIO(_blob()))
    assert label == b"contactpoint-backup/v1"


def _flip(blob: bytes, at: int) -> bytes:
    return blob[:at] + bytes([blob[at] ^ 1]) + blob[at + 1 :]


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda b: _flip(b, len(b) - 1), id="flipped-last-byte"),
        pytest.param(lambda b: _flip(b, 12), id="flipped-header"),
        pytest.param(lambda b: b[: len(b) - 200], id="truncated"),
        pytest.param(lambda b: b + b"\x00", id="extended"),
        pytest.param(lambda b: b"XXENV1\n" + b[7:], id="bad-magic"),
    ],
)
def test_tampering_is_refused(tamper: object) -> None:
    with pytest.raises(EnvelopeError):
        legacy_envelope.open_sealed(tamper(_blob()), _key())  # type: ignore[operator]


def test_an_unexpected_label_is_refused() -> None:
    with pytest.raises(EnvelopeError, match="another purpose"):
        legacy_envelope.open_sealed(_blob(), _key(), label_prefix=b"contactpoint-export/")


def test_keys_of_the_wrong_kind_are_refused() -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    ed = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    with pytest.raises(EnvelopeError, match="X25519"):
        legacy_envelope.load_identity(ed)
    with pytest.raises(EnvelopeError):
        legacy_envelope.load_identity(b"not a key")
