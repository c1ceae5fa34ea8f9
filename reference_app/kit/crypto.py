"""Field encryption (AES-256-GCM with key ids) and keyed blind indexes for searching ciphertext."""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import unicodedata
from collections.abc import Mapping, Sequence

import jellyfish
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from reference_app.kit.keys import Keyring

_FORMAT_VERSION = 1
_NONCE_BYTES = 12
BLIND_INDEX_BYTES = 16  # 128 bits: collision-free at national scale, half the storage of a full MAC


class DecryptionError(Exception):
    """A ciphertext failed authentication, or names a key this instance does not hold."""


class FieldCipher:
    """Authenticated encryption of one personal field, bound to the column it belongs in."""

    def __init__(self, keys: Mapping[str, bytes], current: str) -> None:
        self._aeads = {kid: AESGCM(key) for kid, key in keys.items()}
        self._current = current
        self._current_prefix = bytes([_FORMAT_VERSION, len(current)]) + current.encode("ascii")

    def encrypt(self, plaintext: str, context: str) -> bytes:
        """Encrypt ``plaintext``; ``context`` (e.g. ``children.family_name``) is authenticated."""
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._aeads[self._current].encrypt(
            nonce, plaintext.encode("utf-8"), context.encode("ascii")
        )
        return self._current_prefix + nonce + sealed

    def encrypt_many(self, plaintexts: Sequence[str], context: str) -> list[bytes]:
        """Encrypt many values for one column: as ``encrypt``, with one draw of random nonces."""
        aead = self._aeads[self._current]
        prefix = self._current_prefix
        aad = context.encode("ascii")
        nonces = os.urandom(_NONCE_BYTES * len(plaintexts))
        out: list[bytes] = []
        for i, plaintext in enumerate(plaintexts):
            nonce = nonces[i * _NONCE_BYTES : (i + 1) * _NONCE_BYTES]
            out.append(prefix + nonce + aead.encrypt(nonce, plaintext.encode("utf-8"), aad))
        return out

    def decrypt(self, blob: bytes, context: str) -> str:
        """Decrypt a value written by ``encrypt`` under any key this instance still holds."""
        if len(blob) < 2 or blob[0] != _FORMAT_VERSION:
            raise DecryptionError("unknown ciphertext format")
        kid_len = blob[1]
        kid = blob[2 : 2 + kid_len].decode("ascii", "replace")
        aead = self._aeads.get(kid)
        if aead is None:
            raise DecryptionError(f"no key {kid!r} for this ciphertext")
        start = 2 + kid_len
        nonce, sealed = blob[start : start + _NONCE_BYTES], blob[start + _NONCE_BYTES :]
        try:
            return aead.decrypt(nonce, sealed, context.encode("ascii")).decode("utf-8")
        except InvalidTag as exc:
            raise DecryptionError(f"ciphertext for {context} failed authentication") from exc

    def key_id_of(self, blob: bytes) -> str:
        """Return the id of the key that sealed ``blob`` (for rotation reports)."""
        return blob[2 : 2 + blob[1]].decode("ascii", "replace")


_NOT_LETTERS = re.compile(r"[^a-z]")
_NOT_POSTCODE = re.compile(r"[^A-Z0-9]")


def normalise_name(value: str) -> str:
    """Fold case, accents, spaces, hyphens and apostrophes: O'Brien-Smith -> obriensmith."""
    decomposed = unicodedata.normalize("NFKD", value)
    ascii_only = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return _NOT_LETTERS.sub("", ascii_only.casefold())


def normalise_postcode(value: str) -> str:
    """Fold case and spacing of a UK postcode: 'pr1 2ab' -> 'PR12AB'."""
    return _NOT_POSTCODE.sub("", value.upper())


def phonetic_code(value: str) -> str:
    """Return the Metaphone code of a normalised name, so Smyth finds Smith."""
    normal = normalise_name(value)
    return jellyfish.metaphone(normal) if normal else ""


class BlindIndex:
    """Keyed hashes of normalised values: equality search without storing the value."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def digest(self, kind: str, normalised: str) -> bytes:
        mac = hmac.new(
            self._key, kind.encode("ascii") + b"\x00" + normalised.encode("utf-8"), hashlib.sha256
        )
        return mac.digest()[:BLIND_INDEX_BYTES]

    def name(self, value: str) -> bytes:
        return self.digest("name", normalise_name(value))

    def phonetic(self, value: str) -> bytes:
        return self.digest("phonetic", phonetic_code(value))

    def date(self, iso_date: str) -> bytes:
        return self.digest("date", iso_date)

    def postcode(self, value: str) -> bytes:
        return self.digest("postcode", normalise_postcode(value))

    def username(self, value: str) -> bytes:
        return self.digest("username", value.strip().casefold())


class Crypto:
    """The cipher and blind index one instance uses, built from its keyring."""

    def __init__(self, keyring: Keyring) -> None:
        self.cipher = FieldCipher(keyring.field_keys, keyring.field_key_current)
        self.index = BlindIndex(keyring.blind_index_key)
