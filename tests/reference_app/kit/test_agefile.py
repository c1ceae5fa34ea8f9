"""age files: round trips through the stream and in one call, interoperation with the `age`
tool both ways, keys in age's text forms, and every kind of damage or wrong key refused."""

from __future__ import annotations

import io
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from pyrage import x25519

from reference_app.kit import agefile
from reference_app.kit.agefile import AgeFileError, Format, KeyFileError

LEGACY = Path(__file__).parents[2] / "fixtures" / "legacy"
AGE_CHUNK = 64 * 1024


@pytest.fixture(scope="module")
def keys() -> tuple[str, str]:
    return agefile.generate_identity()


def _identities(keys: tuple[str, str]) -> list[x25519.Identity]:
    return list(agefile.load_identities(keys[0]).age)


def _seal_stream(keys: tuple[str, str], blocks: list[bytes]) -> bytes:
    out = io.BytesIO()
    agefile.encrypt_stream(iter(blocks), out, [agefile.load_recipient(keys[1])])
    return out.getvalue()


def _data(size: int) -> bytes:
    return bytes(range(256)) * (size // 256) + bytes(size % 256)


@pytest.mark.parametrize("size", [0, 1, AGE_CHUNK - 1, AGE_CHUNK, 2 * AGE_CHUNK + 5])
def test_round_trip_at_chunk_boundaries(keys: tuple[str, str], size: int) -> None:
    data = _data(size)
    # Blocks of odd sizes: the reader pyrage pulls from must split and join them exactly.
    blocks = [data[i : i + 10007] for i in range(0, len(data), 10007)]
    blob = _seal_stream(keys, blocks)
    assert blob.startswith(agefile.MAGIC)
    assert b"".join(agefile.open_stream(io.BytesIO(blob), _identities(keys))) == data
    assert agefile.open_sealed(blob, _identities(keys)) == data
    assert (
        agefile.open_sealed(agefile.seal(data, agefile.load_recipient(keys[1])), _identities(keys))
        == data
    )


def test_the_plaintext_does_not_appear(keys: tuple[str, str]) -> None:
    blob = agefile.seal(b"Amelia Smith, 2014-03-02" * 10, agefile.load_recipient(keys[1]))
    assert b"Amelia" not in blob
    assert b"2014" not in blob


def _age() -> str:
    found = shutil.which("age")
    assert found, "the age command-line tool is not installed: apt-get install -y age"
    return found


def test_the_age_tool_reads_ours_and_we_read_its(keys: tuple[str, str], tmp_path: Path) -> None:
    data = _data(3 * AGE_CHUNK + 17)
    identity = tmp_path / "key.txt"
    identity.write_text(keys[0])
    ours = tmp_path / "ours.age"
    ours.write_bytes(_seal_stream(keys, [data]))
    opened = subprocess.run(
        [_age(), "-d", "-i", str(identity), str(ours)], capture_output=True, check=False
    )
    assert opened.returncode == 0, opened.stderr
    assert opened.stdout == data
    sealed = subprocess.run([_age(), "-r", keys[1]], input=data, capture_output=True, check=False)
    assert sealed.returncode == 0, sealed.stderr
    assert b"".join(agefile.open_stream(io.BytesIO(sealed.stdout), _identities(keys))) == data


def _flip(blob: bytes, at: int) -> bytes:
    return blob[:at] + bytes([blob[at] ^ 1]) + blob[at + 1 :]


def _payload(blob: bytes) -> int:
    mac_line = blob.index(b"\n--- ") + 1
    return blob.index(b"\n", mac_line) + 1 + 16


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda b: _flip(b, len(b) - 1), id="flipped-last-byte"),
        pytest.param(lambda b: _flip(b, 40), id="flipped-header"),
        pytest.param(lambda b: _flip(b, _payload(b) + 5), id="flipped-payload"),
        pytest.param(lambda b: b[: len(b) - 200], id="truncated-last-chunk"),
        pytest.param(lambda b: b[: _payload(b) + AGE_CHUNK + 16], id="only-first-chunk"),
        pytest.param(lambda b: b + b"\x00", id="extended"),
        pytest.param(lambda b: b[:30], id="cut-in-the-header"),
    ],
)
def test_damage_is_refused(keys: tuple[str, str], tamper: object) -> None:
    blob = tamper(_seal_stream(keys, [b"x" * (AGE_CHUNK + 100)]))  # type: ignore[operator]
    with pytest.raises(AgeFileError, match="damaged"):
        b"".join(agefile.open_stream(io.BytesIO(blob), _identities(keys)))
    with pytest.raises(AgeFileError):
        agefile.open_sealed(blob, _identities(keys))


