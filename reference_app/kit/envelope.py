"""Encryption to a recipient's public key, for exports and backups.

Whoever writes an envelope needs only the recipient's X25519 public key; only the holder of the
private key can open it, so the machine that makes a backup or an export cannot read it back.

Layout: ``MAGIC | label length (2) | label | ephemeral public key (32) | salt (16) | nonce prefix
(7)``, then chunks of ``length (4) | AES-256-GCM ciphertext``. The key is HKDF-SHA256 over the
ECDH secret, bound to both public keys and the label. Each chunk's nonce is the prefix, a 4-byte
counter and a last-chunk flag (the STREAM construction), and every chunk authenticates the
header, so a reordered, truncated, extended or relabelled envelope fails to open.
"""

from __future__ import annotations

import io
import os
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
_RAW = serialization.Encoding.Raw, serialization.PublicFormat.Raw


class EnvelopeError(Exception):
    """The envelope is not one, was tampered with, is truncated, or is for another key."""


def generate_identity() -> tuple[bytes, bytes]:
    """A new key pair as PEM: (private key for the recipient, public key for the writer)."""
    private = X25519PrivateKey.generate()
    private_pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private_pem, public_pem


def load_recipient(pem: bytes | str) -> X25519PublicKey:
    """Parse a recipient's PEM public key; refuse anything but X25519."""
    data = pem.encode() if isinstance(pem, str) else pem
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError as exc:
        raise EnvelopeError("not a PEM public key") from exc
    if not isinstance(key, X25519PublicKey):
        raise EnvelopeError("the recipient key must be an X25519 public key")
    return key


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


def fingerprint(key: X25519PublicKey) -> str:
    """A short stable name for a public key (hex of its first 8 SHA-256 bytes)."""
    digest = hashes.Hash(hashes.SHA256())
    digest.update(key.public_bytes(*_RAW))
    return digest.finalize()[:8].hex()


def _key(shared: bytes, salt: bytes, ephemeral: bytes, recipient: bytes, label: bytes) -> bytes:
    return HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=salt,
        info=b"contactpoint-envelope/v1|" + ephemeral + recipient + label,
    ).derive(shared)


def _nonce(prefix: bytes, counter: int, last: bool) -> bytes:
    return prefix + struct.pack(">IB", counter, 1 if last else 0)


class EnvelopeWriter:
    """Write plaintext in, an envelope out; ``close`` writes the final chunk (always call it)."""

    def __init__(self, dst: BinaryIO, recipient: X25519PublicKey, label: bytes) -> None:
        if len(label) > 0xFFFF:
            raise ValueError("label too long")
        ephemeral = X25519PrivateKey.generate()
        ephemeral_raw = ephemeral.public_key().public_bytes(*_RAW)
        salt, self._prefix = os.urandom(16), os.urandom(7)
        self._header = (
            MAGIC + struct.pack(">H", len(label)) + label + ephemeral_raw + salt + self._prefix
        )
        shared = ephemeral.exchange(recipient)
        key = _key(shared, salt, ephemeral_raw, recipient.public_bytes(*_RAW), label)
        self._aead = AESGCM(key)
        self._dst = dst
        self._buffer = bytearray()
        self._counter = 0
        self._closed = False
        dst.write(self._header)

    def write(self, data: bytes) -> None:
        if self._closed:
            raise ValueError("envelope already closed")
        self._buffer += data
        while len(self._buffer) > CHUNK:
            self._emit(bytes(self._buffer[:CHUNK]), last=False)
            del self._buffer[:CHUNK]

    def close(self) -> None:
        if not self._closed:
            self._emit(bytes(self._buffer), last=True)
            self._buffer.clear()
            self._closed = True

    def _emit(self, plain: bytes, *, last: bool) -> None:
        sealed = self._aead.encrypt(_nonce(self._prefix, self._counter, last), plain, self._header)
        self._dst.write(struct.pack(">I", len(sealed)) + sealed)
        self._counter += 1


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
    src: BinaryIO, identity: X25519PrivateKey, *, expect_label: bytes | None = None
) -> Iterator[bytes]:
    """Yield the plaintext chunk by chunk; raise ``EnvelopeError`` on any tampering.

    A caller must not act on the chunks until the iterator ends cleanly: only then is the whole
    envelope known to be authentic and complete.
    """
    label, header = read_label(src)
    if expect_label is not None and label != expect_label:
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


def seal(data: bytes, recipient: X25519PublicKey, label: bytes) -> bytes:
    """Encrypt ``data`` to ``recipient`` in one call."""
    out = io.BytesIO()
    writer = EnvelopeWriter(out, recipient, label)
    writer.write(data)
    writer.close()
    return out.getvalue()


def open_sealed(
    blob: bytes, identity: X25519PrivateKey, *, expect_label: bytes | None = None
) -> bytes:
    """Decrypt a whole envelope held in memory."""
    return b"".join(open_stream(io.BytesIO(blob), identity, expect_label=expect_label))
