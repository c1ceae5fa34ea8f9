"""The export commands: a recipient key pair, opening an export, tracing a leaked copy."""

from __future__ import annotations

import base64
import json
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from reference_app.cli import main
from reference_app.kit.keys import Keyring
from tests.fixtures.exports import RECIPIENT, Flow, Recipient, flow
from tests.fixtures.world import World

OK, FAILED, USAGE = 0, 1, 2


def keys_document(keyring: Keyring) -> dict[str, object]:
    """The keys file a keyring was read from (the world's keys, for commands run against it)."""

    def b64(raw: bytes) -> str:
        return base64.b64encode(raw).decode("ascii")

    return {
        "field_keys": {kid: b64(key) for kid, key in keyring.field_keys.items()},
        "field_key_current": keyring.field_key_current,
        "blind_index_key": b64(keyring.blind_index_key),
        "token_secret": b64(keyring.token_secret),
        "audit_signing_keys": {
            kid: b64(key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption()))
            for kid, key in keyring.audit_signing_keys.items()
        },
        "audit_key_current": keyring.audit_key_current,
    }


@pytest.fixture
def keys_file(world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "keys.json"
    path.write_text(json.dumps(keys_document(world.ctx.keyring)))
    monkeypatch.setenv("CONTACTPOINT_KEYS_FILE", str(path))
    return path


def downloaded(world: World, tmp_path: Path, n: int = 2) -> tuple[Flow, Path, Path]:
    """An export downloaded to a file, with the recipient's age identity in another."""
    f = flow(world, n).through_link()
    assert f.download().status_code == 200
    envelope = tmp_path / "export.age"
    envelope.write_bytes(f.blob)
    identity = tmp_path / "recipient.key.txt"
    identity.write_text(f.recipient.identity)
    return f, envelope, identity


def test_recipient_keypair_writes_a_private_key_for_the_owner_only(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["keys", "recipient-keypair", "--out-dir", str(tmp_path / "k")])
    assert result.exit_code == OK, result.output
    made = json.loads(result.output)
    private, public = Path(made["private_key"]), Path(made["public_key"])
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert "\nAGE-SECRET-KEY-1" in private.read_text()
    assert f"# public key: {made['recipient']}" in private.read_text()
    assert public.read_text() == made["recipient"] + "\n"
    assert made["recipient"].startswith("age1")
    assert len(made["fingerprint"]) == 16
    again = runner.invoke(main, ["keys", "recipient-keypair", "--out-dir", str(tmp_path / "k")])
    assert again.exit_code == FAILED
    assert private.read_bytes() == Path(made["private_key"]).read_bytes()


def test_a_recipient_keypair_from_the_command_opens_a_real_export(
    world: World, tmp_path: Path
) -> None:
    runner = CliRunner()
    made = json.loads(
        runner.invoke(main, ["keys", "recipient-keypair", "--out-dir", str(tmp_path)]).output
    )
    f = flow(world, 1)
    f.recipient = Recipient(
        Path(made["private_key"]).read_text(), Path(made["public_key"]).read_text()
    )
    f.through_link()
    assert f.download().status_code == 200
    assert f.responses["request"].json()["recipient_fingerprint"] == made["fingerprint"]
    (tmp_path / "e.age").write_bytes(f.blob)
    out = tmp_path / "plain.jsonl"
    result = runner.invoke(
        main,
        [
            "export",
            "open",
            "--identity",
            made["private_key"],
            str(tmp_path / "e.age"),
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == OK, result.output
    assert f.children[0].id in out.read_text()


def test_open_decrypts_for_the_recipient(world: World, tmp_path: Path) -> None:
    f, envelope, identity = downloaded(world, tmp_path)
    out = tmp_path / "plain.jsonl"
    result = CliRunner().invoke(
        main, ["export", "open", "--identity", str(identity), str(envelope), "--out", str(out)]
    )
    assert result.exit_code == OK, result.output
    assert f"5 rows written to {out}" in result.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows == f.recipient.open(f.blob)
    assert stat.S_IMODE(out.stat().st_mode) == 0o600


def test_open_refuses_another_key_or_a_tampered_file(world: World, tmp_path: Path) -> None:
    _f, envelope, _identity = downloaded(world, tmp_path)
    stranger = tmp_path / "stranger.txt"
    runner = CliRunner()
    made = json.loads(
        runner.invoke(main, ["keys", "recipient-keypair", "--out-dir", str(tmp_path / "s")]).output
    )
    stranger.write_bytes(Path(made["private_key"]).read_bytes())
    out = tmp_path / "plain.jsonl"
    wrong_key = runner.invoke(
        main, ["export", "open", "--identity", str(stranger), str(envelope), "--out", str(out)]
    )
    assert wrong_key.exit_code == FAILED
    assert not out.exists()
    assert not (tmp_path / "plain.jsonl.partial").exists()

    blob = bytearray(envelope.read_bytes())
    blob[-5] ^= 0x01
    tampered = tmp_path / "tampered.age"
    tampered.write_bytes(bytes(blob))
    result = runner.invoke(
        main, ["export", "open", "--identity", str(_identity), str(tampered), "--out", str(out)]
    )
    assert result.exit_code == FAILED
    assert not out.exists()


def test_open_never_writes_over_a_file(world: World, tmp_path: Path) -> None:
    _f, envelope, identity = downloaded(world, tmp_path)
    out = tmp_path / "plain.jsonl"
    out.write_text("keep me")
    result = CliRunner().invoke(
        main, ["export", "open", "--identity", str(identity), str(envelope), "--out", str(out)]
    )
    assert result.exit_code == USAGE
    assert out.read_text() == "keep me"


def test_trace_names_the_export_a_leaked_copy_came_from(
    world: World, tmp_path: Path, keys_file: Path
) -> None:
    f, _envelope, _identity = downloaded(world, tmp_path)
    leaked = tmp_path / "leaked.jsonl"
    leaked.write_bytes(b"".join(json.dumps(r).encode() + b"\n" for r in f.recipient.open(f.blob)))
    url = world.database.app_url
    result = CliRunner().invoke(main, ["export", "trace", "--database", url, str(leaked)])
    assert result.exit_code == OK, result.output
    assert f"export {f.export_id} " in result.output
    assert f.requester.account.username in result.output
    assert f.approver.account.username in result.output
    assert RECIPIENT in result.output
    assert "found 3 of 3" in result.output

    as_json = CliRunner().invoke(
        main, ["export", "trace", "--database", url, "--json", str(leaked)]
    )
    assert as_json.exit_code == OK
    [hit] = json.loads(as_json.output)["exports"]
    assert hit["export_id"] == f.export_id
    assert hit["requested_by"]["id"] == f.requester.id
    assert hit["approved_by"]["id"] == f.approver.id


def test_trace_finds_one_watermark_in_a_scrap_of_text(
    world: World, tmp_path: Path, keys_file: Path
) -> None:
    f, _envelope, _identity = downloaded(world, tmp_path, n=1)
    real = {child.id for child in f.children}
    mark = next(r for r in f.recipient.open(f.blob) if r["child_id"] not in real)
    scrap = tmp_path / "scrap.txt"
    scrap.write_text(f"posted on a forum: {mark['given_name']} {mark['child_id'].lower()} ...")
    result = CliRunner().invoke(
        main, ["export", "trace", "--database", world.database.app_url, "--json", str(scrap)]
    )
    assert result.exit_code == OK, result.output
    [hit] = json.loads(result.output)["exports"]
    assert hit["export_id"] == f.export_id
    assert hit["watermarks_found"] == [mark["child_id"]]


def test_trace_exits_1_when_no_export_is_named(
    world: World, tmp_path: Path, keys_file: Path
) -> None:
    ordinary = world.child()
    text = tmp_path / "other.txt"
    text.write_text(f"{ordinary.id} and nothing else\n")
    result = CliRunner().invoke(
        main, ["export", "trace", "--database", world.database.app_url, str(text)]
    )
    assert result.exit_code == FAILED
    assert "names no export" in result.output