def test_another_key_cannot_open(keys: tuple[str, str]) -> None:
    other = agefile.load_identities(agefile.generate_identity()[0]).age
    blob = _seal_stream(keys, [b"data"])
    with pytest.raises(AgeFileError, match="sealed to another key"):
        b"".join(agefile.open_stream(io.BytesIO(blob), other))
    with pytest.raises(AgeFileError, match="sealed to another key"):
        agefile.open_sealed(blob, other)


def _decrypting() -> int:
    return sum(1 for t in threading.enumerate() if t.name == "age-decrypt")


def test_stopping_early_ends_the_decrypting_thread(keys: tuple[str, str]) -> None:
    blob = _seal_stream(keys, [b"y" * (40 * AGE_CHUNK)])
    before = _decrypting()
    pieces = agefile.open_stream(io.BytesIO(blob), _identities(keys))
    next(pieces)
    assert _decrypting() == before + 1
    pieces.close()  # joins the worker before it returns
    assert _decrypting() == before


def test_an_error_of_the_source_of_blocks_comes_back_as_it_was(keys: tuple[str, str]) -> None:
    class DatabaseGone(Exception):
        pass

    def blocks() -> Iterator[bytes]:
        yield b"a" * 100_000
        raise DatabaseGone("connection lost")

    with pytest.raises(DatabaseGone, match="connection lost"):
        agefile.encrypt_stream(blocks(), io.BytesIO(), [agefile.load_recipient(keys[1])])


def test_an_error_reading_the_file_comes_back_as_it_was(keys: tuple[str, str]) -> None:
    class Failing(io.BytesIO):
        def read(self, size: int | None = -1) -> bytes:
            raise OSError(5, "Input/output error")

    with pytest.raises(OSError, match="Input/output"):
        b"".join(agefile.open_stream(Failing(), _identities(keys)))


def test_the_identity_file_is_agekeygens(keys: tuple[str, str]) -> None:
    identity_text, public = keys
    lines = identity_text.splitlines()
    assert lines[0].startswith("# created: ")
    assert lines[1] == f"# public key: {public}"
    assert lines[2].startswith("AGE-SECRET-KEY-1")
    assert public.startswith("age1")
    [key] = agefile.load_identities(identity_text).age
    assert str(key.to_public()) == public


def test_recipient_files_take_comments_and_several_keys(keys: tuple[str, str]) -> None:
    second = agefile.generate_identity()[1]
    text = f"# custodians\n\n{keys[1]}\n  {second}  \n"
    recipients = agefile.load_recipients(text)
    assert [str(r) for r in recipients] == [keys[1], second]
    assert len(agefile.fingerprint(recipients)) == 16
    assert agefile.fingerprint(recipients) == agefile.fingerprint(list(reversed(recipients)))
    with pytest.raises(KeyFileError, match="exactly one"):
        agefile.load_recipient(text)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "no age public key"),
        ("# only a comment\n", "no age public key"),
        ("not a key", "age X25519 public key"),
        ("age1notbech32", "not an age public key"),
        ((LEGACY / "identity.pem").read_text(), "PEM key is no longer accepted"),
    ],
)
def test_bad_recipients_are_refused(text: str, message: str) -> None:
    with pytest.raises(KeyFileError, match=message):
        agefile.load_recipients(text)


def test_bad_identities_are_refused(keys: tuple[str, str]) -> None:
    with pytest.raises(KeyFileError, match="no age identity"):
        agefile.load_identities("# nothing\n")
    with pytest.raises(KeyFileError, match="AGE-SECRET-KEY-1"):
        agefile.load_identities(keys[1])  # a public key is not an identity
    with pytest.raises(KeyFileError, match="not an age secret key"):
        agefile.load_identities("AGE-SECRET-KEY-1QQQQ")
    with pytest.raises(KeyFileError):
        agefile.load_identities("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")


def test_either_format_opens_with_its_own_key(keys: tuple[str, str]) -> None:
    legacy_key = agefile.load_identities((LEGACY / "identity.pem").read_bytes())
    age_key = agefile.load_identities(keys[0])
    old = LEGACY / "export-7.cpenv"
    with old.open("rb") as src:
        assert agefile.sniff(src) is Format.LEGACY
        assert src.tell() == 0
        assert b"TESTLEGACY001" in b"".join(agefile.open_file(src, legacy_key))
    with old.open("rb") as src, pytest.raises(AgeFileError, match="PEM private key"):
        b"".join(agefile.open_file(src, age_key))
    new = io.BytesIO(_seal_stream(keys, [b"new\n"]))
    assert agefile.sniff(new) is Format.AGE
    assert b"".join(agefile.open_file(new, age_key)) == b"new\n"
    new.seek(0)
    with pytest.raises(AgeFileError, match="age identity"):
        b"".join(agefile.open_file(new, legacy_key))
    with pytest.raises(AgeFileError, match="not an age file"):
        agefile.sniff(io.BytesIO(b"PK\x03\x04 a zip"))
