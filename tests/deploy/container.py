"""A booted Debian 12 system for the deploy tests: create, and destroy, the molecule way.

The root filesystem is built once with ``debootstrap`` (minbase plus systemd, SSH and every
package the roles install, so an apply fetches nothing) and cached under
``/var/cache/contactpoint-test/rootfs-<hash of the package list>``. Each boot runs on a fresh
overlay of it, with ``systemd-nspawn -b`` on a private veth pair (10.213.7.0/30): the host end
is 10.213.7.1, the container 10.213.7.2. Nothing is forwarded or masqueraded, so the container
reaches nothing beyond the host end; no host firewall table is added and ``ip_forward`` is
never touched. A ``deploy`` user with a fresh ed25519 key and passwordless sudo stands in for
what cloud-init does on a real host.

Run by hand (as root): ``python -m tests.deploy.container up`` prints the environment the
inventory at ``deploy/ansible/inventories/test`` reads; ``python -m tests.deploy.container down``
stops the machine and removes the overlay.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

CACHE = Path(os.environ.get("CONTACTPOINT_DEPLOY_CACHE", "/var/cache/contactpoint-test"))
WORK = Path("/var/tmp/contactpoint-deploy")  # noqa: S108 (root-only, a fixed name we clean)
MIRROR = os.environ.get("CONTACTPOINT_DEBIAN_MIRROR", "http://deb.debian.org/debian")
SUITE = "bookworm"
# The image: minbase, what Ansible and SSH need, and every package the roles install.
PACKAGES = (
    "systemd,systemd-sysv,dbus,python3,iproute2,openssh-server,sudo,ca-certificates,python3-apt,"
    "python3-venv,acl,nftables,auditd,unattended-upgrades,systemd-timesyncd,openssl,curl,"
    "postgresql-15,postgresql-15-pgaudit,pgbackrest,nginx-light,redis-server,prometheus,"
    "prometheus-node-exporter,prometheus-postgres-exporter,prometheus-redis-exporter,"
    "prometheus-alertmanager"
)
MACHINE = "cpdeploy"
HOST_ADDRESS = "10.213.7.1"
ADDRESS = "10.213.7.2"
PREFIX = 30
TOOLS = ("debootstrap", "systemd-nspawn", "nft", "ssh", "ssh-keygen")


def missing_tools() -> list[str]:
    """The host tools the container needs that are not installed."""
    return [tool for tool in TOOLS if shutil.which(tool) is None]


def rootfs() -> Path:
    """The cached root filesystem, built with debootstrap the first time (minutes)."""
    key = hashlib.sha256(f"{SUITE}-minbase-{PACKAGES}".encode()).hexdigest()[:12]
    root = CACHE / f"rootfs-{key}"
    if root.is_dir():
        return root
    CACHE.mkdir(parents=True, exist_ok=True)
    with (CACHE / "build.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if root.is_dir():
            return root
        building = CACHE / f"building-{key}"
        shutil.rmtree(building, ignore_errors=True)
        subprocess.run(
            [
                "debootstrap",
                "--variant=minbase",
                f"--include={PACKAGES}",
                SUITE,
                str(building),
                MIRROR,
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            timeout=1800,
        )
        building.rename(root)
    return root


UPGRADE_VERSION = "0.1.0+upgrade1"


@dataclass
class Wheelhouses:
    registry: Path  # the registry-only install: the package without extras and its dependencies
    demo: Path  # the generator's virtualenv: the harness extra as well
    upgrade: Path  # the registry's again, the package rebuilt as UPGRADE_VERSION


def _pip_wheel(builder: Path, house: Path, *targets: str) -> None:
    subprocess.run(
        [str(builder / "bin" / "pip"), "wheel", "-q", "--wheel-dir", str(house), *targets],
        check=True,
        timeout=1200,
    )


def _fresh(path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def wheelhouse(project: Path) -> Wheelhouses:
    """Wheels of the project and its dependencies for the target's interpreter.

    Built with this host's Debian python3 (the same 3.11 as the container's), so environment
    markers such as ``python_full_version`` resolve as they will on the target; pip's cache
    makes a rebuild take seconds for the dependencies. Each wheelhouse is built afresh, so the
    registry's holds exactly what the package without extras needs.
    """
    builder = CACHE / "build-venv"
    if not (builder / "bin" / "pip").exists():
        subprocess.run(["/usr/bin/python3", "-m", "venv", str(builder)], check=True, timeout=300)
    registry = _fresh(CACHE / "wheelhouse")
    _pip_wheel(builder, registry, str(project))
    demo = _fresh(CACHE / "wheelhouse-demo")
    _pip_wheel(builder, demo, f"{project}[harness]")
    # A real release change: the same tree with a bumped local version, built as its own wheel.
    upgrade = _fresh(CACHE / "wheelhouse-upgrade")
    for wheel in registry.glob("*.whl"):
        if not wheel.name.startswith("contactpoint_harness-"):
            shutil.copy2(wheel, upgrade / wheel.name)
    source = _fresh(WORK / "upgrade-source")
    ignore = shutil.ignore_patterns(".venv", "*.egg-info", "build", "__pycache__", ".*cache")
    for name in ["pyproject.toml", "README.md", *PROJECT_PACKAGES]:
        if (project / name).is_dir():
            shutil.copytree(project / name, source / name, ignore=ignore)
        elif (project / name).exists():
            shutil.copy2(project / name, source / name)
    pyproject = source / "pyproject.toml"
    text = pyproject.read_text()
    released = '\nversion = "0.1.0"\n'
    assert released in text, "pyproject.toml's version moved: update UPGRADE_VERSION"
    pyproject.write_text(text.replace(released, f'\nversion = "{UPGRADE_VERSION}"\n', 1))
    _pip_wheel(builder, upgrade, "--no-deps", str(source))
    return Wheelhouses(registry, demo, upgrade)


PROJECT_PACKAGES = [
    "contactpoint",
    "reference_app",
    "synthetic_data",
    "loadtests",
    "security_tests",
    "observability",
]


@dataclass
class Machine:
    name: str
    address: str
    key: Path
    root: Path
    process: subprocess.Popen[bytes]

    def env(self) -> dict[str, str]:
        """What the test inventory reads to reach this machine."""
        return {
            "CONTACTPOINT_DEPLOY_HOST": self.address,
            "CONTACTPOINT_DEPLOY_SSH_KEY": str(self.key),
        }


def _run(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True, timeout=60)


def overlay(lower: Path, where: Path, name: str) -> Path:
    """Mount a fresh overlay of ``lower`` at ``where/<name>-root`` (upper and work beside it)."""
    upper, work, merged = (where / f"{name}-{part}" for part in ("upper", "work", "root"))
    for path in (upper, work, merged):
        path.mkdir()
    _run(
        "mount",
        "-t",
        "overlay",
        "overlay",
        "-o",
        f"lowerdir={lower},upperdir={upper},workdir={work}",
        str(merged),
    )
    return merged


def new_key(path: Path, comment: str) -> None:
    """A fresh passphrase-less ed25519 key pair at ``path`` and ``path.pub``."""
    _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path))


def _prepare(merged: Path, key: Path) -> None:
    """What cloud-init does on a real host: a network address, a sudo user with our key."""
    network = merged / "etc/systemd/network/10-host0.network"
    network.write_text(
        f"[Match]\nName=host0\n\n[Network]\nAddress={ADDRESS}/{PREFIX}\nLinkLocalAddressing=no\n"
    )
    wants = merged / "etc/systemd/system/multi-user.target.wants"
    wants.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        (wants / "systemd-networkd.service").symlink_to(
            "/lib/systemd/system/systemd-networkd.service"
        )
    (merged / "etc/hostname").write_text(f"{MACHINE}\n")
    (merged / "etc/hosts").write_text(
        f"127.0.0.1 localhost\n127.0.1.1 {MACHINE}\n::1 localhost ip6-localhost ip6-loopback\n"
    )
    _run("chroot", str(merged), "useradd", "--create-home", "--shell", "/bin/bash", "deploy")
    ssh_dir = merged / "home/deploy/.ssh"
    ssh_dir.mkdir(mode=0o700)
    (ssh_dir / "authorized_keys").write_text(key.with_suffix(".pub").read_text())
    _run("chroot", str(merged), "chown", "-R", "deploy:deploy", "/home/deploy/.ssh")
    sudoers = merged / "etc/sudoers.d/deploy"
    sudoers.write_text("deploy ALL=(ALL) NOPASSWD: ALL\n")
    sudoers.chmod(0o440)


def _wait_for_ssh(process: subprocess.Popen[bytes], deadline: float) -> None:
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"systemd-nspawn exited with {process.returncode}")
        with socket.socket() as sock:
            sock.settimeout(1)
            if sock.connect_ex((ADDRESS, 22)) == 0:
                return
        time.sleep(0.5)
    raise TimeoutError("the container's SSH did not answer in time")


def _host_end(process: subprocess.Popen[bytes], deadline: float) -> None:
    link = f"ve-{MACHINE}"[:15]
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"systemd-nspawn exited with {process.returncode}")
        if Path(f"/sys/class/net/{link}").exists():
            _run("ip", "addr", "replace", f"{HOST_ADDRESS}/{PREFIX}", "dev", link)
            _run("ip", "link", "set", link, "up")
            return
        time.sleep(0.2)
    raise TimeoutError(f"the veth {link} did not appear")


def _log_path() -> Path:
    return WORK / f"{MACHINE}.console.log"


def boot(timeout: float = 120) -> Machine:
    """Boot a fresh overlay of the cached root filesystem and wait until SSH answers."""
    down()
    lower = rootfs()
    WORK.mkdir(parents=True, exist_ok=True)
    merged = overlay(lower, WORK, MACHINE)
    key = WORK / f"{MACHINE}-key"
    new_key(key, "contactpoint-deploy-test")
    _prepare(merged, key)
    with _log_path().open("wb") as console:
        process = subprocess.Popen(
            [
                "systemd-nspawn",
                "--boot",
                f"--directory={merged}",
                f"--machine={MACHINE}",
                "--register=no",
                "--keep-unit",
                "--network-veth",
                "--console=passive",
            ],
            stdin=subprocess.DEVNULL,
            stdout=console,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    (WORK / f"{MACHINE}.pid").write_text(str(process.pid))
    _RUNNING[:] = [process]
    deadline = time.monotonic() + timeout
    try:
        _host_end(process, deadline)
        _wait_for_ssh(process, deadline)
    except Exception:
        down()
        raise
    return Machine(MACHINE, ADDRESS, key, merged, process)


# The systemd-nspawn this process started (reaped here; one started elsewhere is found by pid).
_RUNNING: list[subprocess.Popen[bytes]] = []


def down() -> None:
    """Stop the machine (a clean poweroff, then a kill after 30 s) and remove its overlay."""
    pid_file = WORK / f"{MACHINE}.pid"
    if _RUNNING:
        process = _RUNNING.pop()
        process.terminate()  # systemd-nspawn turns SIGTERM into a clean shutdown
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)
        pid_file.unlink(missing_ok=True)
    if pid_file.exists():
        pid = int(pid_file.read_text())
        with contextlib.suppress(ProcessLookupError):
            # systemd-nspawn turns SIGTERM into a clean shutdown of the container's systemd.
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                os.kill(pid, 0)
                with contextlib.suppress(ChildProcessError):
                    if os.waitpid(pid, os.WNOHANG)[0] == pid:
                        break
                time.sleep(0.5)
            else:
                os.killpg(pid, signal.SIGKILL)
        pid_file.unlink()
    merged = WORK / f"{MACHINE}-root"
    if merged.exists():
        subprocess.run(
            ["umount", "--lazy", str(merged)], capture_output=True, check=False, timeout=60
        )
    for part in ("upper", "work", "root"):
        shutil.rmtree(WORK / f"{MACHINE}-{part}", ignore_errors=True)
    for suffix in ("-key", "-key.pub"):
        (WORK / f"{MACHINE}{suffix}").unlink(missing_ok=True)


@contextlib.contextmanager
def booted(timeout: float = 120) -> Iterator[Machine]:
    """A booted machine for the length of the block, destroyed after."""
    machine = boot(timeout)
    try:
        yield machine
    finally:
        down()


def main(argv: list[str]) -> int:
    if argv[:1] == ["up"]:
        machine = boot()
        print(json.dumps(machine.env()))
        return 0
    if argv[:1] == ["down"]:
        down()
        return 0
    print("usage: python -m tests.deploy.container up|down", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
