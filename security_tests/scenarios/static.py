"""Static analysis and fuzzing: bandit over the registry's source, schemathesis over its API.

bandit scans the deployable registry (the ``--source`` tree, by default the installed
``reference_app``): the generator, the harness and the load tests never run in a deployment, and
ruff's security rules already lint them. A finding of medium severity or above fails unless it is
in the reviewed baseline, ``security_tests/bandit-baseline.json``, written from the repository
root by::

    bandit -r reference_app -f json -o security_tests/bandit-baseline.json

and every baselined finding needs its reason in ``security_tests/bandit-reviewed.toml``. Findings
are matched by test, file (as bandit names it from the scanned tree's parent) and the flagged
line's text, so moving code does not break the match but changing the flagged line does.
Inline ``# nosec`` markers are ignored: a finding is accepted only by review.

schemathesis tests every operation of the target's OpenAPI document with all of its checks (no
server error, every answer's status, headers and body as documented, invalid data refused and
valid data accepted, required headers and authentication enforced, undocumented methods 405
with a full Allow) in all of its phases: the document's examples, coverage of each parameter's
bounds, fuzzing, and stateful sequences that feed one answer's ids into the next request.
Every route is included, each with the credentials of the role it is for: the account routes
as a throwaway system administrator, the rest as a throwaway data manager; the routes that end
or change a session (logout, password, TOTP) get a session of their own. Account changes are
pinned to a throwaway account and alert actions that suspend or reinstate to an alert about
one, so fuzzing never suspends a persona the rest of the run needs. On a registry that trusts
the harness as a proxy, its requests come from a source address of their own (TEST-NET-2), so
the logins it fuzzes lock out no one else; elsewhere its rate is capped so the rest of the run
keeps its share of the source's per-minute allowance. Refusals it provokes (429s, harvesting
blocks) are documented answers, not failures.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import secrets
import subprocess
import sys
import tempfile
import tomllib
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from security_tests.context import DATA_MANAGER, SYSADMIN, Caller, Context
from security_tests.engine import Severity, Skip, expect, scenario
from security_tests.target import API

HERE = Path(__file__).resolve().parent.parent
BANDIT_BASELINE = HERE / "bandit-baseline.json"
BANDIT_REVIEWED = HERE / "bandit-reviewed.toml"
FAILING_SEVERITIES = ("MEDIUM", "HIGH")
BANDIT_TIMEOUT = 300

# About 360 generated requests a phase, spread over the documented operations, with at most
# 10 examples each: a few minutes against the reference registry at the capped rate, bounded
# again by FUZZ_MAX_TIME. The cap keeps fuzzing to a third of the source's 1,200 requests a
# minute should they all fall in one minute; a larger API gets fewer examples per operation.
FUZZ_BUDGET = 360
FUZZ_EXAMPLES = (2, 10)
FUZZ_RATE = "400/m"
FUZZ_MAX_TIME = 240
METHODS = frozenset({"get", "put", "post", "delete", "options", "head", "patch", "trace"})
FUZZ_TIMEOUT = 420
FUZZ_CHECKS = "all"
FUZZ_PHASES = "examples,coverage,fuzzing,stateful"
# Valid data a document cannot tell from invalid: an identifier's check character, a date
# against today or the child's birth, an export's row count (422), or a rule of state (409).
ACCEPTED_REFUSALS = ["2xx", "401", "403", "404", "409", "422", "429"]
# A source address of its own (RFC 5737 TEST-NET-2) where the target trusts the harness's
# X-Forwarded-For; ignored by a target that does not.
FUZZ_SOURCE = "198.51.100.7"
PRACTITIONER = "health_practitioner"


# -- bandit --------------------------------------------------------------------------------------

Key = tuple[str, str, str]


@dataclass(frozen=True)
class BanditFinding:
    test_id: str
    severity: str
    file: str
    line: int
    text: str
    code: str

    @property
    def key(self) -> Key:
        return (self.test_id, self.file, self.code)

    def __str__(self) -> str:
        return f"{self.test_id} {self.severity.lower()} {self.file}:{self.line} {self.text}"


def flagged_line(result: dict[str, Any]) -> str:
    """The text of the line bandit flagged, from the numbered excerpt in its report."""
    wanted = int(result["line_number"])
    for row in str(result.get("code", "")).splitlines():
        number, _, text = row.strip().partition(" ")
        if number.isdigit() and int(number) == wanted:
            return text.strip()
    return ""


def findings(report: dict[str, Any]) -> list[BanditFinding]:
    """The findings of medium severity or above in a bandit JSON report."""
    return [
        BanditFinding(
            test_id=str(r["test_id"]),
            severity=str(r["issue_severity"]),
            file=Path(str(r["filename"])).as_posix().removeprefix("./"),
            line=int(r["line_number"]),
            text=str(r["issue_text"]),
            code=flagged_line(r),
        )
        for r in report.get("results", [])
        if r.get("issue_severity") in FAILING_SEVERITIES
    ]


def reviewed_reasons(text: str) -> dict[tuple[str, str], str]:
    """The reviewed list: a reason for each (test id, file), from its TOML text."""
    reasons: dict[tuple[str, str], str] = {}
    for entry in tomllib.loads(text).get("finding", []):
        key = (str(entry.get("test_id", "")), str(entry.get("file", "")))
        reasons[key] = str(entry.get("reason", "")).strip()
    return reasons


def unreviewed(baseline: list[BanditFinding], reasons: dict[tuple[str, str], str]) -> list[str]:
    """Baselined findings that nobody has given a reason for."""
    return [str(f) for f in baseline if not reasons.get((f.test_id, f.file))]


def new_findings(current: list[BanditFinding], baseline: list[BanditFinding]) -> list[str]:
    """Current findings beyond those the baseline accepts (counted: a second copy is new)."""
    extra = Counter(f.key for f in current) - Counter(f.key for f in baseline)
    out = []
    for finding in current:
        if extra[finding.key] > 0:
            extra[finding.key] -= 1
            out.append(str(finding))
    return out


def require_tool(module: str) -> None:
    """Skip, naming the extra to install, when a scanning tool is not installed."""
    if importlib.util.find_spec(module) is None:
        raise Skip(f"{module} is not installed: pip install 'contactpoint-harness[security]'")


def run_bandit(source: Path) -> dict[str, Any]:
    """Scan ``source`` with bandit (every severity, ``# nosec`` ignored); return its report."""
    process = subprocess.run(  # noqa: S603 (this interpreter's bandit, fixed arguments)
        [
            sys.executable,
            "-m",
            "bandit",
            "--recursive",
            source.name,
            "--format",
            "json",
            "--quiet",
            "--ignore-nosec",
        ],
        cwd=source.parent,
        capture_output=True,
        text=True,
        timeout=BANDIT_TIMEOUT,
        check=False,
    )
    # bandit exits 1 when it finds anything at all; only an unreadable report is an error.
    try:
        report: dict[str, Any] = json.loads(process.stdout)
    except ValueError as exc:
        raise RuntimeError(
            f"bandit gave no report (exit {process.returncode}): {process.stderr[-800:]}"
        ) from exc
    return report


@scenario(
    "static.bandit",
    owasp=["API8:2023"],
    asvs=["1.2.4", "1.2.5", "11.5.1", "13.3.1"],
    severity=Severity.MEDIUM,
    needs=["source"],
    gap="a property of the source code; no runtime switch changes it",
    order=80,
)
def bandit(ctx: Context) -> None:
    """The registry's code has no bandit finding of medium severity or above outside review."""
    source = ctx.target.source_dir
    if source is None:
        raise Skip(ctx.target.missing_reason("source"))
    require_tool("bandit")
    report = run_bandit(source)
    totals = report.get("metrics", {}).get("_totals", {})
    counts = {s.lower(): int(totals.get(f"SEVERITY.{s}", 0)) for s in ("LOW", "MEDIUM", "HIGH")}
    ctx.note(
        f"bandit over {source.name}/ ({int(totals.get('loc', 0)):,} lines): "
        + ", ".join(f"{n} {s}" for s, n in counts.items())
        + f"; {int(totals.get('nosec', 0))} # nosec markers (ignored)"
    )
    expect(not report.get("errors"), f"bandit could not scan: {report.get('errors')}")
    current = findings(report)
    baseline = findings(json.loads(BANDIT_BASELINE.read_text(encoding="utf-8")))
    reasons = reviewed_reasons(BANDIT_REVIEWED.read_text(encoding="utf-8"))
    missing = unreviewed(baseline, reasons)
    expect(
        not missing,
        f"baselined findings with no reason in {BANDIT_REVIEWED.name}: " + "; ".join(missing),
    )
    stale = new_findings(baseline, current)
    if stale:
        ctx.note("baselined findings no longer reported: " + "; ".join(stale))
    fresh = new_findings(current, baseline)
    ctx.note(f"{len(current) - len(fresh)} reviewed finding(s) accepted from the baseline")
    expect(not fresh, "bandit findings outside the reviewed baseline: " + "; ".join(fresh))


# -- schemathesis --------------------------------------------------------------------------------


@dataclass(frozen=True)
class FuzzCase:
    operation: str
    kind: str  # "failure" or "error"
    code: str
    detail: str

    def __str__(self) -> str:
        return f"{self.operation}: {self.detail or self.code}"


def junit_cases(xml_text: str) -> tuple[int, list[FuzzCase]]:
    """The number of operations tested and the failed or errored ones, from a JUnit report."""
    root = ET.fromstring(xml_text)  # noqa: S314 (schemathesis's own report, in our temp dir)
    tested = 0
    bad = []
    for case in root.iter("testcase"):
        tested += 1
        for kind in ("failure", "error"):
            for element in case.findall(kind):
                text = element.text or ""
                titles = [ln.strip("- ").strip() for ln in text.splitlines() if ln.startswith("- ")]
                curl = next((ln.strip() for ln in text.splitlines() if "curl " in ln), "")
                detail = "; ".join(titles) + (f" ({curl})" if curl else "")
                bad.append(
                    FuzzCase(
                        operation=case.get("name", "?"),
                        kind=kind,
                        code=element.get("message", kind),
                        detail=detail or text.strip()[:300],
                    )
                )
    return tested, bad


@scenario(
    "static.schemathesis",
    owasp=["API8:2023", "API4:2023", "API9:2023"],
    asvs=["16.5.1", "16.5.3", "2.2.1"],
    severity=Severity.MEDIUM,
    gap="fuzzing finds defects in handling; no runtime switch adds or removes them",
    order=80,
)
def schemathesis(ctx: Context) -> None:
    """Every documented operation, fuzzed with all checks and stateful sequences, never gets a 5xx
    or an answer the document does not allow."""
    require_tool("schemathesis")
    # Throwaway accounts: fuzzing trips harvesting blocks and raises alerts on them. The
    # document itself is served only to a logged-in caller.
    manager = ctx.fresh(DATA_MANAGER)
    spec = manager.get("/openapi.json")
    if spec.status_code != 200:
        raise Skip(f"the target serves no OpenAPI document at {API}/openapi.json")
    paths = spec.json().get("paths", {})
    operations = sum(1 for ops in paths.values() for method in ops if method in METHODS)
    low, high = FUZZ_EXAMPLES
    examples = max(low, min(high, FUZZ_BUDGET // max(1, operations)))
    seed = secrets.randbelow(2**32)
    tokens = fuzz_tokens(ctx, manager)
    with tempfile.TemporaryDirectory(prefix="contactpoint-fuzz-") as tmp:
        work = Path(tmp)
        document = work / "openapi.json"
        document.write_bytes(spec.content)
        # The tokens reach schemathesis through its environment, not the process list.
        config = work / "schemathesis.toml"
        config.write_text(fuzz_config(tokens.pins), encoding="utf-8")
        junit = work / "junit.xml"
        command = [
            sys.executable,
            "-m",
            "schemathesis.cli",
            "--config-file",
            str(config),
            "run",
            str(document),
            "--url",
            ctx.target.url,
            "--checks",
            FUZZ_CHECKS,
            "--phases",
            FUZZ_PHASES,
            "--max-examples",
            str(examples),
            "--max-time",
            str(FUZZ_MAX_TIME),
            "--rate-limit",
            FUZZ_RATE,
            "--workers",
            "1",
            "--request-timeout",
            str(ctx.target.timeout),
            "--seed",
            str(seed),
            "--generation-database",
            "none",
            "--report",
            "junit",
            "--report-junit-path",
            str(junit),
            "--no-color",
        ]
        if not ctx.target.verify_tls:
            command += ["--tls-verify", "false"]
        process = subprocess.run(  # noqa: S603 (this interpreter's schemathesis, our arguments)
            command,
            cwd=work,
            env={**os.environ, **tokens.environment},
            capture_output=True,
            text=True,
            timeout=FUZZ_TIMEOUT,
            check=False,
        )
        if process.returncode not in (0, 1) or not junit.exists():
            raise RuntimeError(
                f"schemathesis did not run (exit {process.returncode}): "
                f"{(process.stderr or process.stdout)[-800:]}"
            )
        tested, bad = junit_cases(junit.read_text(encoding="utf-8"))
    generated = re.search(r"(\d+) generated", process.stdout)
    ctx.note(
        f"schemathesis: {tested} operations, {generated[1] if generated else '?'} requests "
        f"at most {FUZZ_RATE}, {examples} examples each, phases {FUZZ_PHASES}, checks "
        f"{FUZZ_CHECKS}; replay with --seed {seed}"
    )
    for case in bad:
        ctx.note(f"{case.kind}: {case}")
    failures = [str(c) for c in bad if c.kind == "failure"]
    expect(not failures, f"{len(failures)} operation(s) failed: " + "; ".join(failures))
    if bad:
        raise RuntimeError(f"schemathesis could not test: {'; '.join(map(str, bad))}")
    expect(tested > 0, "schemathesis tested no operation")


@dataclass(frozen=True)
class FuzzTokens:
    """The sessions schemathesis uses (by environment variable) and the ids it is pinned to."""

    environment: dict[str, str]
    pins: dict[str, int]


def fuzz_tokens(ctx: Context, manager: Caller) -> FuzzTokens:
    """Throwaway sessions for each kind of route, and a throwaway account (with an alert about
    it) for the routes that change or suspend an account to act on."""
    admin = ctx.fresh(SYSADMIN)
    own = ctx.fresh(DATA_MANAGER, like=manager.account)
    # A practitioner of the manager's LA, claimed to work with a child: the claim's alert, about
    # this account, is the one the suspending and reinstating routes may act on.
    subject = ctx.colleague(PRACTITIONER, of=manager)
    child = ctx.new_child(manager)
    ctx.claim(subject, child.child_id)
    alerts = [
        a
        for a in manager.alerts("involvement_claim")
        if a.get("subject_user_id") == subject.account.id
    ]
    if not alerts or subject.account.id is None:
        raise Skip("no alert about a throwaway account to pin the alert actions to")
    return FuzzTokens(
        environment={
            "CONTACTPOINT_FUZZ_TOKEN": manager.token,
            "CONTACTPOINT_FUZZ_ADMIN_TOKEN": admin.token,
            "CONTACTPOINT_FUZZ_OWN_TOKEN": own.token,
        },
        pins={"practitioner_id": subject.account.id, "alert_id": int(alerts[0]["id"])},
    )


def fuzz_config(pins: dict[str, int]) -> str:
    """schemathesis's configuration: who each route is called as, and the pinned ids."""
    return f"""headers = {{ Authorization = "Bearer ${{CONTACTPOINT_FUZZ_TOKEN}}", \
X-Forwarded-For = "{FUZZ_SOURCE}" }}

[checks.positive_data_acceptance]
expected-statuses = {json.dumps(ACCEPTED_REFUSALS)}

[[operations]]
include-path-regex = "^{API}/users"
headers = {{ Authorization = "Bearer ${{CONTACTPOINT_FUZZ_ADMIN_TOKEN}}", \
X-Forwarded-For = "{FUZZ_SOURCE}" }}
parameters = {{ "path.practitioner_id" = {pins["practitioner_id"]} }}

[[operations]]
include-path-regex = "^{API}/auth/(logout|password|totp)$"
headers = {{ Authorization = "Bearer ${{CONTACTPOINT_FUZZ_OWN_TOKEN}}", \
X-Forwarded-For = "{FUZZ_SOURCE}" }}

[[operations]]
include-path-regex = "/(suspend|reinstate)-subject$"
parameters = {{ "path.alert_id" = {pins["alert_id"]} }}
"""
