"""PostgreSQL binary COPY, built column-wise with NumPy rather than row by row in Python.

A binary COPY row is a field count, then each field as a 4-byte big-endian length and its bytes
(length -1 for NULL). Rows may come in any order, so rows are grouped by their shape (which
nullable fields are NULL, which value each low-cardinality text field holds): within a group
every row has the same width, and the whole group is one NumPy record array written with one
`tobytes()`. Tables with truly variable-width fields (ciphertexts) add those per row, after the
fixed part; COPY names its columns, so their order in the table does not matter.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from itertools import chain, pairwise
from typing import Any

import numpy as np
import numpy.typing as npt

HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
TRAILER = struct.pack(">h", -1)
NULL = struct.pack(">i", -1)
_PG_EPOCH = date(2000, 1, 1)
_PG_EPOCH_DAYS = (_PG_EPOCH - date(1970, 1, 1)).days
_LENGTHS = [struct.pack(">i", n) for n in range(4096)]


def length_prefixed(values: Sequence[bytes | None]) -> list[bytes]:
    """Each value as a bytea/text field: its 4-byte length in front, or NULL."""
    lengths = _LENGTHS
    return [
        NULL if v is None else (lengths[len(v)] if len(v) < 4096 else struct.pack(">i", len(v))) + v
        for v in values
    ]


def encode_value(value: Any) -> bytes:
    """One field in binary COPY form, for the few Python types the registry's tables use."""
    if value is None:
        return NULL
    if isinstance(value, bytes):
        return struct.pack(">i", len(value)) + value
    if isinstance(value, str):
        raw = value.encode("utf-8")
        return struct.pack(">i", len(raw)) + raw
    if isinstance(value, bool):
        return struct.pack(">i?", 1, value)
    if isinstance(value, int):
        return struct.pack(">ii", 4, value)
    if isinstance(value, datetime):
        delta = value.replace(tzinfo=None) - datetime(2000, 1, 1)
        micros = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
        return struct.pack(">iq", 8, micros)
    if isinstance(value, date):
        return struct.pack(">ii", 4, (value - _PG_EPOCH).days)
    raise TypeError(f"no binary COPY form for {type(value).__name__}")


def pg_days(unix_days: npt.NDArray[np.integer[Any]]) -> npt.NDArray[np.int32]:
    """Days since 1970-01-01 as PostgreSQL date values (days since 2000-01-01)."""
    return (unix_days - _PG_EPOCH_DAYS).astype(np.int32)


def pg_midnights(unix_days: npt.NDArray[np.integer[Any]]) -> npt.NDArray[np.int64]:
    """Days since 1970-01-01 as PostgreSQL timestamps of that day's midnight (UTC)."""
    return (unix_days.astype(np.int64) - _PG_EPOCH_DAYS) * 86_400_000_000


# Logical fixed-width types and their big-endian wire form ("midnight": a day, stored as the
# timestamp of its start).
FIXED_TYPES = {
    "int4": ">i4",
    "bool": "?",
    "char13": "S13",
    "bytes16": "S16",
    "sealed_id": "S29",  # a 13-character child id sealed with AES-SIV (16-byte tag)
    "date": ">i4",
    "midnight": ">i8",
}
_CONVERT = {"date": pg_days, "midnight": pg_midnights}


@dataclass
class Batch:
    """One table's rows, column-wise.

    - ``fixed``: name -> (type, values, NULL mask or None); types are those of `FIXED_TYPES`
      (dates and midnights as days since 1970-01-01, ids as ASCII bytes);
    - ``choices``: name -> (codes, the text each code stands for), for low-cardinality text;
    - ``constants``: name -> one Python value for every row;
    - ``variable``: name -> one value per row (bytes, text or None), for ciphertexts and the like.
    """

    rows: int
    fixed: dict[str, tuple[str, npt.NDArray[Any], npt.NDArray[np.bool_] | None]] = field(
        default_factory=dict
    )
    choices: dict[str, tuple[npt.NDArray[np.integer[Any]], Sequence[str]]] = field(
        default_factory=dict
    )
    constants: dict[str, Any] = field(default_factory=dict)
    variable: dict[str, Sequence[Any]] = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        """COPY column order: constants, fixed, choices, then variable."""
        return [*self.constants, *self.fixed, *self.choices, *self.variable]


def _shape_key(batch: Batch) -> npt.NDArray[np.int64]:
    """A number per row naming its shape: which fields are NULL, which choice each holds."""
    key = np.zeros(batch.rows, dtype=np.int64)
    radix = 1
    for _, _, mask in batch.fixed.values():
        if mask is not None:
            key += mask.astype(np.int64) * radix
            radix *= 2
    if not batch.variable:
        for codes, options in batch.choices.values():
            key += codes.astype(np.int64) * radix
            radix *= len(options)
    return key


def _group_bytes(batch: Batch, rows: npt.NDArray[np.int64], sample: int) -> tuple[bytes, int]:
    """The fixed part of ``rows``, which all share the shape of row ``sample``."""
    fields: list[tuple[str, str]] = [("count", ">i2")]
    fill: list[tuple[str, Any]] = [("count", len(batch.names))]
    for name, value in batch.constants.items():
        raw = encode_value(value)
        fields.append((name, f"V{len(raw)}"))
        fill.append((name, np.void(raw)))
    for name, (kind, values, mask) in batch.fixed.items():
        fields.append((f"{name}.len", ">i4"))
        if mask is not None and mask[sample]:
            fill.append((f"{name}.len", -1))
            continue
        dtype = FIXED_TYPES[kind]
        fields.append((name, dtype))
        fill.append((f"{name}.len", np.dtype(dtype).itemsize))
        picked = values[rows]
        fill.append((name, _CONVERT[kind](picked) if kind in _CONVERT else picked))
    if not batch.variable:
        for name, (codes, options) in batch.choices.items():
            raw = encode_value(options[int(codes[sample])])
            fields.append((name, f"V{len(raw)}"))
            fill.append((name, np.void(raw)))
    record = np.zeros(len(rows), dtype=fields)
    for name, value in fill:
        record[name] = value
    return record.tobytes(), record.dtype.itemsize


def encode(batch: Batch) -> bytes:
    """Binary COPY data for every row of ``batch`` (without header or trailer)."""
    if batch.rows == 0:
        return b""
    key = _shape_key(batch)
    if not batch.variable:
        order = np.argsort(key, kind="stable")
        bounds = np.flatnonzero(np.r_[True, key[order][1:] != key[order][:-1], True])
        parts = []
        for start, end in pairwise(bounds):
            rows = order[start:end]
            parts.append(_group_bytes(batch, rows, int(rows[0]))[0])
        return b"".join(parts)
    if key.any():
        raise ValueError("nullable fixed columns with variable ones: use a variable column")
    buffer, width = _group_bytes(batch, np.arange(batch.rows), 0)
    view = memoryview(buffer)
    fixed_rows = [view[i * width : (i + 1) * width] for i in range(batch.rows)]
    columns: list[Sequence[bytes]] = []
    for codes, options in batch.choices.values():
        encoded = [encode_value(o) for o in options]
        columns.append([encoded[c] for c in codes.tolist()])
    for values in batch.variable.values():
        columns.append(_encode_column(values))
    return b"".join(chain.from_iterable(zip(fixed_rows, *columns, strict=True)))


def _encode_column(values: Sequence[Any]) -> list[bytes]:
    first = next((v for v in values if v is not None), None)
    if first is None or isinstance(first, bytes):
        return length_prefixed(values)
    encoded = {v: encode_value(v) for v in set(values)}
    return [encoded[v] for v in values]
