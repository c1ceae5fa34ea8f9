"""Sealed columns: what a stolen copy of the database must not tell, still read by the ORM.

Field encryption hides names and addresses, but a copy of the database also tells facts by
child id: a child's id next to a sexual-health service's involvement, two children's ids next to
one carer, a shield flag, an audit event saying who viewed whom. Two column types seal them:

- ``SealedRef``: a child's id wherever it appears outside ``children``, sealed with AES-SIV
  (RFC 5297, deterministic authenticated encryption) under a key of this instance, with the
  column's name as associated data. Sealing is deterministic, so ``column == child_id`` and
  ``column.in_(ids)`` still find rows through an index; the same child has a different token in
  every column, so a copy cannot join a table to ``children`` or to another table by child; and
  the key holder can open a token back into the id.
- ``SealedFlag``: a yes/no about a child (shielded), sealed with AES-GCM and a random nonce, so
  every row holds a same-length ciphertext and no two rows can be compared. SQL cannot filter
  on it: the code decides after reading.

The types find their keys through the engine's dialect: ``bind(engine, sealer)`` when an
instance opens its database. An engine with no sealer refuses to read or write a sealed column
(``SealingUnbound``), so nothing is ever stored in clear by mistake.

AES-SIV rather than a keyed hash: a hash would find rows as well, but could not be opened, and
the detector, exports and subject access need the child behind an audit event or an
involvement. The ``cryptography`` package's ``AESSIV`` is used as is.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESSIV
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import Engine, LargeBinary, Table, column, table
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.expression import TableClause
from sqlalchemy.types import TypeDecorator

from reference_app.kit.crypto import DecryptionError, FieldCipher
from reference_app.kit.keys import Keyring

_FLAG_TRUE, _FLAG_FALSE = "1", "0"


class SealingUnbound(RuntimeError):
    """A sealed column was read or written through an engine that holds no keys."""


class Sealer:
    """Seals child references and flags for one instance."""

    def __init__(self, ref_key: bytes, cipher: FieldCipher) -> None:
        if len(ref_key) != 64:
            raise ValueError("AES-256-SIV takes a 64-byte key")
        self._siv = AESSIV(ref_key)
        self._cipher = cipher

    @classmethod
    def of(cls, keyring: Keyring) -> Sealer:
        """The sealer of an instance: the reference key is derived from its blind-index key
        (both exist to find rows by a value without storing it), flags use its field keys."""
        ref_key = HKDF(
            algorithm=SHA256(), length=64, salt=None, info=b"contactpoint-sealed-references/v1"
        ).derive(keyring.blind_index_key)
        return cls(ref_key, FieldCipher(keyring.field_keys, keyring.field_key_current))

    def ref(self, value: str, column: str) -> bytes:
        """The token of ``value`` (a child id) in ``column``: the same every time."""
        return self._siv.encrypt(value.encode("utf-8"), [column.encode("ascii")])

    def open_ref(self, token: bytes, column: str) -> str:
        try:
            return self._siv.decrypt(bytes(token), [column.encode("ascii")]).decode("utf-8")
        except InvalidTag as exc:
            raise DecryptionError(f"a sealed reference in {column} failed authentication") from exc

    def flag(self, value: bool, column: str) -> bytes:
        return self._cipher.encrypt(_FLAG_TRUE if value else _FLAG_FALSE, column)

    def open_flag(self, blob: bytes, column: str) -> bool:
        return self._cipher.decrypt(bytes(blob), column) == _FLAG_TRUE

    def flags(self, values: Iterable[bool], column: str) -> list[bytes]:
        """``flag`` for many rows of one column (the bulk loader), with one draw of nonces."""
        return self._cipher.encrypt_many(
            [_FLAG_TRUE if value else _FLAG_FALSE for value in values], column
        )


_SEALERS: weakref.WeakKeyDictionary[Dialect, Sealer] = weakref.WeakKeyDictionary()


def bind(engine: Engine, sealer: Sealer) -> None:
    """Let ``engine`` read and write sealed columns with ``sealer``'s keys."""
    _SEALERS[engine.dialect] = sealer


def sealer_for(dialect: Dialect) -> Sealer:
    try:
        return _SEALERS[dialect]
    except KeyError:
        raise SealingUnbound(
            "this database connection holds no keys, so it cannot read or write sealed columns "
            "(child references and flags): open it through the instance, or bind a sealer"
        ) from None


class SealedRef(TypeDecorator[str]):
    """A child id, stored as its deterministic AES-SIV token for ``column``."""

    impl = LargeBinary
    cache_ok = True

    def __init__(self, column: str) -> None:
        super().__init__()
        self.column = column

    def process_bind_param(self, value: Any, dialect: Dialect) -> bytes | None:
        if value is None:
            return None
        return sealer_for(dialect).ref(str(value), self.column)

    def process_result_value(self, value: Any, dialect: Dialect) -> str | None:
        if value is None:
            return None
        return sealer_for(dialect).open_ref(value, self.column)

    def process_literal_param(self, value: Any, dialect: Dialect) -> str:
        raise SealingUnbound(f"{self.column} cannot be rendered as a literal")


class SealedFlag(TypeDecorator[bool]):
    """A yes/no, stored as an AES-GCM ciphertext of the same length either way."""

    impl = LargeBinary
    cache_ok = True

    def __init__(self, column: str) -> None:
        super().__init__()
        self.column = column

    def process_bind_param(self, value: Any, dialect: Dialect) -> bytes | None:
        if value is None:
            return None
        return sealer_for(dialect).flag(bool(value), self.column)

    def process_result_value(self, value: Any, dialect: Dialect) -> bool | None:
        if value is None:
            return None
        return sealer_for(dialect).open_flag(value, self.column)

    def process_literal_param(self, value: Any, dialect: Dialect) -> str:
        raise SealingUnbound(f"{self.column} cannot be rendered as a literal")


def stored_table(source: Table) -> TableClause:
    """``source`` with its sealed columns typed as stored (bytes): for writers that seal values
    themselves (the bulk loader) and readers that must see what a copy of the database holds."""
    return table(
        source.name,
        *(
            column(c.name, LargeBinary() if isinstance(c.type, SealedRef | SealedFlag) else c.type)
            for c in source.columns
        ),
    )
