"""Request cost: CPU and round trips per audited record view and search, beside a bare ceiling.

One run, on one machine, side by side:

(a) the ceiling: a bare FastAPI app under uvicorn[standard] on the same driver (psycopg 3) and
    database, doing one indexed select of a child row and one audit insert per request;
(b) the registry (``contactpoint serve``, one worker, limits in Redis, every control on): the
    audited record view and the search.

Each is measured as CPU milliseconds per request of the app process, of its PostgreSQL backends
and of Redis (utime + stime from /proc/<pid>/stat, before and after a fixed number of requests
sent by a cheap keep-alive client in another process), and as round trips per request: the
PostgreSQL ones counted by a small proxy in between (every simple Query and every Sync of the
extended protocol is one trip), Redis's as the commands it processed (a pipeline or a script is
one trip carrying several). The registry serves a scratch database of generated children
(``contactpoint generate``; 200,000 is plenty, as the hot paths read by index) and accounts from
``contactpoint load-accounts``; its own Redis server runs for the benchmark, so the counts start
from nothing and no other user's commands are counted.

    .venv/bin/python scripts/bench_request_cost.py --out benchmarks/request-cost.json

Settings that differ from production, and why: fast Argon2 (logins happen before the measured
window and are not measured), one client address sends all the traffic so its per-source
allowance is raised, and the background sealer and snooping detector are paced out of the
window (their cost per event is measured by their own benchmark, not here).
"""

from __future__ import annotations

import asyncio
import http.client
import json
import multiprocessing
import os
import random
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import httpx
import psycopg
import pyotp
from benchkit import CONTACTPOINT, scratch  # scripts/ is on the path when a script runs
from fastapi import FastAPI, Request
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from reference_app.kit.db import normalise_url
from security_tests.local import FAST_ARGON2
from synthetic_data.bench import machine

SCRIPTS = Path(__file__).resolve().parent

API = "/api/v1"
TARGET_RATIO = 3.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

# -- the ceiling app ---------------------------------------------------------------------------

CEILING_TABLE = """
CREATE TABLE IF NOT EXISTS ceiling_events (
    id bigserial PRIMARY KEY,
    occurred_at timestamp NOT NULL,
    tag varchar(64) NOT NULL,
    actor_id integer,
    source varchar(64),
    request_id varchar(32),
    child_id bytea,
    details text NOT NULL
)
"""


def ceiling_app() -> Any:
    """The bare ceiling: one indexed select of a child row and one audit insert a request."""
    import datetime as dt

    url = make_url(os.environ["CEILING_DATABASE_URL"]).set(drivername="postgresql")
    size = int(os.environ.get("CEILING_POOL", "4"))
    idle: asyncio.Queue[psycopg.AsyncConnection[Any]] = asyncio.Queue()

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        dsn = url.render_as_string(hide_password=False)
        for _ in range(size):
            idle.put_nowait(await psycopg.AsyncConnection.connect(dsn, autocommit=True))
        yield

    app = FastAPI(lifespan=lifespan)

    @app.get("/children/{child_id}")
    async def view(child_id: str, request: Request) -> dict[str, Any]:
        conn = await idle.get()
        try:
            cur = await conn.execute(
                "SELECT id, local_authority_id, gender, given_name_enc, family_name_enc,"
                " date_of_birth_enc, address_enc FROM children WHERE id = %s",
                (child_id,),
                prepare=True,
            )
            row = await cur.fetchone()
            await conn.execute(
                "INSERT INTO ceiling_events (occurred_at, tag, actor_id, source, request_id,"
                " child_id, details) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                (
                    dt.datetime.now(dt.UTC).replace(tzinfo=None),
                    "child:record:viewed",
                    1,
                    request.client.host if request.client else None,
                    "0" * 16,
                    child_id.encode(),
                    '{"level":"full"}',
                ),
                prepare=True,
            )
        finally:
            idle.put_nowait(conn)
        return {"child_id": row[0] if row else None, "gender": row[2] if row else None}

    return app


# -- round trips to PostgreSQL -----------------------------------------------------------------


