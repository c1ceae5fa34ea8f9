"""What a container cannot show, shown on a booted kernel: the base role applied under QEMU.

The deploy stage's container shares the host's kernel, so the base role skips its kernel
sysctls and auditd there. Here the same cached Debian 12 root filesystem, with Debian's kernel
added, boots under ``qemu-system-x86_64 -accel tcg`` (tests/deploy/vm.py), the base role is
applied to it over SSH, and the test reads back from the guest's kernel: every sysctl the role
sets is live, auditd runs with the role's watches loaded and recording, and a unit's
``MemoryMax`` (the registry unit's value from its role defaults) is enforced by the kernel.

Behind the ``qemu`` marker (``pytest -m qemu``, as root; not in .ci/run's mandatory stages:
software emulation takes minutes). A missing tool skips with the reason, or fails when CI=true
or CONTACTPOINT_REQUIRE_QEMU=1.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from contactpoint import deploy_check
from tests.deploy import vm

pytestmark = pytest.mark.qemu

ROOT = Path(__file__).resolve().parents[2]
ANSIBLE = ROOT / "deploy" / "ansible"
ROLES = ANSIBLE / "roles"
PLAYBOOK = Path(sys.executable).with_name("ansible-playbook")
TIMINGS = vm.WORK.parent / "contactpoint-vm-timings.json"


def _unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true" or os.environ.get("CONTACTPOINT_REQUIRE_QEMU") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


def _defaults(role: str) -> dict[str, object]:
    loaded = yaml.safe_load((ROLES / role / "defaults" / "main.yml").read_text())
    assert isinstance(loaded, dict)
    return loaded


def _bytes(size: str) -> int:
    match = re.fullmatch(r"(\d+)([KMGT]?)", size)
    assert match is not None, f"unreadable size {size!r}"
    return int(match.group(1)) * 1024 ** "_KMGT".index(match.group(2) or "_")


@pytest.fixture(scope="module")
def guest() -> Iterator[vm.VM]:
    if os.geteuid() != 0:
        _unavailable("the qemu stage needs root (it builds and mounts the image)")
    missing = vm.missing_tools()
    if missing:
        _unavailable(
            f"missing {', '.join(missing)} "
            "(apt-get install qemu-system-x86 e2fsprogs debootstrap openssh-client)"
        )
    if not PLAYBOOK.exists():
        _unavailable("ansible-playbook is not installed (pip install -e '.[deploy]')")
    with vm.booted() as machine:
        yield machine


def _apply(machine: vm.VM, tmp: Path) -> tuple[int, float, str]:
    """Apply only the base role to the guest; return changed, seconds and the log's tail."""
    (tmp / "inventory.yml").write_text(
        yaml.safe_dump(
            {
                "all": {
                    "hosts": {
                        "cpvm": {
                            "ansible_host": "127.0.0.1",
                            "ansible_port": machine.port,
                            "ansible_user": "deploy",
                            "ansible_ssh_private_key_file": str(machine.key),
                            "ansible_ssh_common_args": "-o UserKnownHostsFile=/dev/null "
                            "-o StrictHostKeyChecking=no",
                            # Packages are in the image and the guest has no route out.
                            "base_apt_update_cache": False,
                            # TLS material is the deploy stage's concern, not the kernel's.
                            "base_tls_enabled": False,
                        }
                    }
                }
            }
        )
    )
    (tmp / "base.yml").write_text(
        "- name: Harden the guest\n  hosts: all\n  become: true\n  roles:\n    - role: base\n"
    )
    started = time.monotonic()
    result = subprocess.run(
        [
            str(PLAYBOOK),
            "-i",
            str(tmp / "inventory.yml"),
            str(tmp / "base.yml"),
        ],
        cwd=ANSIBLE,
        env={
            **os.environ,
            "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
            "ANSIBLE_CONFIG": str(ANSIBLE / "ansible.cfg"),
            "ANSIBLE_ROLES_PATH": str(ROLES),
            "ANSIBLE_NOCOLOR": "1",
            "PYTHONWARNINGS": "ignore",
        },
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    seconds = time.monotonic() - started
    log = result.stdout[-6000:] + result.stderr[-2000:]
    assert result.returncode == 0, f"the base role failed in the guest:\n{log}"
    recap = re.search(r"changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", result.stdout)
    assert recap is not None, log
    return int(recap.group(1)), seconds, log


@pytest.fixture(scope="module")
def hardened(guest: vm.VM, tmp_path_factory: pytest.TempPathFactory) -> vm.VM:
    sysctls = _defaults("base")["base_sysctl_settings"]
    assert isinstance(sysctls, dict)
    before = _sysctl(guest, sysctls)
    # The booted kernel's own defaults differ from the role's, so what the test reads after is
    # the role's doing.
    assert before != {key: str(value) for key, value in sysctls.items()}, before
    # Nor do the deploy checks of the kernel pass before: no sysctl file, no watches.
    bare = _kernel_checks(guest)
    assert {n: r.outcome for n, r in bare.items()} == dict.fromkeys(
        deploy_check.KERNEL_CHECKS, "failed"
    ), bare
    tmp = tmp_path_factory.mktemp("qemu-base")
    first_changed, first_seconds, _ = _apply(guest, tmp)
    second_changed, second_seconds, log = _apply(guest, tmp)
    assert first_changed > 0
    assert second_changed == 0, f"the second apply changed {second_changed}:\n{log}"
    TIMINGS.write_text(
        json.dumps(
            {
                "boot_seconds": round(guest.boot_seconds, 1),
                "first_apply_seconds": round(first_seconds, 1),
                "second_apply_seconds": round(second_seconds, 1),
                "first_apply_changed": first_changed,
            }
        )
    )
    return guest


def _sysctl(machine: vm.VM, settings: dict[str, object]) -> dict[str, str]:
    result = machine.ssh("sysctl -n " + " ".join(settings))
    assert result.returncode == 0, result.stderr
    return dict(zip(settings, result.stdout.split(), strict=True))


def test_the_guest_is_a_machine_of_its_own_not_a_container(guest: vm.VM) -> None:
    result = guest.ssh("systemd-detect-virt; uname -r")
    virt, kernel = result.stdout.split()
    assert virt not in {"systemd-nspawn", "container-other", "lxc", "docker", "podman"}, virt
    assert kernel != os.uname().release or virt != "none"


def test_every_sysctl_the_role_sets_is_live_in_the_kernel(hardened: vm.VM) -> None:
    settings = _defaults("base")["base_sysctl_settings"]
    assert isinstance(settings, dict)
    assert _sysctl(hardened, settings) == {key: str(value) for key, value in settings.items()}


def test_auditd_runs_with_the_role_watches_loaded_and_recording(hardened: vm.VM) -> None:
    assert hardened.ssh("systemctl is-active auditd").stdout.strip() == "active"
    rules = hardened.ssh("auditctl -l")
    assert rules.returncode == 0, rules.stderr
    watches = _defaults("base")["base_auditd_watch_paths"]
    assert isinstance(watches, list)
    for watch in watches:
        assert f"-w {watch['path']} -p wa -k {watch['key']}" in rules.stdout, rules.stdout


def test_a_watched_file_opened_for_writing_is_recorded(hardened: vm.VM) -> None:
    # Opening a watched file for writing is recorded under its key (nothing is written).
    # ausearch reads its standard input when that is not a terminal, as over SSH without one,
    # and then answers "<no matches>" whatever the log holds: --input-logs makes it read the
    # log auditd.conf names. auditd writes on its own time, and under software emulation that
    # can take a while: ask again for up to a minute before concluding nothing was recorded.
    # (No `$` in the command: the deploy user's login shell expands it before sudo's sh.)
    search = "ausearch --input-logs -k sshd-config -i"
    tries = " ".join(str(n) for n in range(60))
    opened = hardened.ssh(
        f": >> /etc/ssh/sshd_config && for _ in {tries}; do "
        f"{search} 2>/dev/null | grep -q sshd_config && break; sleep 1; done; {search}",
        timeout=300,
    )
    assert opened.returncode == 0, (opened.stdout, opened.stderr)
    assert "name=/etc/ssh/sshd_config" in opened.stdout, opened.stdout
    assert "syscall=openat" in opened.stdout, opened.stdout
    assert "O_WRONLY" in opened.stdout, opened.stdout


def _kernel_checks(machine: vm.VM) -> dict[str, deploy_check.Result]:
    """`contactpoint deploy check`'s checks of a real host's kernel, run against the guest."""
    host = deploy_check.Host(
        name="cpvm",
        address="127.0.0.1",
        user="deploy",
        key="",  # in the options, with the forwarded port
        groups=["all"],
        ssh_args=vm.ssh_options(machine.key, machine.port),
    )
    results = deploy_check.run_checks(deploy_check.Region([host]), set(deploy_check.KERNEL_CHECKS))
    return {r.name: r for r in results}


def test_the_deploy_checks_of_the_kernel_pass_on_the_guest(hardened: vm.VM) -> None:
    """They failed on the bare guest (the `hardened` fixture); a container skips them."""
    results = _kernel_checks(hardened)
    assert {n: r.outcome for n, r in results.items()} == dict.fromkeys(
        deploy_check.KERNEL_CHECKS, "passed"
    ), results


def test_the_registry_unit_memory_limit_is_enforced_by_the_kernel(hardened: vm.VM) -> None:
    limit = _defaults("contactpoint_registry")["contactpoint_registry_memory_max"]
    assert isinstance(limit, str)
    over = _bytes(limit) + 256 * 1024 * 1024
    oom = "journalctl -k --no-pager | grep -c 'Memory cgroup out of memory' || true"
    before = int(hardened.ssh(oom).stdout.strip())
    # The registry unit's MemoryMax on a transient unit: writing past it must be OOM-killed
    # inside the unit's cgroup (the guest has 3 GiB and no swap, so nothing else stops it).
    result = hardened.ssh(
        f"systemd-run --wait -p MemoryMax={limit} -p MemorySwapMax=0 "
        f"/usr/bin/python3 -c 'b = bytes(1) * {over}; print(len(b))'",
        timeout=900,
    )
    assert result.returncode != 0, (result.stdout, result.stderr)
    assert "oom-kill" in result.stdout + result.stderr, (result.stdout, result.stderr)
    assert int(hardened.ssh(oom).stdout.strip()) > before
