"""deploy/ansible applied for real: lint, syntax, then a booted Debian 12 system (systemd-nspawn)
converged twice (the second run changes nothing), verified with the same checks as
`contactpoint deploy check`, its backups restored by the drill, and its keys rotated online.

Behind the ``deploy`` marker (``pytest -m deploy``; .ci/run's last stage): it needs root,
debootstrap, systemd-nspawn and nft, and minutes. Outside CI a missing tool skips with the
reason; in CI (CI=true) it fails.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from contactpoint import deploy_check
from tests.deploy import container

pytestmark = pytest.mark.deploy

ROOT = Path(__file__).resolve().parents[2]
ANSIBLE = ROOT / "deploy" / "ansible"
INVENTORY = ANSIBLE / "inventories" / "test"
VAULT_PASSWORD = INVENTORY / "vault-password.txt"
PLAYBOOKS = ["site.yml", "restore_drill.yml", "rotate_keys.yml", "upgrade.yml"]
TIMINGS = container.WORK / "apply-timings.json"


def _unavailable(reason: str) -> None:
    if os.environ.get("CI") or os.environ.get("CONTACTPOINT_REQUIRE_DEPLOY"):
        pytest.fail(reason)
    pytest.skip(reason)


def _tool(name: str) -> str:
    found = Path(sys.executable).with_name(name)
    if found.exists():
        return str(found)
    path = shutil.which(name)
    if path is None:
        _unavailable(f"{name} is not installed (pip install -e '.[deploy]')")
    assert path is not None
    return path


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    return {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
        "ANSIBLE_VAULT_PASSWORD_FILE": str(VAULT_PASSWORD),
        "ANSIBLE_FORCE_COLOR": "0",
        "ANSIBLE_NOCOLOR": "1",
        "PYTHONWARNINGS": "ignore",
        **(extra or {}),
    }


def test_the_roles_and_playbooks_pass_the_production_lint_profile() -> None:
    result = subprocess.run(
        [_tool("ansible-lint"), "--profile", "production", "--nocolor"],
        cwd=ANSIBLE,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


@pytest.mark.parametrize("playbook", PLAYBOOKS)
def test_each_playbook_passes_the_syntax_check(playbook: str) -> None:
    result = subprocess.run(
        [_tool("ansible-playbook"), "-i", str(INVENTORY), playbook, "--syntax-check"],
        cwd=ANSIBLE,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]


@dataclass
class Run:
    changed: int
    failed: int
    seconds: float
    log: str


def _playbook(
    playbook: str, machine: container.Machine, wheels: container.Wheelhouses, *extra: str
) -> Run:
    return _playbook_with(playbook, machine, wheels, wheels.registry, *extra)


def _playbook_with(
    playbook: str,
    machine: container.Machine,
    wheels: container.Wheelhouses,
    registry_wheels: Path,
    *extra: str,
) -> Run:
    started = time.monotonic()
    result = subprocess.run(
        [_tool("ansible-playbook"), "-i", str(INVENTORY), playbook, *extra],
        cwd=ANSIBLE,
        env=_env(
            {
                **machine.env(),
                "CONTACTPOINT_DEPLOY_WHEELHOUSE": str(registry_wheels),
                "CONTACTPOINT_DEPLOY_DEMO_WHEELHOUSE": str(wheels.demo),
            }
        ),
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )
    seconds = time.monotonic() - started
    recap = re.search(r"changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", result.stdout)
    log = result.stdout[-6000:] + result.stderr[-2000:]
    assert result.returncode == 0, f"{playbook} failed:\n{log}"
    assert recap is not None, f"{playbook} printed no recap:\n{log}"
    return Run(int(recap.group(1)), int(recap.group(3)), seconds, log)


@dataclass
class Region:
    machine: container.Machine
    wheels: container.Wheelhouses
    first: Run
    second: Run


@pytest.fixture(scope="module")
def region() -> Iterator[Region]:
    """Create, converge, converge again; destroyed after the module."""
    if os.geteuid() != 0:
        _unavailable("the deploy tests boot a container: run them as root (.ci/run uses sudo)")
    missing = container.missing_tools()
    if missing:
        _unavailable(
            f"missing {', '.join(missing)} (apt-get install debootstrap systemd-container nftables)"
        )
    wheels = container.wheelhouse(ROOT)
    with container.booted() as machine:
        first = _playbook("site.yml", machine, wheels)
        second = _playbook("site.yml", machine, wheels)
        TIMINGS.write_text(
            json.dumps(
                {
                    "first_apply_s": round(first.seconds, 1),
                    "second_apply_s": round(second.seconds, 1),
                }
            )
        )
        print(
            f"site.yml: first apply {first.seconds:.0f} s ({first.changed} changed), "
            f"second {second.seconds:.0f} s ({second.changed} changed)"
        )
        yield Region(machine, wheels, first, second)


def test_the_second_apply_changes_nothing(region: Region) -> None:
    assert region.first.changed > 0
    assert region.second.changed == 0, region.second.log


def _checks(
    machine: container.Machine, monkeypatch: pytest.MonkeyPatch, only: set[str]
) -> dict[str, deploy_check.Result]:
    """The same checks `contactpoint deploy check --inventory inventories/test` runs."""
    for key, value in {**machine.env(), "ANSIBLE_VAULT_PASSWORD_FILE": str(VAULT_PASSWORD)}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("PATH", _env()["PATH"])
    region = deploy_check.load_region(INVENTORY, None)
    with deploy_check.multiplexed(region):
        results = deploy_check.run_checks(region, only)
    return {r.name: r for r in results}


def test_the_verify_checks_pass_on_the_booted_system(
    region: Region, monkeypatch: pytest.MonkeyPatch
) -> None:
    results = _checks(
        region.machine,
        monkeypatch,
        {c.name for c in deploy_check.CHECKS} - {"restore_drill_passed"},
    )
    # What belongs to the kernel is skipped in a container, saying so (shown under QEMU instead).
    kernel = deploy_check.KERNEL_CHECKS
    failed = {n: r.detail for n, r in results.items() if r.outcome != "passed" and n not in kernel}
    assert not failed
    assert len(results) == len(deploy_check.CHECKS) - 1
    for name in kernel:
        assert results[name].outcome == "skipped", results[name]
        assert "container" in results[name].detail


def test_the_restore_drill_restores_both_backups(
    region: Region, monkeypatch: pytest.MonkeyPatch
) -> None:
    _playbook("restore_drill.yml", region.machine, region.wheels)
    results = _checks(region.machine, monkeypatch, {"restore_drill_passed", "backups_encrypted"})
    drill = results["restore_drill_passed"]
    assert drill.outcome == "passed", drill.detail
    assert "pgbackrest" in drill.detail
    # The verify checks logged in through nginx first: the trail compared is not empty.
    audit_rows = re.search(r"(\d+) audit rows \(events and log entries\) identical", drill.detail)
    assert audit_rows is not None, drill.detail
    assert int(audit_rows.group(1)) > 0
    assert "registry" in drill.detail
    assert results["backups_encrypted"].outcome == "passed"


def _timing(key: str, value: float | int) -> None:
    timings = json.loads(TIMINGS.read_text()) if TIMINGS.exists() else {}
    timings[key] = value
    TIMINGS.write_text(json.dumps(timings))


REENCRYPT_REPORT = "var/lib/contactpoint/reencrypt-last.json"


def test_keys_rotate_online(region: Region, monkeypatch: pytest.MonkeyPatch) -> None:
    run = _playbook(
        "rotate_keys.yml", region.machine, region.wheels, "-e", "rotate_keys=field,audit,token"
    )
    _timing("rotate_keys_s", round(run.seconds, 1))
    print(f"rotate_keys.yml (field, audit, token): {run.seconds:.1f} s")
    handed_back = INVENTORY / "rotated-keys.vault.json"
    try:
        assert handed_back.read_text().startswith("$ANSIBLE_VAULT")
    finally:
        handed_back.unlink(missing_ok=True)
    results = _checks(region.machine, monkeypatch, {"login_through_edge", "services_active"})
    assert all(r.outcome == "passed" for r in results.values()), results
    # The field rotation's re-encryption pass (the playbook's last play) left no personal value
    # under the old key: its report, as the host keeps it.
    report = json.loads((region.machine.root / REENCRYPT_REPORT).read_text())
    print(f"re-encryption pass: {report['rows_rewritten']} rows in {report['seconds']} s")
    assert report["rows_rewritten"] > 0
    assert report["unreadable_values"] == {}
    assert report["after"]["not_under_current"] == 0
    assert report["after"]["current"] == report["current"]


@dataclass
class Traffic:
    statuses: dict[int, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)

    @property
    def sent(self) -> int:
        return sum(self.statuses.values()) + sum(self.errors.values())


CLIENT_CONCURRENCY = 4
CLIENT_MAX_REQUESTS = 20_000
CLIENT_MAX_SECONDS = 600.0
# Each client pauses between requests: four of them stay under nginx's per-source rate limit
# (20 a second), so every answer that is not 2xx is the upgrade's doing, not the limit's.
CLIENT_PAUSE_S = 0.25


def _client(
    host: deploy_check.Host, ca: str, token: str, stop: threading.Event, traffic: Traffic
) -> None:
    """Bounded in count and time: an authenticated view, GET /api/v1/auth/me (the token checked,
    the practitioner read from the database), through nginx until told to stop. (Not /readyz:
    it runs one probe at a time per worker and answers a concurrent one 503 by design.)"""
    lock = threading.Lock()
    deadline = time.monotonic() + CLIENT_MAX_SECONDS

    def worker() -> None:
        while not stop.is_set() and time.monotonic() < deadline:
            with lock:
                if traffic.sent >= CLIENT_MAX_REQUESTS:
                    return
            try:
                status, _, _ = deploy_check._https(host, ca, "GET", "/api/v1/auth/me", token=token)
            except (OSError, http.client.HTTPException) as error:
                with lock:
                    name = type(error).__name__
                    traffic.errors[name] = traffic.errors.get(name, 0) + 1
                stop.wait(CLIENT_PAUSE_S)
                continue
            with lock:
                traffic.statuses[status] = traffic.statuses.get(status, 0) + 1
            stop.wait(CLIENT_PAUSE_S)

    threads = [threading.Thread(target=worker) for _ in range(CLIENT_CONCURRENCY)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=CLIENT_MAX_SECONDS + 30)


def test_the_upgrade_installs_a_new_release_and_nginx_answers_throughout(
    region: Region, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = _checks(region.machine, monkeypatch, {"registry_only_install"})
    assert before["registry_only_install"].outcome == "passed", before
    assert container.UPGRADE_VERSION not in before["registry_only_install"].detail
    app = deploy_check.load_region(INVENTORY, None).group("app")[0]
    ca = deploy_check._ca(app)
    _, token = deploy_check.login(app, ca)
    stop = threading.Event()
    traffic = Traffic()
    client = threading.Thread(target=_client, args=(app, ca, token, stop, traffic))
    client.start()
    try:
        run = _playbook_with("upgrade.yml", region.machine, region.wheels, region.wheels.upgrade)
    finally:
        stop.set()
        client.join(timeout=CLIENT_MAX_SECONDS + 60)
    assert "Check the host answers ready through nginx after the upgrade" in run.log
    assert run.changed > 0, run.log
    after = _checks(region.machine, monkeypatch, {"registry_only_install", "login_through_edge"})
    assert all(r.outcome == "passed" for r in after.values()), after
    assert container.UPGRADE_VERSION in after["registry_only_install"].detail
    failed = sum(n for status, n in traffic.statuses.items() if not 200 <= status < 300)
    _timing("upgrade_s", round(run.seconds, 1))
    _timing("upgrade_requests", traffic.sent)
    _timing("upgrade_requests_not_2xx", failed)
    _timing("upgrade_connection_errors", sum(traffic.errors.values()))
    print(
        f"upgrade.yml to {container.UPGRADE_VERSION}: {run.seconds:.1f} s; "
        f"{traffic.sent} requests through nginx at concurrency {CLIENT_CONCURRENCY}: "
        f"statuses {dict(sorted(traffic.statuses.items()))}, connection errors {traffic.errors}"
    )
    # The instances restarted one at a time, each ready before the next, and nginx sent every
    # request that found one down to the other: not one answer lost or refused.
    assert "Restart the instance" in run.log
    assert traffic.sent >= 40, traffic
    assert failed == 0, traffic.statuses
    assert not traffic.errors, traffic.errors
