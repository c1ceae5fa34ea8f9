"""Reading the envelope exports and backups were sealed in before the age format, for one release.

Nothing writes this format any more (``reference_app.kit.agefile`` does the sealing); restore,
the restore drill and ``contactpoint export open`` still open such a file with its PEM X25519
private key, and say it is deprecated. This module goes in the next release.

Layout: ``MAGIC | label length (2) | label | ephemeral public key (32) | salt (16) | nonce prefix
(7)``, then chunks of ``length (4) | AES-256-GCM ciphertext``. The key is HKDF-SHA256 over the
ECDH secret, bound to both public keys and the label. Each chunk's nonce is the prefix, a 4-byte
counter and a last-chunk flag (the STREAM construction), and every chunk authenticates the
header, so a reordered, truncated, extended or relabelled envelope fails to open.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Iterator
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

MAGIC = b"CPENV1\n"
CHUNK = 1 << 20
DEPRECATION = (
    "this file is in the pre-age envelope format, read for this release only: restore or open it "
    "now, and make new backups and exports (they are written in the age format)"
)
_RAW = serialization.Encoding.Raw, serialization.PublicFormat.Raw


class EnvelopeError(Exception):
    """The envelope is not one, was tampered with, is truncated, or is for another key."""


def load_identity(pem: bytes | str) -> X25519PrivateKey:
    """Parse the recipient's PEM private key; refuse anything but X25519."""
    data = pem.encode() if isinstance(pem, str) else pem
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise EnvelopeError("not an unencrypted PEM private key") from exc
    if not isinstance(key, X25519PrivateKey):
        raise EnvelopeError("the identity must be an X25519 private key")
    return key


def _key(shared: bytes, salt: bytes, ephemeral: bytes, recipient: bytes, label: bytes) -> bytes:
    return HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=salt,
        info=b"contactpoint-envelope/v1|" + ephemeral + recipient + label,
    ).derive(shared)


def _nonce(prefix: bytes, counter: int, last: bool) -> bytes:
    return prefix + struct.pack(">IB", counter, 1 if last else 0)


def _read_exact(src: BinaryIO, size: int) -> bytes:
    data = src.read(size)
    if len(data) != size:
        raise EnvelopeError("the envelope is truncated")
    return data


def read_label(src: BinaryIO) -> tuple[bytes, bytes]:
    """Read the header; return (label, the raw header bytes)."""
    magic = src.read(len(MAGIC))
    if magic != MAGIC:
        raise EnvelopeError("not a ContactPoint envelope")
    (size,) = struct.unpack(">H", _read_exact(src, 2))
    label = _read_exact(src, size)
    rest = _read_exact(src, 32 + 16 + 7)
    return label, magic + struct.pack(">H", size) + label + rest


def open_stream(
    src: BinaryIO, identity: X25519PrivateKey, *, label_prefix: bytes | None = None
) -> Iterator[bytes]:
    """Yield the plaintext chunk by chunk; raise ``EnvelopeError`` on any tampering.

    A caller must not act on the chunks until the iterator ends cleanly: only then is the whole
    envelope known to be authentic and complete.
    """
    label, header = read_label(src)
    if label_prefix is not None and not label.startswith(label_prefix):
        raise EnvelopeError("the envelope is for another purpose")
    offset = len(header) - (32 + 16 + 7)
    ephemeral_raw = header[offset : offset + 32]
    salt = header[offset + 32 : offset + 48]
    prefix = header[offset + 48 :]
    shared = identity.exchange(X25519PublicKey.from_public_bytes(ephemeral_raw))
    recipient_raw = identity.public_key().public_bytes(*_RAW)
    aead = AESGCM(_key(shared, salt, ephemeral_raw, recipient_raw, label))
    counter = 0
    while True:
        size_bytes = src.read(4)
        if len(size_bytes) != 4:
            raise EnvelopeError("the envelope is truncated")
        (size,) = struct.unpack(">I", size_bytes)
        if size > CHUNK + 16:
            raise EnvelopeError("the envelope is corrupt")
        sealed = _read_exact(src, size)
        for last in (False, True):
            try:
                plain = aead.decrypt(_nonce(prefix, counter, last), sealed, header)
            except InvalidTag:
                continue
            break
        else:
            raise EnvelopeError("the envelope was tampered with or is for another key")
        counter += 1
        yield plain
        if last:
            if src.read(1):
                raise EnvelopeError("data after the final chunk")
            return


def open_sealed(
    blob: bytes, identity: X25519PrivateKey, *, label_prefix: bytes | None = None
) -> bytes:
    """Decrypt a whole envelope held in memory."""
    return b"".join(open_stream(io.BytesIO(blob), identity, label_prefix=label_prefix))
