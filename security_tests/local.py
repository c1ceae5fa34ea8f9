"""A local reference registry to attack: generated once, copied fresh per run, served over HTTP.

`prepare` generates a small synthetic population into a SQLite database with its keys and personas
(the same commands an operator runs); `serve` copies that database so every run starts clean,
starts `contactpoint serve` as a real server process (uvicorn with httptools), optionally as a
weakened development build with controls switched off, and stops it afterwards.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

# A test deployment's password hashing: OWASP's Argon2id minimum (m=19 MiB, t=2, p=1), cheaper
# than production's, the same for the generated personas, the accounts the harness creates and
# the dummy hash of unknown users. Dear enough (tens of ms) that skipping it shows in timing.
FAST_ARGON2 = {
    "CONTACTPOINT_ARGON2_TIME_COST": "2",
    "CONTACTPOINT_ARGON2_MEMORY_KIB": "19456",
    "CONTACTPOINT_ARGON2_PARALLELISM": "1",
}


# The test registry holds a few thousand children (tens per local authority), so its export cap
# is scaled down to match, and its download links live ten seconds so a run can see one expire.
# Loopback (127.0.0.1 only) is named a trusted proxy explicitly, so the harness may vary a
# request's source with X-Forwarded-For; a peer at any other address (127.0.0.2 included) is not
# believed, which transport.forwarded-spoofing checks.
#
# Every request of a run comes from the harness's one address (a full run, 99 scenarios in
# 118 s, once passed the production 1,200 a minute), where a deployment's practitioners come
# from many networks; so the allowance is lifted, as docs/assure.md asks of a remote
# target. No scenario relies on it; the registry's own tests show it holding
# (tests/reference_app/limits). A scenario failing while the target throttles the harness's
# address is reported as an error, not a finding (``engine.run_one``).
SMALL_REGISTRY = {
    "CONTACTPOINT_LIMIT_SOURCE_PER_MINUTE": "1000000",
    "CONTACTPOINT_TRUSTED_PROXIES": '["127.0.0.1/32"]',
    "CONTACTPOINT_EXPORT_MAX_ROWS": "50",
    "CONTACTPOINT_EXPORT_LINK_TTL_SECONDS": "10",
}


@dataclass(frozen=True)
class LocalRegistry:
    url: str
    personas: Path
    database_url: str
    data_dir: Path


def _cli(args: Sequence[str], env: dict[str, str]) -> None:
    subprocess.run(  # noqa: S603 (fixed arguments to this project's CLI)
        [sys.executable, "-m", "contactpoint.cli", *args],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _base_env(data_dir: Path) -> dict[str, str]:
    return {
        **os.environ,
        **FAST_ARGON2,
        "CONTACTPOINT_ENVIRONMENT": "development",
        "CONTACTPOINT_KEYS_FILE": str(data_dir / "keys.json"),
        "CONTACTPOINT_DATABASE_URL": f"sqlite:///{data_dir / 'registry.db'}",
    }


def prepare(data_dir: Path, *, children: int = 3000, personas_per_role: int = 2) -> Path:
    """Generate keys, schema and a population into ``data_dir``, or bring an existing one up to
    this version's schema."""
    data_dir = data_dir.resolve()
    if (data_dir / "personas.json").exists():
        # A template made by an older version gets this version's schema, once, before copies.
        env = _base_env(data_dir)
        _cli(["db", "upgrade", "--database", env["CONTACTPOINT_DATABASE_URL"]], env)
        return data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    env = _base_env(data_dir)
    database = env["CONTACTPOINT_DATABASE_URL"]
    _cli(["keys", "generate", "--out", str(data_dir / "keys.json")], env)
    _cli(["db", "upgrade", "--database", database], env)
    _cli(
        [
            "generate",
            "--children",
            str(children),
            "--database",
            database,
            "--data-dir",
            str(data_dir),
            "--personas-per-role",
            str(personas_per_role),
            "--workers",
            "1",
            "--keys",
            str(data_dir / "keys.json"),
        ],
        env,
    )
    return data_dir


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serve(
    template: Path,
    work_dir: Path,
    *,
    disabled: Sequence[str] = (),
    settings: dict[str, str] | None = None,
    workers: int = 1,
    launcher: Sequence[str] = (),
    ready_timeout: float | None = None,
) -> Iterator[LocalRegistry]:
    """Serve a fresh copy of ``template``'s registry, with ``disabled`` controls switched off.

    ``launcher`` goes before the interpreter (a benchmark runs the server under valgrind)."""
    work_dir.mkdir(parents=True, exist_ok=True)
    for name in (
        "registry.db",
        "keys.json",
        "personas.json",
        "children_sample.jsonl",
        "canaries.jsonl",
    ):
        if (template / name).exists():
            shutil.copy2(template / name, work_dir / name)
    env = {**_base_env(work_dir), **SMALL_REGISTRY}
    env["CONTACTPOINT_DISABLED_CONTROLS"] = json.dumps(sorted(disabled))
    env.update(settings or {})
    port = free_port()
    log = (work_dir / "server.log").open("wb")
    process = subprocess.Popen(  # noqa: S603 (this project's CLI)
        [
            *launcher,
            sys.executable,
            "-m",
            "reference_app.cli",
            "serve",
            "--port",
            str(port),
            "--workers",
            str(workers),
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, process, work_dir / "server.log", ready_timeout)
        yield LocalRegistry(
            url=url,
            personas=work_dir / "personas.json",
            database_url=env["CONTACTPOINT_DATABASE_URL"],
            data_dir=work_dir,
        )
    finally:
        stop(process)
        log.close()


def stop(process: subprocess.Popen[bytes]) -> None:
    """Terminate a server process started here, killing it if it does not stop in 15 s."""
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _wait_ready(
    url: str, process: subprocess.Popen[bytes], log: Path, timeout: float | None = None
) -> None:
    deadline = time.monotonic() + (timeout or 60)
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the registry exited: {log.read_text(errors='replace')[-2000:]}")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"the registry did not become ready at {url}")