def _proxy_main(listen: int, upstream: tuple[str, int], trips: Any, ready: Any) -> None:
    """Forward PostgreSQL connections, counting the client's Query and Sync messages."""

    async def pump_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        buffer = b""
        started = False
        while data := await reader.read(65536):
            writer.write(data)
            buffer += data
            while True:
                if not started:
                    if len(buffer) < 8:
                        break
                    length = struct.unpack("!I", buffer[:4])[0]
                    if len(buffer) < length:
                        break
                    buffer, started = buffer[length:], True
                    continue
                if len(buffer) < 5:
                    break
                kind, length = buffer[:1], struct.unpack("!I", buffer[1:5])[0]
                if len(buffer) < 1 + length:
                    break
                if kind in (b"Q", b"S"):
                    with trips.get_lock():
                        trips.value += 1
                buffer = buffer[1 + length :]
            await writer.drain()
        writer.close()

    async def pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        writer.close()

    async def handle(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        server_r, server_w = await asyncio.open_connection(*upstream)
        await asyncio.gather(
            pump_client(client_r, server_w), pump(server_r, client_w), return_exceptions=True
        )

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", listen)
        ready.set()
        async with server:
            await server.serve_forever()

    asyncio.run(main())


@contextmanager
def trip_counter(database_url: str) -> Iterator[tuple[str, Any]]:
    """A counting proxy in its own process; yields the URL through it and the counter."""
    url = make_url(database_url)
    port = _free_port()
    trips = multiprocessing.Value("q", 0)
    ready = multiprocessing.Event()
    process = multiprocessing.Process(
        target=_proxy_main,
        args=(port, (url.host or "127.0.0.1", url.port or 5432), trips, ready),
        daemon=True,
    )
    process.start()
    ready.wait(10)
    # In clear, so the proxy can read the messages (loopback only).
    proxied = url.set(host="127.0.0.1", port=port, query={"sslmode": "disable"})
    try:
        yield proxied.render_as_string(hide_password=False), trips
    finally:
        process.terminate()
        process.join(5)


# -- the client --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Job:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes | None = None


def _client_main(port: int, jobs: list[Job], concurrency: int, deadline: float, out: Any) -> None:
    """Send ``jobs`` over ``concurrency`` keep-alive connections; put the status counts."""
    statuses: Counter[int] = Counter()
    lock = threading.Lock()
    queue = iter(jobs)

    def worker() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        while time.monotonic() < deadline:
            with lock:
                job = next(queue, None)
            if job is None:
                break
            conn.request(job.method, job.path, body=job.body, headers=job.headers)
            response = conn.getresponse()
            response.read()
            with lock:
                statuses[response.status] += 1
        conn.close()

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    out.put(dict(statuses))


def send(port: int, jobs: list[Job], concurrency: int, limit_seconds: float) -> dict[int, int]:
    """Run the client in another process, bounded in count (the jobs) and time."""
    out: Any = multiprocessing.Queue()
    process = multiprocessing.Process(
        target=_client_main,
        args=(port, jobs, concurrency, time.monotonic() + limit_seconds, out),
    )
    process.start()
    statuses: dict[int, int] = out.get(timeout=limit_seconds + 60)
    process.join(10)
    return statuses


# -- CPU from /proc ----------------------------------------------------------------------------


def cpu_ticks(pid: int) -> int:
    """utime + stime of a process (every thread), in clock ticks; 0 once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    return int(fields[11]) + int(fields[12])


def backends(admin_url: str, database: str) -> list[int]:
    """The PostgreSQL backends serving ``database``."""
    engine = create_engine(normalise_url(admin_url))
    try:
        with engine.connect() as conn:
            return [
                int(pid)
                for (pid,) in conn.execute(
                    text("SELECT pid FROM pg_stat_activity WHERE datname = :d"), {"d": database}
                )
            ]
    finally:
        engine.dispose()


def redis_commands(port: int) -> int:
    import redis

    client = redis.Redis(port=port)
    try:
        return int(client.info("stats")["total_commands_processed"])
    finally:
        client.close()


@dataclass
class Target:
    """A server under measurement and what it touches."""

    name: str
    port: int
    pid: int
    database: str
    redis_port: int | None = None
    redis_pid: int | None = None


def measure(
    target: Target,
    jobs: list[Job],
    *,
    admin_url: str,
    trips: Any,
    concurrency: int,
    limit_seconds: float,
) -> dict[str, Any]:
    """CPU milliseconds and round trips per request while ``jobs`` are served."""
    pg_before = {pid: cpu_ticks(pid) for pid in backends(admin_url, target.database)}
    app_before = cpu_ticks(target.pid)
    redis_before = cpu_ticks(target.redis_pid) if target.redis_pid else 0
    commands_before = redis_commands(target.redis_port) if target.redis_port else 0
    trips_before = trips.value
    started = time.perf_counter()
    statuses = send(target.port, jobs, concurrency, limit_seconds)
    seconds = time.perf_counter() - started
    trips_after = trips.value
    app_after = cpu_ticks(target.pid)
    redis_after = cpu_ticks(target.redis_pid) if target.redis_pid else 0
    commands_after = redis_commands(target.redis_port) if target.redis_port else 0
    pg_after = {pid: cpu_ticks(pid) for pid in backends(admin_url, target.database)}
    served = sum(statuses.values())
    if served < len(jobs) or set(statuses) != {200}:
        raise SystemExit(f"{target.name}: {served} of {len(jobs)} answered, statuses {statuses}")
    ms = 1000 / CLOCK_TICKS / max(1, served)
    pg_ticks = sum(after - pg_before.get(pid, 0) for pid, after in pg_after.items())
    app_ms = (app_after - app_before) * ms
    pg_ms = pg_ticks * ms
    redis_ms = (redis_after - redis_before) * ms
    result: dict[str, Any] = {
        "requests": served,
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "seconds": round(seconds, 2),
        "requests_per_second": round(served / seconds, 1),
        "cpu_ms_per_request": {
            "app": round(app_ms, 2),
            "postgresql": round(pg_ms, 2),
            "redis": round(redis_ms, 2),
            "total": round(app_ms + pg_ms + redis_ms, 2),
        },
        # The proxy sees every connection: the monitor's own reads of pg_stat_activity bypass it.
        "postgresql_round_trips_per_request": round((trips_after - trips_before) / served, 2),
    }
    if target.redis_port:
        result["redis_commands_per_request"] = round(
            (commands_after - commands_before - 1) / served, 2
        )
    return result


# -- where the time goes -----------------------------------------------------------------------


def py_spy() -> str | None:
    """py-spy beside this interpreter (the ``profile`` extra), or on the path."""
    beside = Path(sys.executable).parent / "py-spy"
    if beside.exists():
        return str(beside)
    import shutil

    return shutil.which("py-spy")


def profiled(
    target: Target,
    jobs: list[Job],
    *,
    concurrency: int,
    limit_seconds: float,
    stacks_file: Path | None = None,
) -> Any:
    """Serve ``jobs`` with py-spy sampling the server; the hottest frames, inclusive and own.

    A pass of its own, after the measured ones, so the sampler's cost is in no figure above.
    """
    tool = py_spy()
    if tool is None:
        return "py-spy not installed (pip install -e '.[profile]')"
    with tempfile.TemporaryDirectory() as folder:
        raw = Path(folder) / "stacks.txt"
        sampler = subprocess.Popen(  # noqa: S603
            [
                tool,
                "record",
                "--pid",
                str(target.pid),
                "--rate",
                "500",
                "--format",
                "raw",
                "--nonblocking",
                # Only the thread holding the GIL: Python's own CPU, not the pool's threads
                # waiting on sockets and queues (which would otherwise fill the profile).
                "--gil",
                "--output",
                str(raw),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(1.0)
        send(target.port, jobs, concurrency, limit_seconds)
        sampler.send_signal(signal.SIGINT)
        sampler.wait(30)
        lines = raw.read_text().splitlines() if raw.exists() else []
    if stacks_file is not None and lines:
        # The raw samples too, for a flame graph (e.g. speedscope or flamegraph.pl).
        stacks_file.parent.mkdir(parents=True, exist_ok=True)
        stacks_file.write_text("\n".join(lines) + "\n")
    return summarise_stacks(lines)


def _frame_name(frame: str) -> str:
    """``func (path/to/module.py:12)`` -> ``module.py:func`` (stable across line edits)."""
    name, _, where = frame.partition(" (")
    file = where.split(":", 1)[0].rsplit("/", 1)[-1]
    return f"{file}:{name}"


def summarise_stacks(lines: list[str], top: int = 40) -> dict[str, Any]:
    """Collapsed stacks to the share of busy samples under each frame and in each frame."""
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in lines:
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        frames = [_frame_name(f) for f in stack.split(";") if f and not f.startswith("process ")]
        frames = [f for f in frames if not f.startswith("thread")]
        if not frames:
            continue
        n = int(count)
        total += n
        own[frames[-1]] += n
        for frame in set(frames):
            inclusive[frame] += n

    def shares(counter: Counter[str]) -> dict[str, float]:
        return {k: round(100 * v / total, 1) for k, v in counter.most_common(top)}

    return {"samples": total, "inclusive_percent": shares(inclusive), "own_percent": shares(own)}


# -- set-up ------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _cli(args: list[str], env: dict[str, str]) -> None:
    subprocess.run([CONTACTPOINT, *args], env=env, check=True, stdout=subprocess.DEVNULL)  # noqa: S603


def _wait_ready(port: int, path: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server on port {port} exited ({process.returncode})")
        try:
            if httpx.get(f"http://127.0.0.1:{port}{path}", timeout=2).status_code < 500:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"the server on port {port} did not come up")


@contextmanager
def server(args: list[str], env: dict[str, str], ready_path: str, port: int) -> Iterator[int]:
    log = tempfile.TemporaryFile()  # noqa: SIM115 (closed in the finally below)
    process = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT)  # noqa: S603
    try:
        _wait_ready(port, ready_path, process)
        yield process.pid
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.returncode not in (0, -signal.SIGINT):
            log.seek(0)
            sys.stderr.write(log.read().decode(errors="replace")[-3000:])
        log.close()


def _uptime() -> dict[str, float]:
    one, five, fifteen = os.getloadavg()
    return {"1m": round(one, 2), "5m": round(five, 2), "15m": round(fifteen, 2)}


def _login(port: int, persona: dict[str, Any]) -> str:
    otp = pyotp.TOTP(persona["totp_secret"]).now()
    response = httpx.post(
        f"http://127.0.0.1:{port}{API}/auth/login",
        json={"username": persona["username"], "password": persona["password"], "otp": otp},
        timeout=30,
    )
    response.raise_for_status()
    return str(response.json()["access_token"])


def registry_jobs(
    port: int, personas: list[dict[str, Any]], count: int, seed: int
) -> tuple[list[Job], list[Job]]:
    """Views and searches of each account's own caseload, interleaved across accounts at random
    (so no account's requests look machine-timed, and each stays inside its role's quotas)."""
    rng = random.Random(seed)  # noqa: S311 (a reproducible workload, not a secret)
    crowd = [p for p in personas if p["caseload"] and p["role"] != "national_auditor"]
    tokens = {p["username"]: _login(port, p) for p in crowd}
    views: list[Job] = []
    searches: list[Job] = []
    for i in range(count):
        persona = crowd[i % len(crowd)]
        child = rng.choice(persona["caseload"])
        auth = {"authorization": f"Bearer {tokens[persona['username']]}"}
        views.append(
            Job(
                "GET",
                f"{API}/children/{child['child_id']}",
                {**auth, "x-access-reason": "service_delivery"},
            )
        )
        body = {"family_name": child["family_name"], "date_of_birth": child["date_of_birth"]}
        searches.append(
            Job(
                "POST",
                f"{API}/children/search",
                {**auth, "content-type": "application/json"},
                json.dumps(body).encode(),
            )
        )
    rng.shuffle(views)
    rng.shuffle(searches)
    return views, searches


@click.command()
@click.option(
    "--admin-url",
    default=lambda: os.environ.get(
        "CONTACTPOINT_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
    ),
    show_default="CONTACTPOINT_TEST_POSTGRES_URL or the local server",
    help="A PostgreSQL URL allowed to create and drop the scratch database.",
)
@click.option("--children", default=200_000, show_default=True, type=click.IntRange(1000))
@click.option(
    "--requests", "count", default=1000, show_default=True, type=click.IntRange(50, 20000)
)
@click.option("--warmup", default=100, show_default=True, type=click.IntRange(0, 2000))
@click.option("--concurrency", default=4, show_default=True, type=click.IntRange(1, 64))
@click.option("--seconds", default=300.0, show_default=True, help="Time bound of each phase.")
@click.option(
    "--profile/--no-profile",
    default=False,
    help="After the measured passes, sample the registry with py-spy and report its hot frames.",
)
@click.option(
    "--stacks",
    type=click.Path(file_okay=False, path_type=Path),
    help="With --profile: also write the raw sampled stacks (one file per route) here.",
)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path))
def main(
    admin_url: str,
    children: int,
    count: int,
    warmup: int,
    concurrency: int,
    seconds: float,
    profile: bool,
    stacks: Path | None,
    out: Path | None,
) -> None:
    """Measure the registry's view and search beside the bare ceiling, in one run."""
    load_before = _uptime()
    with scratch(admin_url, "request-cost", ["registry"]) as sc:
        [database_url] = sc.urls
        database = str(make_url(database_url).database)
        env = {**sc.env, **FAST_ARGON2}
        keys = env["CONTACTPOINT_KEYS_FILE"]
        started = time.perf_counter()
        _cli(["db", "upgrade", "--database", database_url], env)
        _cli(
            [
                "generate",
                "--children",
                str(children),
                "--database",
                database_url,
                "--data-dir",
                str(sc.work / "population"),
                "--workers",
                "2",
                "--keys",
                keys,
            ],
            env,
        )
        personas_file = sc.work / "personas.json"
        _cli(
            [
                "load-accounts",
                "--database",
                database_url,
                "--keys",
                keys,
                "--per-role",
                "5",
                "--las",
                "6",
                "--caseload",
                "20",
                "--out",
                str(personas_file),
            ],
            env,
        )
        personas: list[dict[str, Any]] = json.loads(personas_file.read_text())
        engine = create_engine(normalise_url(database_url))
        with engine.begin() as conn:
            conn.execute(text(CEILING_TABLE))
        engine.dispose()
        prepared_seconds = time.perf_counter() - started
        redis_port = _free_port()
        with (
            trip_counter(database_url) as (proxied_url, trips),
            _redis(redis_port) as redis_pid,
        ):
            results = _run(
                admin_url=admin_url,
                database=database,
                proxied_url=proxied_url,
                trips=trips,
                env=env,
                personas=personas,
                redis_port=redis_port,
                redis_pid=redis_pid,
                count=count,
                warmup=warmup,
                concurrency=concurrency,
                seconds=seconds,
                profile=profile,
                stacks=stacks,
            )
    report = _report(results, children, count, concurrency, prepared_seconds, load_before)
    text_out = json.dumps(report, indent=2)
    if out:
        out.write_text(text_out + "\n")
    click.echo(text_out)


@contextmanager
def _redis(port: int) -> Iterator[int]:
    process = subprocess.Popen(  # noqa: S603
        [  # noqa: S607 (the redis-server on the path, as the tests use)
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        stdout=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                redis_commands(port)
                break
            except Exception:  # not up yet
                time.sleep(0.1)
        yield process.pid
    finally:
        process.terminate()
        process.wait(10)


def _run(
    *,
    admin_url: str,
    database: str,
    proxied_url: str,
    trips: Any,
    env: dict[str, str],
    personas: list[dict[str, Any]],
    redis_port: int,
    redis_pid: int,
    count: int,
    warmup: int,
    concurrency: int,
    seconds: float,
    profile: bool,
    stacks: Path | None,
) -> dict[str, Any]:
    results: dict[str, Any] = {}
    common = {"admin_url": admin_url, "trips": trips, "concurrency": concurrency}
    ceiling_port = _free_port()
    ceiling_env = {**env, "CEILING_DATABASE_URL": proxied_url, "CEILING_POOL": str(concurrency)}
    child_ids = [c["child_id"] for p in personas for c in p["caseload"]]
    rng = random.Random(7)  # noqa: S311 (a reproducible workload, not a secret)

    def ceiling_jobs(n: int) -> list[Job]:
        return [Job("GET", f"/children/{rng.choice(child_ids)}", {}) for _ in range(n)]

    with server(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "--app-dir",
            str(SCRIPTS),
            "bench_request_cost:ceiling_app",
            "--port",
            str(ceiling_port),
            "--http",
            "httptools",
            "--loop",
            "uvloop",
            "--no-access-log",
            "--log-level",
            "warning",
        ],
        ceiling_env,
        "/children/X",
        ceiling_port,
    ) as ceiling_pid:
        target = Target("ceiling", ceiling_port, ceiling_pid, database)
        if warmup:
            measure(target, ceiling_jobs(warmup), limit_seconds=seconds, **common)
        results["ceiling"] = measure(target, ceiling_jobs(count), limit_seconds=seconds, **common)
    port = _free_port()
    registry_env = {
        **env,
        "CONTACTPOINT_DATABASE_URL": proxied_url,
        "CONTACTPOINT_LIMITS_STORE": "redis",
        "CONTACTPOINT_LIMITS_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
        "CONTACTPOINT_LIMIT_SOURCE_PER_MINUTE": "1000000",
        "CONTACTPOINT_AUDIT_SEAL_INTERVAL_SECONDS": "3600",
        "CONTACTPOINT_DETECTOR_INTERVAL_SECONDS": "3600",
    }
    with server(
        [CONTACTPOINT, "serve", "--port", str(port), "--workers", "1"],
        registry_env,
        "/readyz",
        port,
    ) as pid:
        target = Target("registry", port, pid, database, redis_port, redis_pid)
        extra = count if profile else 0
        views, searches = registry_jobs(port, personas, warmup + count + extra, seed=11)
        if warmup:
            measure(target, views[:warmup], limit_seconds=seconds, **common)
            measure(target, searches[:warmup], limit_seconds=seconds, **common)
        results["registry_view"] = measure(
            target, views[warmup : warmup + count], limit_seconds=seconds, **common
        )
        results["registry_search"] = measure(
            target, searches[warmup : warmup + count], limit_seconds=seconds, **common
        )
        if profile:
            results["profile"] = {
                name: profiled(
                    target,
                    jobs[warmup + count :],
                    concurrency=concurrency,
                    limit_seconds=seconds,
                    stacks_file=stacks / f"{name}.stacks.txt" if stacks else None,
                )
                for name, jobs in (("view", views), ("search", searches))
            }
    return results


def _report(
    results: dict[str, Any],
    children: int,
    count: int,
    concurrency: int,
    prepared_seconds: float,
    load_before: dict[str, float],
) -> dict[str, Any]:
    ceiling = results["ceiling"]["cpu_ms_per_request"]["total"]
    ratios = {
        name: round(results[name]["cpu_ms_per_request"]["total"] / ceiling, 2)
        for name in ("registry_view", "registry_search")
    }
    app_ratios = {
        name: round(
            results[name]["cpu_ms_per_request"]["app"]
            / results["ceiling"]["cpu_ms_per_request"]["app"],
            2,
        )
        for name in ("registry_view", "registry_search")
    }
    return {
        "benchmark": "request-cost",
        "machine": machine(),
        "load_average_before": load_before,
        "load_average_after": _uptime(),
        "machine_shared": (
            "the machine was shared with other work during this run (see the load averages); "
            "CPU time per request is less sensitive to that than latency, but rerun on a quiet "
            "machine for the figures of record"
        ),
        "children": children,
        "children_note": (
            "generated with `contactpoint generate`; the hot paths read by index, so 200,000 "
            "children is enough to measure their cost"
        ),
        "requests_per_phase": count,
        "client": f"http.client keep-alive, {concurrency} connections, in its own process",
        "registry": (
            "`contactpoint serve --workers 1`, PostgreSQL, limits in Redis, every control on; "
            "fast Argon2 (logins are outside the window), per-source allowance raised (one "
            "client address), sealer and detector paced out of the window"
        ),
        "prepare_seconds": round(prepared_seconds, 1),
        "results": {k: v for k, v in results.items() if k != "profile"},
        "profile": results.get("profile", "not taken (--profile)"),
        "ratio_total_cpu_to_ceiling": ratios,
        "ratio_app_cpu_to_ceiling": app_ratios,
        "target_ratio": TARGET_RATIO,
        "target_met": {name: ratio <= TARGET_RATIO for name, ratio in ratios.items()},
    }


if __name__ == "__main__":
    main()
