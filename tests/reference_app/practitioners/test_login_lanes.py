"""Password hashing in bounded lanes: a login storm slows logins, never views and searches.

Served over real HTTP (uvicorn) so that requests overlap as they do in production. The storm's
logins name unknown accounts, which cost one verification of the instance's dummy hash, made
here with production Argon2id parameters, so each holds its lane for a real while.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import httpx
import pyotp
import uvicorn

from reference_app.access.permissions import Role
from reference_app.app import create_app
from reference_app.context import AppContext, build_context
from reference_app.kit.gate import CredentialGate
from tests.fixtures import database as db_fixtures
from tests.fixtures.world import World

LOGIN = "/api/v1/auth/login"
SEARCH = "/api/v1/children/search"
STORM = 8
LANES = 1
QUEUE = 3


@contextmanager
def served(ctx: AppContext) -> Iterator[str]:
    """Serve the registry on a free loopback port with uvicorn; yield its base URL."""
    server = uvicorn.Server(
        uvicorn.Config(create_app(ctx), host="127.0.0.1", port=0, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(500):  # bounded: at most 5 s for the server to listen
        if server.started:
            break
        time.sleep(0.01)
    assert server.started, "uvicorn did not start"
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def lanes_context(world: World) -> AppContext:
    settings = db_fixtures.test_settings(world.database.app_url).model_copy(
        update={
            "login_hash_concurrency": LANES,
            "login_queue": QUEUE,
            # Production cost for the dummy hash the storm's unknown accounts are checked against.
            "argon2_time_cost": 4,
            "argon2_memory_kib": 65536,
            "argon2_parallelism": 1,
        }
    )
    return build_context(settings, keyring=world.ctx.keyring, clock=world.clock)


def test_a_login_storm_is_bounded_and_searches_go_on(world: World) -> None:
    ctx = lanes_context(world)
    gate = ctx.credential_gate
    assert isinstance(gate, CredentialGate)
    account = world.new_account(Role.EDUCATION_PRACTITIONER)
    child = world.child()
    try:
        with served(ctx) as url, httpx.Client(base_url=url, timeout=60) as http:
            otp = pyotp.TOTP(account.totp_secret).at(world.clock.now())
            token = http.post(
                LOGIN,
                json={"username": account.username, "password": account.password, "otp": otp},
            )
            assert token.status_code == 200, token.text
            headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
            search = {"family_name": child.family_name, "given_name": child.given_name}
            # A first search pays the new instance's one-off costs before the storm.
            assert http.post(SEARCH, json=search, headers=headers).status_code == 200

            start = threading.Barrier(STORM)

            def storm_login(n: int) -> httpx.Response:
                with httpx.Client(base_url=url, timeout=60) as own:
                    start.wait(timeout=30)
                    body = {"username": f"nobody-{n}", "password": "wrong-pass", "otp": "000000"}
                    return own.post(LOGIN, json=body)

            searched_while_hashing = 0
            with ThreadPoolExecutor(STORM) as pool:
                storm = [pool.submit(storm_login, n) for n in range(STORM)]
                for _ in range(2000):  # bounded: until a lane is busy
                    if gate.figures.in_use:
                        break
                    time.sleep(0.005)
                for _ in range(200):  # bounded: searches for as long as the storm lasts
                    if all(f.done() for f in storm):
                        break
                    answer = http.post(SEARCH, json=search, headers=headers)
                    assert answer.status_code == 200, answer.text
                    if gate.figures.in_use:
                        searched_while_hashing += 1
                answers = [f.result() for f in storm]
    finally:
        ctx.engine.dispose()

    statuses = sorted(a.status_code for a in answers)
    assert set(statuses) <= {401, 503}, statuses  # never a 500
    busy = [a for a in answers if a.status_code == 503]
    assert busy, "the queue never filled: no login was told to come back"
    for answer in busy:
        assert answer.json()["error"]["code"] == "login_busy"
        assert 1 <= int(answer.headers["retry-after"]) <= 30
    assert gate.figures.peak_in_use == LANES
    assert gate.figures.peak_waiting <= QUEUE
    assert gate.figures.refused == len(busy)
    # Searches were answered while a password was being verified, not after the storm.
    assert searched_while_hashing > 0


def test_a_refused_login_is_told_to_wait_for_the_work_ahead_of_it() -> None:
    """Retry-After is the queue ahead shared by the lanes, at the smoothed hold time; 1 to 30 s
    (a crowd told "1 s" all at once comes back all at once)."""
    gate = CredentialGate(lanes=2, queue=32, wait_seconds=10)
    assert gate.retry_after() == 1  # nothing ahead
    gate.hold_seconds = 0.5
    gate.figures.in_use, gate.figures.waiting = 2, 6
    assert gate.retry_after() == 2  # 8 operations x 0.5 s over 2 lanes
    gate.hold_seconds = 4.0
    gate.figures.waiting = 32
    assert gate.retry_after() == 30
