"""Exports are age files: the standard `age` tool opens one with the recipient's identity, a
wrong key opens nothing, and an export in the old envelope format still opens, for one release."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from click.testing import CliRunner, Result
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from sqlalchemy import update

from reference_app.cli import main
from reference_app.exports.models import ExportRequest
from tests.fixtures.exports import flow
from tests.fixtures.world import World

LEGACY = Path(__file__).parents[2] / "fixtures" / "legacy"
OK, FAILED = 0, 1


def open_export(identity: Path | str, file: Path, out: Path) -> Result:
    """`contactpoint export open` as a recipient runs it."""
    args = ["export", "open", "--identity", str(identity), str(file), "--out", str(out)]
    return CliRunner().invoke(main, args)


def age_binary() -> str:
    """The `age` command-line tool (Debian's package `age`; .ci/run installs it)."""
    found = shutil.which("age")
    assert found, "the age command-line tool is not installed: apt-get install -y age"
    return found


def test_the_age_tool_opens_an_export_with_the_recipients_identity(
    world: World, tmp_path: Path
) -> None:
    f = flow(world, 2).through_link()
    assert f.download().status_code == 200
    sealed, identity = tmp_path / "export.age", tmp_path / "key.txt"
    sealed.write_bytes(f.blob)
    identity.write_text(f.recipient.identity)
    opened = subprocess.run(
        [age_binary(), "-d", "-i", str(identity), str(sealed)],
        capture_output=True,
        check=False,
    )
    assert opened.returncode == 0, opened.stderr
    rows = [json.loads(line) for line in opened.stdout.decode("utf-8").splitlines()]
    assert {c.id for c in f.children} <= {r["child_id"] for r in rows}
    assert rows == f.recipient.open(f.blob)

    stranger = tmp_path / "stranger.txt"
    made = CliRunner().invoke(main, ["keys", "recipient-keypair", "--out-dir", str(tmp_path / "s")])
    stranger.write_text(Path(json.loads(made.output)["private_key"]).read_text())
    refused = subprocess.run(
        [age_binary(), "-d", "-i", str(stranger), str(sealed)], capture_output=True, check=False
    )
    assert refused.returncode != 0
    assert refused.stdout == b""


def test_an_export_in_the_old_envelope_opens_with_its_pem_key_and_a_warning(
    tmp_path: Path,
) -> None:
    out = tmp_path / "plain.jsonl"
    result = open_export(LEGACY / "identity.pem", LEGACY / "export-7.cpenv", out)
    assert result.exit_code == OK, result.output
    assert "deprecated: this file is in the pre-age envelope format" in result.output
    [row] = [json.loads(line) for line in out.read_text().splitlines()]
    assert row["child_id"] == "TESTLEGACY001"


def test_an_old_envelope_with_an_age_key_fails_cleanly(tmp_path: Path) -> None:
    runner = CliRunner()
    made = json.loads(
        runner.invoke(main, ["keys", "recipient-keypair", "--out-dir", str(tmp_path)]).output
    )
    out = tmp_path / "plain.jsonl"
    result = open_export(made["private_key"], LEGACY / "export-7.cpenv", out)
    assert result.exit_code == FAILED
    assert "give the PEM private key it was sealed to" in result.output
    assert not out.exists()
    assert not out.with_name("plain.jsonl.partial").exists()


def test_a_request_kept_from_before_the_age_format_is_not_downloaded(world: World) -> None:
    f = flow(world, 1).through_link()
    # The old form of a recipient key, kept in a request made before the upgrade.
    pem = (
        X25519PrivateKey.generate()
        .public_key()
        .public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
        .decode("ascii")
    )
    with world.ctx.sessions() as db, db.begin():
        db.execute(
            update(ExportRequest)
            .where(ExportRequest.id == f.export_id)
            .values(recipient_public_key=pem)
        )
    response = f.download()
    assert response.status_code == 409, response.text
    assert response.json()["error"]["code"] == "export_recipient_key_outdated"
    listed = world.client.get(f"/api/v1/exports/{f.export_id}", headers=f.requester.headers)
    assert listed.json()["status"] == "approved"  # nothing left: it may be requested again
