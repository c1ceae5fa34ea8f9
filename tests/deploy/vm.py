"""The deploy tests' Debian 12 root filesystem booted as a whole machine under QEMU.

A container shares the host's kernel, so the base role skips what belongs to a kernel: the
sysctls, auditd and its rules. Here the same cached root filesystem (``container.rootfs()``)
gets Debian's kernel and initramfs (``linux-image-amd64``, installed once into a cached copy,
``/var/cache/contactpoint-test/vmroot-<hash>``), is written into a fresh raw ext4 image with
``mkfs.ext4 -d`` and booted with ``qemu-system-x86_64 -accel tcg`` (software emulation: no
KVM is needed). The guest's only network is QEMU's user-mode stack with ``restrict=on``: the
guest reaches nothing beyond it, and only its SSH port is forwarded, to a free port on the
host's loopback.

Run by hand (as root): ``python -m tests.deploy.vm up`` prints the port and key;
``python -m tests.deploy.vm down`` stops it and removes the image.
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

from tests.deploy import container

KERNEL_PACKAGES = "linux-image-amd64"
WORK = Path("/var/tmp/contactpoint-vm")  # noqa: S108 (root-only, a fixed name we clean)
NAME = "cpvm"
MEMORY_MB = 3072
TOOLS = ("qemu-system-x86_64", "mkfs.ext4", "debootstrap", "ssh", "ssh-keygen", "chroot")


def missing_tools() -> list[str]:
    """The host tools the VM stage needs that are not installed."""
    return [tool for tool in TOOLS if shutil.which(tool) is None]


def vmroot() -> Path:
    """A cached copy of the container's root filesystem with a kernel and initramfs in /boot."""
    base = container.rootfs()
    key = hashlib.sha256(f"{base.name}-{KERNEL_PACKAGES}".encode()).hexdigest()[:12]
    root = container.CACHE / f"vmroot-{key}"
    if root.is_dir():
        return root
    with (container.CACHE / "build.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if root.is_dir():
            return root
        building = container.CACHE / f"building-vm-{key}"
        shutil.rmtree(building, ignore_errors=True)
        subprocess.run(["cp", "-a", str(base), str(building)], check=True, timeout=900)
        mounts = [building / "proc", building / "sys", building / "dev"]
        try:
            subprocess.run(["mount", "-t", "proc", "proc", str(mounts[0])], check=True, timeout=60)
            subprocess.run(["mount", "-t", "sysfs", "sys", str(mounts[1])], check=True, timeout=60)
            subprocess.run(["mount", "--bind", "/dev", str(mounts[2])], check=True, timeout=60)
            env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
            for argv in (
                ["apt-get", "update"],
                ["apt-get", "install", "-y", "--no-install-recommends", KERNEL_PACKAGES],
                ["apt-get", "clean"],
            ):
                subprocess.run(
                    ["chroot", str(building), *argv],
                    check=True,
                    env=env,
                    stdout=subprocess.DEVNULL,
                    timeout=1800,
                )
        finally:
            for mount in reversed(mounts):
                subprocess.run(["umount", str(mount)], check=False, timeout=60)
        building.rename(root)
    return root


def _boot_files(root: Path) -> tuple[Path, Path]:
    kernels = sorted((root / "boot").glob("vmlinuz-*"))
    initrds = sorted((root / "boot").glob("initrd.img-*"))
    if not kernels or not initrds:
        raise RuntimeError(f"no kernel or initramfs under {root / 'boot'}")
    return kernels[-1], initrds[-1]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _image(root: Path, key: Path) -> Path:
    """A raw ext4 image of an overlay of the cached root, with the guest's network and user."""
    merged = container.overlay(root, WORK, NAME)
    try:
        container._prepare(merged, key)
        (merged / "etc/systemd/network/20-qemu.network").write_text(
            "[Match]\nName=en*\n\n[Network]\nDHCP=ipv4\nLinkLocalAddressing=no\n"
        )
        (merged / "etc/fstab").write_text("/dev/vda / ext4 rw,errors=remount-ro 0 1\n")
        size_mb = int(
            subprocess.run(
                ["du", "-sxm", str(merged)], check=True, capture_output=True, text=True, timeout=300
            ).stdout.split()[0]
        )
        image = WORK / f"{NAME}.img"
        with image.open("wb") as handle:
            handle.truncate((size_mb + 1024) * 1024 * 1024)  # sparse, a GiB free for the apply
        subprocess.run(
            ["mkfs.ext4", "-q", "-F", "-L", "root", "-d", str(merged), str(image)],
            check=True,
            capture_output=True,
            timeout=900,
        )
    finally:
        subprocess.run(["umount", str(merged)], capture_output=True, check=False, timeout=60)
        for part in ("upper", "work", "root"):
            shutil.rmtree(WORK / f"{NAME}-{part}", ignore_errors=True)
    return image


@dataclass
class VM:
    port: int
    key: Path
    process: subprocess.Popen[bytes]
    boot_seconds: float

    def env(self) -> dict[str, str]:
        return {
            "CONTACTPOINT_VM_SSH_PORT": str(self.port),
            "CONTACTPOINT_VM_SSH_KEY": str(self.key),
        }

    def ssh(self, command: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """Run a command in the guest as root (through the deploy user's sudo)."""
        return subprocess.run(
            [
                "ssh",
                *ssh_options(self.key, self.port),
                "deploy@127.0.0.1",
                f"sudo -n sh -c {json.dumps(command)}",
            ],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


def ssh_options(key: Path, port: int) -> list[str]:
    return [
        "-i",
        str(key),
        "-p",
        str(port),
        "-o",
        "UserKnownHostsFile=/dev/null",
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "BatchMode=yes",
        "-o",
        "ConnectTimeout=10",
        "-o",
        "LogLevel=ERROR",
    ]


def _wait_for_ssh(process: subprocess.Popen[bytes], port: int, deadline: float) -> None:
    """Wait for the guest's sshd banner (QEMU's forward accepts before the guest listens)."""
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"qemu exited with {process.returncode}; see {_log_path()}")
        with socket.socket() as sock, contextlib.suppress(OSError):
            sock.settimeout(5)
            sock.connect(("127.0.0.1", port))
            if sock.recv(64).startswith(b"SSH-"):
                return
        time.sleep(2)
    raise TimeoutError(f"the guest's SSH did not answer in time; see {_log_path()}")


def _log_path() -> Path:
    return WORK / f"{NAME}.console.log"


def boot(timeout: float = 900) -> VM:
    """Build a fresh image of the cached root and boot it; return once its SSH answers."""
    down()
    root = vmroot()
    kernel, initrd = _boot_files(root)
    WORK.mkdir(parents=True, exist_ok=True)
    key = WORK / f"{NAME}-key"
    container.new_key(key, "contactpoint-vm-test")
    try:
        image = _image(root, key)
        port = _free_port()
        started = time.monotonic()
        with _log_path().open("wb") as console:
            process = subprocess.Popen(
                [
                    "qemu-system-x86_64",
                    "-accel",
                    "tcg",
                    "-cpu",
                    "max",
                    "-m",
                    str(MEMORY_MB),
                    "-smp",
                    "2",
                    "-kernel",
                    str(kernel),
                    "-initrd",
                    str(initrd),
                    "-append",
                    "root=/dev/vda rw console=ttyS0 audit=1",
                    "-drive",
                    f"file={image},format=raw,if=virtio",
                    "-nic",
                    f"user,restrict=on,model=virtio-net-pci,hostfwd=tcp:127.0.0.1:{port}-:22",
                    "-nographic",
                    "-no-reboot",
                ],
                stdin=subprocess.DEVNULL,
                stdout=console,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        (WORK / f"{NAME}.pid").write_text(str(process.pid))
        _wait_for_ssh(process, port, started + timeout)
    except Exception:
        down()
        raise
    return VM(port, key, process, time.monotonic() - started)


def down() -> None:
    """Stop QEMU (started here or found by its pid file) and remove the image and key."""
    pid_file = WORK / f"{NAME}.pid"
    if pid_file.exists():
        pid = int(pid_file.read_text())
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)  # QEMU exits on SIGTERM; the image is thrown away
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                with contextlib.suppress(ChildProcessError):
                    if os.waitpid(pid, os.WNOHANG)[0] == pid:
                        break
                os.kill(pid, 0)
                time.sleep(0.5)
            else:
                os.killpg(pid, signal.SIGKILL)
        pid_file.unlink()
    merged = WORK / f"{NAME}-root"
    if merged.exists():
        subprocess.run(
            ["umount", "--lazy", str(merged)], capture_output=True, check=False, timeout=60
        )
    for part in ("upper", "work", "root"):
        shutil.rmtree(WORK / f"{NAME}-{part}", ignore_errors=True)
    for suffix in (".img", "-key", "-key.pub"):
        (WORK / f"{NAME}{suffix}").unlink(missing_ok=True)


@contextlib.contextmanager
def booted(timeout: float = 900) -> Iterator[VM]:
    """A booted VM for the length of the block, destroyed after."""
    machine = boot(timeout)
    try:
        yield machine
    finally:
        down()
        with contextlib.suppress(subprocess.TimeoutExpired):
            machine.process.wait(timeout=30)


def main(argv: list[str]) -> int:
    if argv[:1] == ["up"]:
        machine = boot()
        print(json.dumps({**machine.env(), "boot_seconds": round(machine.boot_seconds)}))
        return 0
    if argv[:1] == ["down"]:
        down()
        return 0
    print("usage: python -m tests.deploy.vm up|down", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
