"""The registry is the ground floor: it imports nothing of the generator or the harnesses, and
installs and runs without their libraries.

The default run imports every registry module in a fresh interpreter and looks at what got
loaded; the long stage builds the wheel, installs it without extras into a virtual environment
of its own, and runs the registry's command there: keys, schema, a server answering on
loopback, and the harness's commands refusing in one line naming the extra.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).parents[1]
# What the registry must never load: the other parts, and the libraries only they need.
FORBIDDEN = ("loadtests", "security_tests", "synthetic_data", "contactpoint")
HARNESS_LIBRARIES = ("locust", "gevent", "faker", "numpy", "pyarrow", "hdrh")
# Imported by the harness only, yet installed with the registry (uvicorn[standard] brings it).
UNUSED_LIBRARIES = ("yaml",)
# The observability modules the registry uses (observability/load.py is the load harness's).
OBSERVABILITY = ("setup", "registry", "security", "privacy", "logs", "signals")

# Imports every registry module (the migration scripts run only under Alembic), then prints
# how many it imported and which forbidden top-level packages are loaded.
IMPORT_ALL = f"""
import importlib, json, pkgutil, sys
import reference_app
names = [m.name for m in pkgutil.walk_packages(reference_app.__path__, "reference_app.")
         if not m.name.startswith("reference_app.migrations.")]
names += ["observability." + m for m in {OBSERVABILITY!r}]
for name in names:
    importlib.import_module(name)
forbidden = {(*FORBIDDEN, *HARNESS_LIBRARIES, *UNUSED_LIBRARIES)!r}
loaded = sorted(n for n in sys.modules if n.partition(".")[0] in forbidden)
print(json.dumps({{"modules": len(names), "loaded": loaded}}))
"""


def _import_all(python: str, cwd: Path, env: dict[str, str] | None = None) -> dict[str, object]:
    done = subprocess.run(
        [python, "-c", IMPORT_ALL],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout.splitlines()[-1])
    return result


def test_no_registry_module_imports_the_generator_or_the_harnesses() -> None:
    result = _import_all(sys.executable, ROOT)
    # Every context, kit module and command: a walk that found nothing would prove nothing.
    assert isinstance(result["modules"], int)
    assert result["modules"] > 100
    assert result["loaded"] == []


# --- the long stage: a registry-only install in a virtual environment of its own -------------

PACKAGES = ("contactpoint", "reference_app", "synthetic_data", "loadtests", "security_tests")


def _wheel(tmp_path: Path) -> Path:
    """Build the project's wheel from a copy of its sources (the tree stays clean)."""
    source = tmp_path / "source"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in (*PACKAGES, "observability"):
        shutil.copytree(ROOT / name, source / name, ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    dist = tmp_path / "dist"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(dist),
            str(source),
        ],
        check=True,
        timeout=300,
    )
    (wheel,) = dist.glob("contactpoint_harness-*.whl")
    return wheel


@pytest.fixture(scope="module")
def registry_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A virtual environment holding the wheel and the registry's runtime only (no extras)."""
    tmp_path = tmp_path_factory.mktemp("registry-only")
    wheel = _wheel(tmp_path)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", str(wheel)],
        check=True,
        timeout=900,
    )
    return venv


def _env(work: Path) -> dict[str, str]:
    """The environment without this checkout on the path and without outer settings."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CONTACTPOINT_", "OTEL_")) and k not in ("PYTHONPATH", "VIRTUAL_ENV")
    }
    env.update(
        {
            "CONTACTPOINT_ENVIRONMENT": "development",
            "CONTACTPOINT_KEYS_FILE": str(work / "keys.json"),
            "CONTACTPOINT_DATABASE_URL": f"sqlite:///{work / 'registry.db'}",
            "CONTACTPOINT_ARGON2_TIME_COST": "2",
            "CONTACTPOINT_ARGON2_MEMORY_KIB": "19456",
            "CONTACTPOINT_ARGON2_PARALLELISM": "1",
        }
    )
    return env


def _run(venv: Path, work: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(venv / "bin" / args[0]), *args[1:]],
        cwd=work,
        env=_env(work),
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def served(registry_venv: Path, tmp_path: Path) -> Iterator[str]:
    """The registry-only install's registry: keys, SQLite schema, served on a loopback port."""
    made = _run(
        registry_venv,
        tmp_path,
        "contactpoint-registry",
        "keys",
        "generate",
        "--out",
        str(tmp_path / "keys.json"),
    )
    assert made.returncode == 0, made.stderr
    assert "audit_public_keys" in made.stdout
    upgraded = _run(registry_venv, tmp_path, "contactpoint-registry", "db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    assert "schema at revision" in upgraded.stdout
    port = _free_port()
    log = (tmp_path / "server.log").open("wb")
    server = subprocess.Popen(
        [str(registry_venv / "bin" / "contactpoint-registry"), "serve", "--port", str(port)],
        cwd=tmp_path,
        env=_env(tmp_path),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        for _ in range(600):
            assert server.poll() is None, (tmp_path / "server.log").read_text()
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, (tmp_path / "server.log").read_text()
            time.sleep(0.1)
        yield url
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)
        log.close()


@pytest.mark.long
def test_the_registry_installs_without_the_harness_libraries(
    registry_venv: Path, tmp_path: Path
) -> None:
    python = str(registry_venv / "bin" / "python")
    probe = (
        "import importlib.util, json; print(json.dumps("
        f"{{m: importlib.util.find_spec(m) is not None for m in {HARNESS_LIBRARIES!r}}}))"
    )
    found = subprocess.run(
        [python, "-c", probe],
        cwd=tmp_path,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert json.loads(found.stdout) == dict.fromkeys(HARNESS_LIBRARIES, False)
    result = _import_all(python, tmp_path, _env(tmp_path))
    assert isinstance(result["modules"], int)
    assert result["modules"] > 100
    assert result["loaded"] == []


@pytest.mark.long
def test_the_registry_only_install_serves(served: str) -> None:
    assert httpx.get(f"{served}/readyz", timeout=10).status_code == 200
    login = httpx.post(
        f"{served}/api/v1/auth/login",
        json={"username": "nobody-here", "password": "not the password", "otp": "000000"},
        timeout=30,
    )
    assert login.status_code == 401
    assert login.json()["error"]["code"] == "invalid_credentials"


@pytest.mark.long
@pytest.mark.parametrize(
    "args",
    [
        ("attack", "--reference"),
        ("load", "--reference"),
        ("generate", "--children", "10"),
        ("serve", "--demo"),
    ],
)
def test_harness_commands_name_the_extra_they_need(
    registry_venv: Path, tmp_path: Path, args: tuple[str, ...]
) -> None:
    done = _run(registry_venv, tmp_path, "contactpoint", *args)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    command = "serve --demo" if args[0] == "serve" else args[0]
    assert lines[0] == (
        f"error: `contactpoint {command}` needs the harness extra: "
        "pip install 'contactpoint-harness[harness]'"
    )
    assert not (tmp_path / "demo-data").exists()
