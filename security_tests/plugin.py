"""The pytest front end: `pytest security_tests --target URL --personas FILE`.

Each registered scenario is one test item, in the engine's run order, judged by the same engine
as `contactpoint attack`: a failure fails the test with the finding and its evidence, a skip
skips with the reason, and an error is an error. Failures below ``--fail-on`` are reported as
expected failures (xfail), visible but not failing the run. ``--junitxml`` carries each
scenario's OWASP and ASVS ids and severity as properties; ``--security-json`` writes the same JSON
report as the CLI.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from security_tests import engine, report
from security_tests.target import Target, TargetError

_RESULTS = pytest.StashKey[list[engine.Result]]()
_STARTED = pytest.StashKey[float]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("contactpoint", "ContactPoint security harness")
    group.addoption("--target", metavar="URL", help="Base URL of the registry under test.")
    group.addoption("--personas", metavar="FILE", help="personas.json of the target.")
    group.addoption("--database", metavar="URL", help="Registry database for white-box checks.")
    group.addoption("--source", metavar="DIR", help="Source tree for the static checks.")
    group.addoption(
        "--only", action="append", default=[], metavar="GROUP|ID", help="Run a group or scenario."
    )
    group.addoption(
        "--fail-on",
        default="low",
        choices=[s.label for s in engine.Severity],
        help="Failures below this severity are reported as xfail.",
    )
    group.addoption("--alert-within", type=float, default=30.0, help="Alert deadline, seconds.")
    group.addoption("--security-json", metavar="FILE", help="Write the JSON report here.")


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_RESULTS] = []
    config.stash[_STARTED] = time.perf_counter()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "security_scenario" not in metafunc.fixturenames:
        return
    try:
        chosen = engine.select(metafunc.config.getoption("only"))
    except KeyError as exc:
        raise pytest.UsageError(f"--only {exc.args[0]}: no such group or scenario") from exc
    metafunc.parametrize("security_scenario", chosen, ids=[sc.id for sc in chosen])


@pytest.fixture(scope="session")
def security_target(pytestconfig: pytest.Config) -> Target:
    """The target named by --target and --personas (every scenario skips without them)."""
    url = pytestconfig.getoption("target")
    personas = pytestconfig.getoption("personas")
    if not url or not personas:
        pytest.skip("give --target URL and --personas FILE to run the security scenarios")
    from security_tests.cli import default_source

    source = pytestconfig.getoption("source")
    try:
        return Target.open(
            url,
            Path(personas),
            database_url=pytestconfig.getoption("database"),
            source_dir=Path(source) if source else default_source(),
            alert_within=pytestconfig.getoption("alert_within"),
        )
    except TargetError as exc:
        raise pytest.UsageError(str(exc)) from exc


def judge(
    config: pytest.Config,
    target: Target,
    sc: engine.Scenario,
    record_property: Any,
) -> None:
    """Run one scenario and turn its result into the test's outcome."""
    for name, value in (
        ("title", sc.title),
        ("severity", sc.severity.label),
        ("owasp_api_2023", " ".join(sc.owasp)),
        ("asvs_5_0", " ".join(sc.asvs)),
    ):
        record_property(name, value)
    result = engine.run_one(target, sc)
    config.stash[_RESULTS].append(result)
    if result.status is engine.Status.SKIPPED:
        pytest.skip(result.message)
    if result.status is engine.Status.PASSED:
        return
    evidence = json.dumps(result.evidence, indent=1, default=str)
    threshold = engine.Severity[config.getoption("fail_on").upper()]
    message = f"[{sc.severity.label}] {result.message}\nevidence:\n{evidence[:6000]}"
    if sc.severity < threshold:
        pytest.xfail(f"below --fail-on {threshold.label}: {result.message}")
    if result.status is engine.Status.ERROR:
        raise RuntimeError(message)
    pytest.fail(message, pytrace=False)


def pytest_sessionfinish(session: pytest.Session) -> None:
    config = session.config
    out = config.getoption("security_json", None)
    results = config.stash.get(_RESULTS, [])
    if not out or not results:
        return
    threshold = engine.Severity[config.getoption("fail_on").upper()]
    seconds = time.perf_counter() - config.stash[_STARTED]
    report.write_json(
        Path(out),
        report.document(
            results,
            target=config.getoption("target") or "",
            threshold=threshold,
            seconds=seconds,
        ),
    )
