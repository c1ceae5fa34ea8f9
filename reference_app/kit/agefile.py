"""Exports and backups sealed in the age format (age-encryption.org/v1) to a recipient's key.

Whoever writes a file needs only the recipient's age public key (``age1...``); only the holder
of the matching identity (``AGE-SECRET-KEY-1...``) can open it, with this registry or with any
age implementation: ``age -d -i key.txt FILE``. The machine that makes a backup or an export
cannot read it back. The cryptography is pyrage's, a maintained binding of rage (the Rust age
implementation): X25519 to wrap a file key per recipient, HKDF-SHA256 and ChaCha20-Poly1305 in
64 KiB chunks (the STREAM construction), so a reordered, truncated, extended or altered file
fails to open. Both directions stream: memory stays bounded whatever the size of the file.

Files in the envelope format this project used before (``reference_app.kit.legacy_envelope``)
still open with their PEM private key for one release (``open_file``).
"""

from __future__ import annotations

import hashlib
import io
import queue
import threading
from collections.abc import Callable, Generator, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import BinaryIO, TypeVar, cast

import pyrage
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from pyrage import x25519

MAGIC = b"age-encryption.org/v1\n"
ARMOR = b"-----BEGIN AGE ENCRYPTED FILE-----"
RECIPIENT_PREFIX = "age1"
IDENTITY_PREFIX = "AGE-SECRET-KEY-1"
_Key = TypeVar("_Key", x25519.Recipient, x25519.Identity)
_QUEUED = 16  # decrypted pieces (8 KiB each from pyrage) held between the threads at most


class AgeFileError(Exception):
    """The file cannot be opened: not a sealed file, tampered with, cut short, or another key's."""


class KeyFileError(Exception):
    """The key text is not a usable age recipient or identity."""


class Format(StrEnum):
    AGE = "age"
    LEGACY = "legacy-envelope"


# Keys -------------------------------------------------------------------------------------------


def generate_identity(now: datetime | None = None) -> tuple[str, str]:
    """A new X25519 identity as ``age-keygen`` writes it, and its public key (``age1...``)."""
    identity = x25519.Identity.generate()
    recipient = str(identity.to_public())
    created = (now or datetime.now(UTC)).replace(microsecond=0).isoformat()
    text = f"# created: {created}\n# public key: {recipient}\n{identity}\n"
    return text, recipient


