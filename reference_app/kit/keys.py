"""Key material: field-encryption keys (rotatable by id), blind-index, token and audit-signing keys.

Keys live in one JSON file outside the database, so a stolen database or backup holds ciphertext
and keyed hashes only. ``contactpoint keys generate`` writes a fresh file; ``serve --demo`` writes
one into its data directory.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from reference_app.config import Environment, Settings


class KeyMaterialError(Exception):
    """The key material is missing, malformed or unfit for this environment."""


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _unb64(text: str, *, length: int, what: str) -> bytes:
    try:
        raw = base64.b64decode(text, validate=True)
    except ValueError as exc:
        raise KeyMaterialError(f"{what} is not base64") from exc
    if len(raw) != length:
        raise KeyMaterialError(f"{what} must be {length} bytes, not {len(raw)}")
    if raw == bytes(length) or len(set(raw)) < 4:
        raise KeyMaterialError(f"{what} looks like a placeholder")
    return raw


@dataclass(frozen=True)
class Keyring:
    """All the secrets one registry instance holds."""

    field_keys: dict[str, bytes]
    field_key_current: str
    blind_index_key: bytes
    token_secret: bytes
    audit_signing_keys: dict[str, Ed25519PrivateKey]
    audit_key_current: str

    @property
    def audit_public_keys(self) -> dict[str, Ed25519PublicKey]:
        return {kid: key.public_key() for kid, key in self.audit_signing_keys.items()}

    def subkey(self, purpose: str) -> bytes:
        """A 32-byte key for one ``purpose`` (e.g. ``export-link``), derived from the token secret.

        HKDF keeps purposes apart: a MAC made for one purpose never verifies for another, and
        no new secret has to be generated, stored or rotated for each.
        """
        return HKDF(
            algorithm=SHA256(),
            length=32,
            salt=None,
            info=b"contactpoint-subkey/v1|" + purpose.encode("ascii"),
        ).derive(self.token_secret)


def generate_document() -> dict[str, Any]:
    """Return a fresh key document as stored in a keys file."""
    signing = Ed25519PrivateKey.generate()
    return {
        "field_keys": {"f1": _b64(secrets.token_bytes(32))},
        "field_key_current": "f1",
        "blind_index_key": _b64(secrets.token_bytes(32)),
        "token_secret": _b64(secrets.token_bytes(32)),
        "audit_signing_keys": {
            "a1": _b64(signing.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption()))
        },
        "audit_key_current": "a1",
    }


def write_keys_file(path: Path, document: dict[str, Any] | None = None) -> None:
    """Write a key document readable by the owner only; never overwrite an existing file."""
    doc = document if document is not None else generate_document()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(doc, handle, indent=2)


def replace_keys_file(path: Path, document: dict[str, Any]) -> None:
    """Replace a keys file with ``document`` atomically, at mode 0600: a crash leaves the old
    file or the new one, never half of one (a file beside it, synced, then renamed over it).
    The new file keeps the old one's owner, so a root shell does not lock the service out."""
    parse_document(document)  # never write a document the registry could not load
    owner = path.stat()
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)
        if (owner.st_uid, owner.st_gid) != (os.geteuid(), os.getegid()):
            os.fchown(fd, owner.st_uid, owner.st_gid)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(document, handle, indent=2)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def parse_document(doc: dict[str, Any]) -> Keyring:
    """Validate a key document and return the keyring it describes."""
    try:
        field_keys = {
            str(kid): _unb64(v, length=32, what=f"field key {kid}")
            for kid, v in doc["field_keys"].items()
        }
        current = str(doc["field_key_current"])
        signing = {
            str(kid): Ed25519PrivateKey.from_private_bytes(
                _unb64(v, length=32, what=f"audit signing key {kid}")
            )
            for kid, v in doc["audit_signing_keys"].items()
        }
        audit_current = str(doc["audit_key_current"])
        keyring = Keyring(
            field_keys=field_keys,
            field_key_current=current,
            blind_index_key=_unb64(doc["blind_index_key"], length=32, what="blind index key"),
            token_secret=_unb64(doc["token_secret"], length=32, what="token secret"),
            audit_signing_keys=signing,
            audit_key_current=audit_current,
        )
    except (KeyError, TypeError, AttributeError) as exc:
        raise KeyMaterialError(f"malformed key document: missing or wrong {exc}") from exc
    if current not in field_keys:
        raise KeyMaterialError(f"current field key {current!r} is not in field_keys")
    if audit_current not in signing:
        raise KeyMaterialError(f"current audit key {audit_current!r} is not in audit_signing_keys")
    return keyring


def load_keyring(settings: Settings) -> Keyring:
    """Load the keys file named by the settings; refuse to run without one outside tests."""
    if settings.keys_file is None:
        raise KeyMaterialError(
            "no key material: set CONTACTPOINT_KEYS_FILE (create one with `contactpoint keys "
            "generate`), or use `contactpoint serve --demo` for a throwaway instance"
        )
    try:
        doc = json.loads(settings.keys_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise KeyMaterialError(f"cannot read keys file {settings.keys_file}: {exc}") from exc
    if settings.environment is Environment.PRODUCTION and settings.keys_file.stat().st_mode & 0o077:
        raise KeyMaterialError(
            f"keys file {settings.keys_file} must not be readable by group or others"
        )
    return parse_document(doc)


def public_key_document(keyring: Keyring) -> dict[str, str]:
    """Return the audit public keys, for verifiers and witnesses that must not hold secrets."""
    return {
        kid: _b64(key.public_bytes(Encoding.Raw, PublicFormat.Raw))
        for kid, key in keyring.audit_public_keys.items()
    }
