"""Login benchmark: what a password verification costs, and what a login storm does to searches.

One session, one served registry (`contactpoint serve --demo`: SQLite, production Argon2id
parameters, one worker), measured side by side:

1. Baseline: the same Argon2id verification in a plain loop in this process (no HTTP, no
   database): verifications a second per busy core.
2. Logins through the registry: a storm of concurrent login attempts (bounded in count), as
   logins a second and logins per second of the server's CPU (from /proc), with how many were
   told to come back (503 ``login_busy``). The attempts name unknown accounts: each costs one
   verification of the instance's dummy hash, made with the same parameters as real accounts',
   and needs no one-time code (a code is single-use, so a storm of real logins would need as
   many accounts as attempts).
3. Searches by a logged-in practitioner, one after another, without a storm and during it:
   p50 and p95 latency. The lanes (``login_hash_concurrency``) keep the storm off the searches.

    python scripts/bench_login.py --out benchmarks/login.json
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import click
import httpx
import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import VerificationError

from reference_app.config import Settings
from synthetic_data.bench import machine

API = "/api/v1"
CONTACTPOINT = str(Path(sys.executable).with_name("contactpoint"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def baseline(seconds: float) -> dict[str, Any]:
    """Argon2id verifications a second per busy core, in a plain loop."""
    s = Settings()
    hasher = PasswordHasher(
        time_cost=s.argon2_time_cost,
        memory_cost=s.argon2_memory_kib,
        parallelism=s.argon2_parallelism,
    )
    stored = hasher.hash("a-password-for-the-benchmark")
    count, cpu0, wall0 = 0, time.process_time(), time.perf_counter()
    while time.perf_counter() - wall0 < seconds:
        with contextlib.suppress(VerificationError):
            hasher.verify(stored, "a-wrong-password")
        count += 1
    cpu = time.process_time() - cpu0
    return {
        "verifications": count,
        "wall_s": round(time.perf_counter() - wall0, 2),
        "per_core_s": round(count / cpu, 2),
        "ms_cpu_each": round(1000 * cpu / count, 1),
    }


def _search_latencies(
    url: str, headers: dict[str, str], body: dict[str, str], count: int
) -> list[float]:
    out = []
    with httpx.Client(base_url=url, timeout=60) as http:
        for _ in range(count):
            t0 = time.perf_counter()
            answer = http.post(f"{API}/children/search", json=body, headers=headers)
            out.append(1000 * (time.perf_counter() - t0))
            if answer.status_code != 200:
                raise click.ClickException(f"search answered {answer.status_code}: {answer.text}")
    return out


def _summary(latencies: list[float]) -> dict[str, float]:
    cuts = statistics.quantiles(latencies, n=20)
    return {
        "count": len(latencies),
        "p50_ms": round(statistics.median(latencies), 1),
        "p95_ms": round(cuts[18], 1),
        "max_ms": round(max(latencies), 1),
    }


def storm(url: str, clients: int, attempts: int) -> tuple[dict[str, int], float]:
    """``attempts`` unknown-account logins from ``clients`` threads; statuses and wall time."""
    statuses: dict[str, int] = {}
    lock = threading.Lock()
    left = iter(range(attempts))

    def client() -> None:
        with httpx.Client(base_url=url, timeout=120) as http:
            for n in left:  # shared iterator: bounded by attempts in all
                body = {"username": f"bench-nobody-{n}", "password": "wrong", "otp": "000000"}
                answer = http.post(f"{API}/auth/login", json=body)
                code = str(answer.status_code)
                with lock:
                    statuses[code] = statuses.get(code, 0) + 1
                if answer.status_code == 503:
                    time.sleep(float(answer.headers.get("retry-after", "1")))

    threads = [threading.Thread(target=client) for _ in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return statuses, time.perf_counter() - t0


@click.command()
@click.option("--children", default=2000, show_default=True, help="Children in the demo registry.")
@click.option("--searches", default=150, show_default=True, help="Searches in each phase.")
@click.option("--clients", default=8, show_default=True, help="Concurrent login clients.")
@click.option("--attempts", default=120, show_default=True, help="Login attempts in the storm.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None)
def main(children: int, searches: int, clients: int, attempts: int, out: Path | None) -> None:
    """Measure logins a second per core and searches during a login storm."""
    work = Path(tempfile.mkdtemp(prefix="cp-bench-login-"))
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    # Per-user quotas scaled up: one account searches the same child hundreds of times here.
    env = {**os.environ, "CONTACTPOINT_LIMITS_SCALE": "100"}
    command = [CONTACTPOINT, "serve", "--demo", "--data-dir", str(work)]
    command += ["--children", str(children), "--port", str(port)]
    server = subprocess.Popen(  # noqa: S603 (our own CLI)
        command,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(1200):  # bounded: at most 10 minutes to generate and start
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if server.poll() is not None:
                raise click.ClickException("the demo registry exited before it was ready")
            time.sleep(0.5)
        personas = json.loads((work / "personas.json").read_text())
        who = next(p for p in personas if p["role"] == "education_practitioner")
        child = json.loads((work / "children_sample.jsonl").read_text().splitlines()[0])
        otp = pyotp.TOTP(who["totp_secret"]).now()
        login = httpx.post(
            f"{url}{API}/auth/login",
            json={"username": who["username"], "password": who["password"], "otp": otp},
            timeout=60,
        )
        if login.status_code != 200:
            raise click.ClickException(f"login answered {login.status_code}: {login.text}")
        headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
        body = {"family_name": child["family_name"], "date_of_birth": child["date_of_birth"]}
        click.echo("baseline: Argon2id in a plain loop ...", err=True)
        base = baseline(5.0)
        _search_latencies(url, headers, body, 10)  # warm-up
        click.echo("searches without a storm ...", err=True)
        quiet = _search_latencies(url, headers, body, searches)
        click.echo(f"a storm of {attempts} logins from {clients} clients ...", err=True)
        cpu0 = _cpu_seconds(server.pid)
        during: list[float] = []
        searcher = threading.Thread(
            target=lambda: during.extend(_search_latencies(url, headers, body, searches))
        )
        searcher.start()
        statuses, wall = storm(url, clients, attempts)
        searcher.join()
        cpu = _cpu_seconds(server.pid) - cpu0
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)
    verified = sum(n for code, n in statuses.items() if code != "503")
    s = Settings()
    report = {
        "benchmark": "login",
        "machine": machine(),
        "load_average": list(os.getloadavg()),
        "argon2id": {
            "memory_kib": s.argon2_memory_kib,
            "time_cost": s.argon2_time_cost,
            "parallelism": s.argon2_parallelism,
        },
        "lanes": {"login_hash_concurrency": s.login_hash_concurrency, "queue": s.login_queue},
        "baseline_plain_loop": base,
        "storm": {
            "clients": clients,
            "attempts": attempts,
            "statuses": statuses,
            "wall_s": round(wall, 2),
            "verified_per_s": round(verified / wall, 2),
            "server_cpu_s": round(cpu, 2),
            "verified_per_server_core_s": round(verified / cpu, 2) if cpu else None,
        },
        "searches_without_storm": _summary(quiet),
        "searches_during_storm": _summary(during),
    }
    report["ratios"] = {
        "search_p50_during_over_without": round(
            report["searches_during_storm"]["p50_ms"] / report["searches_without_storm"]["p50_ms"],
            2,
        ),
        "logins_per_core_over_plain_loop": round(
            (report["storm"]["verified_per_server_core_s"] or 0) / base["per_core_s"], 2
        ),
    }
    text = json.dumps(report, indent=2)
    if out:
        out.write_text(text + "\n")
    click.echo(text)


if __name__ == "__main__":
    main()