def _key_lines(text: str) -> list[str]:
    """The lines of a key file that are not blank and not ``#`` comments (as age reads them)."""
    lines = (line.strip() for line in text.splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def _parse(lines: list[str], prefix: str, parse: Callable[[str], _Key], kind: str) -> list[_Key]:
    """Each line as an age X25519 key of one kind (pyrage checks the Bech32 and its checksum)."""
    found = []
    for line in lines:
        if not line.startswith(prefix):
            raise KeyFileError(f"each key must be an age X25519 {kind} ({prefix}...)")
        try:
            found.append(parse(line))
        except (pyrage.RecipientError, pyrage.IdentityError) as exc:
            raise KeyFileError(f"not an age {kind} ({exc})") from exc
    return found


def load_recipients(text: str) -> list[x25519.Recipient]:
    """Parse a recipients file: one ``age1...`` public key a line, ``#`` comments allowed."""
    if "-----BEGIN" in text:
        raise KeyFileError(
            "a PEM key is no longer accepted: give the recipient's age public key (age1...), "
            "made with `contactpoint keys recipient-keypair` or `age-keygen`"
        )
    lines = _key_lines(text)
    if not lines:
        raise KeyFileError("no age public key (age1...) given")
    return _parse(lines, RECIPIENT_PREFIX, x25519.Recipient.from_str, "public key")


def load_recipient(text: str) -> x25519.Recipient:
    """Parse exactly one age public key (``age1...``)."""
    recipients = load_recipients(text)
    if len(recipients) != 1:
        raise KeyFileError("give exactly one age public key")
    return recipients[0]


def fingerprint(recipients: x25519.Recipient | Sequence[x25519.Recipient]) -> str:
    """A short stable name for a set of recipients (hex of the first 8 SHA-256 bytes)."""
    many = [recipients] if isinstance(recipients, x25519.Recipient) else recipients
    joined = "\n".join(sorted(str(r) for r in many))
    return hashlib.sha256(joined.encode("ascii")).digest()[:8].hex()


@dataclass(frozen=True)
class Identities:
    """What an identity file holds: age identities, or (for old files) one PEM X25519 key."""

    age: tuple[x25519.Identity, ...] = ()
    legacy: X25519PrivateKey | None = None


def load_identities(data: bytes | str) -> Identities:
    """Parse an identity file: age's (``AGE-SECRET-KEY-1...`` lines), or an old PEM key."""
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    if "-----BEGIN" in text:
        from reference_app.kit.legacy_envelope import EnvelopeError, load_identity

        try:
            return Identities(legacy=load_identity(text))
        except EnvelopeError as exc:
            raise KeyFileError(str(exc)) from exc
    lines = _key_lines(text)
    if not lines:
        raise KeyFileError("no age identity (AGE-SECRET-KEY-1...) in the file")
    return Identities(
        age=tuple(_parse(lines, IDENTITY_PREFIX, x25519.Identity.from_str, "secret key"))
    )


# Sealing ----------------------------------------------------------------------------------------


class _Pull:
    """The reader pyrage pulls plaintext from: the blocks of an iterator, handed over as asked.

    pyrage turns an exception raised here into ``EncryptError`` with its text only; the original
    is kept so the caller gets it back as it was (a database error stays a database error).
    """

    def __init__(self, blocks: Iterable[bytes]) -> None:
        self._blocks = iter(blocks)
        self._rest = memoryview(b"")
        self.error: BaseException | None = None

    def read(self, size: int = -1) -> bytes:
        try:
            while not self._rest:
                block = next(self._blocks, None)
                if block is None:
                    return b""
                self._rest = memoryview(block)
        except BaseException as exc:
            self.error = exc
            raise
        size = len(self._rest) if size is None or size < 0 else size
        piece, self._rest = self._rest[:size], self._rest[size:]
        return bytes(piece)


def encrypt_stream(
    blocks: Iterable[bytes], dst: BinaryIO, recipients: Sequence[x25519.Recipient]
) -> None:
    """Seal the concatenated ``blocks`` to ``recipients`` into ``dst``, block by block.

    The blocks are drawn as the encryption needs them, in this thread: memory holds one block
    and pyrage's buffers, whatever the total.
    """
    pull = _Pull(blocks)
    try:
        pyrage.encrypt_io(
            cast(io.BufferedIOBase, pull), cast(io.BufferedIOBase, dst), list(recipients)
        )
    except pyrage.EncryptError:
        if pull.error is not None:
            raise pull.error from None
        raise


def seal(data: bytes, recipients: x25519.Recipient | Sequence[x25519.Recipient]) -> bytes:
    """Encrypt ``data`` in one call."""
    many = [recipients] if isinstance(recipients, x25519.Recipient) else list(recipients)
    return pyrage.encrypt(data, many)


# Opening ----------------------------------------------------------------------------------------


def _explain(exc: Exception) -> str:
    message = str(exc)
    if "No matching keys" in message:
        # A damaged recipient stanza cannot be told from another key's: say both.
        return "it is sealed to another key, or its header is damaged (no identity given matches)"
    return f"it is damaged, cut short or not an age file ({message})"


class _Source:
    """The file pyrage reads from, keeping an error of its own apart from pyrage's."""

    def __init__(self, src: BinaryIO) -> None:
        self._src = src
        self.error: Exception | None = None

    def read(self, size: int = -1) -> bytes:
        try:
            return self._src.read(size)
        except Exception as exc:
            self.error = exc
            raise


class _Cancelled(Exception):
    """The reader of the plaintext stopped early: end the decryption."""


class _Push:
    """The writer pyrage pushes plaintext into: pieces queued for the reading thread."""

    def __init__(self, pieces: queue.Queue[tuple[str, object]], stop: threading.Event) -> None:
        self._pieces = pieces
        self._stop = stop

    def write(self, data: bytes) -> int:
        _put(self._pieces, ("data", bytes(data)), self._stop)
        return len(data)

    def flush(self) -> None:
        """Nothing to flush: every piece is queued as it comes."""


def _put(
    pieces: queue.Queue[tuple[str, object]], item: tuple[str, object], stop: threading.Event
) -> None:
    """Queue ``item``, giving up when the reader has stopped."""
    while True:
        if stop.is_set():
            raise _Cancelled
        try:
            pieces.put(item, timeout=0.1)
            return
        except queue.Full:
            continue


def open_stream(src: BinaryIO, identities: Sequence[x25519.Identity]) -> Generator[bytes]:
    """Yield the plaintext of the age file ``src`` piece by piece; raise ``AgeFileError``.

    pyrage writes the plaintext out (a push) and the callers read it (a pull), so pyrage runs in
    a worker thread that hands over at most ``_QUEUED`` pieces at a time. A caller must not act
    on the pieces until the iterator ends cleanly: only then is the whole file known to be
    authentic and complete. Stopping early ends the worker too.
    """
    pieces: queue.Queue[tuple[str, object]] = queue.Queue(maxsize=_QUEUED)
    stop = threading.Event()
    keys = list(identities)

    reader = _Source(src)

    def run() -> None:
        try:
            pyrage.decrypt_io(
                cast(io.BufferedIOBase, reader), cast(io.BufferedIOBase, _Push(pieces, stop)), keys
            )
            _put(pieces, ("end", None), stop)
        except _Cancelled:
            return
        except Exception as exc:  # handed to the reading thread, which raises it
            try:
                _put(pieces, ("error", reader.error or exc), stop)
            except _Cancelled:
                return

    worker = threading.Thread(target=run, name="age-decrypt", daemon=True)
    worker.start()
    try:
        while True:
            kind, payload = pieces.get()
            if kind == "data":
                yield cast(bytes, payload)
            elif kind == "end":
                return
            else:
                error = cast(Exception, payload)
                if error is reader.error:  # reading the file failed, not opening it
                    raise error
                # pyrage says DecryptError of the header, OSError of a damaged or cut payload.
                raise AgeFileError(_explain(error)) from error
    finally:
        stop.set()
        worker.join()


def open_sealed(blob: bytes, identities: Sequence[x25519.Identity]) -> bytes:
    """Decrypt a whole age file held in memory."""
    try:
        return pyrage.decrypt(blob, list(identities))
    except pyrage.DecryptError as exc:
        raise AgeFileError(_explain(exc)) from exc


def sniff(src: BinaryIO) -> Format:
    """The format of the file at ``src`` (read from its start; the position is restored)."""
    from reference_app.kit.legacy_envelope import MAGIC as LEGACY_MAGIC

    where = src.tell()
    head = src.read(max(len(MAGIC), len(ARMOR)))
    src.seek(where)
    if head.startswith(MAGIC) or head.startswith(ARMOR):
        return Format.AGE
    if head.startswith(LEGACY_MAGIC):
        return Format.LEGACY
    raise AgeFileError("it is not an age file")


def open_file(
    src: BinaryIO,
    identities: Identities,
    *,
    kind: Format | None = None,
    legacy_label: bytes | None = None,
) -> Generator[bytes]:
    """Yield the plaintext of an age file, or of an old envelope (this release only).

    ``kind`` is the file's format when the caller has sniffed it already (``src`` is then read
    from where it stands, never sought); ``legacy_label`` is what an old envelope's label must
    start with (None: any).
    """
    if (kind or sniff(src)) is Format.AGE:
        if not identities.age:
            raise AgeFileError(
                "it is an age file: give the recipient's age identity (AGE-SECRET-KEY-1...), "
                "not a PEM key"
            )
        yield from open_stream(src, identities.age)
        return
    from reference_app.kit.legacy_envelope import EnvelopeError
    from reference_app.kit.legacy_envelope import open_stream as open_legacy

    if identities.legacy is None:
        raise AgeFileError(
            "it is in the pre-age envelope format: give the PEM private key it was sealed to"
        )
    try:
        yield from open_legacy(src, identities.legacy, label_prefix=legacy_label)
    except EnvelopeError as exc:
        raise AgeFileError(str(exc)) from exc
