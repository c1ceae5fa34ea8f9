"""`contactpoint deploy check`: prove a deployed region before it takes traffic.

Reads the region's Ansible inventory (``ansible`` renders the hosts, their addresses, SSH users
and keys, so the vault password must be at hand as for a playbook run), then runs each check
against the real hosts: over SSH for what only the host can see (units, the database's refusals,
the audit log, the unit's sandbox), and over the network from this machine for what a client
sees (TLS through nginx, a login, a port the firewall must drop).

Exit codes (``reference_app.kit.exits``): 0 every check passed; 1 a check failed; 2 bad usage
(no inventory, no ansible); 4 a host did not answer SSH.

A check is a small registered function with its control and a one-line docstring; it returns a
short detail on success and raises :class:`Failed` otherwise. Nothing personal leaves a host:
checks that look for personal data count matches on the host and report the count only.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
import warnings
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from reference_app.kit.exits import ExitCode, unreachable, usage

SSH_TIMEOUT = 30
# Units each tier runs (Debian's names).
UNITS = {
    "all": ["ssh", "nftables", "prometheus-node-exporter"],
    "app": ["nginx", "redis-server", "prometheus-redis-exporter"],
    "db": ["postgresql@15-main", "prometheus-postgres-exporter"],
    "monitoring": ["prometheus", "prometheus-alertmanager"],
}
EXPOSURE_MAX = 2.0
# The registry runs as instances of a template unit, one per port (contactpoint-registry@8000 ...).
REGISTRY_UNIT = "contactpoint-registry@"
REGISTRY_VENV = "/opt/contactpoint/venv"
REGISTRY_PACKAGE = "contactpoint-harness"
# The harness's libraries (distribution names): a registry host carries none of them.
HARNESS_DISTRIBUTIONS = ["locust", "gevent", "faker", "numpy", "pyarrow", "hdrhistogram", "hdrh"]
DEMO_DIR = "/var/lib/contactpoint/demo"
DRILL_DIR = "/var/lib/contactpoint/drill"
PG_LOG = "/var/log/postgresql/postgresql-15-main.log"
# A port the node exporter listens on, which the firewall opens to the monitoring tier only.
UNLISTED_PORT = 9100
# The base role's sysctl file, and the watched file (with its key) the audit check opens.
SYSCTL_FILE = "/etc/sysctl.d/60-contactpoint.conf"
AUDIT_PROBE = ("/etc/ssh/sshd_config", "sshd-config")
AUDIT_WAIT_S = 30
# The checks of what a host's kernel owns: a container skips them (the host's kernel is not its).
KERNEL_CHECKS = frozenset({"kernel_sysctls_live", "audit_watch_recorded"})


class Failed(Exception):
    """A check ran and found the deployment wanting."""


@dataclass
class Host:
    name: str
    address: str
    user: str
    key: str
    groups: list[str]
    https_port: int = 443
    ssh_args: list[str] = field(default_factory=list)

    def ssh(
        self, command: str, *, sudo: bool = True, stdin: str | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        """Run ``command`` on the host (as root with sudo) and return the result."""
        argv = ["ssh", "-o", "BatchMode=yes", "-o", f"ConnectTimeout={SSH_TIMEOUT}"]
        argv += ["-o", "LogLevel=ERROR", *self.ssh_args]
        if self.key:
            argv += ["-i", os.path.expanduser(self.key)]
        remote = f"sudo -n sh -c {shlex.quote(command)}" if sudo else command
        argv += [f"{self.user}@{self.address}" if self.user else self.address, remote]
        return subprocess.run(  # noqa: S603 (argv built here; the command is quoted)
            argv, input=stdin, capture_output=True, text=True, timeout=timeout, check=False
        )

    def out(self, command: str, **kwargs: Any) -> str:
        result = self.ssh(command, **kwargs)
        if result.returncode == 255:
            raise unreachable(f"{self.name}: SSH failed: {result.stderr.strip()[:200]}")
        return result.stdout


@dataclass
class Region:
    hosts: list[Host]

    def group(self, name: str) -> list[Host]:
        return [h for h in self.hosts if name == "all" or name in h.groups]


@dataclass
class Result:
    name: str
    control: str
    host: str
    outcome: str  # passed | failed | skipped
    detail: str
    seconds: float


Check = Callable[[Region, Host], str]


@dataclass(frozen=True)
class Registered:
    name: str
    control: str
    group: str
    doc: str
    run: Check


CHECKS: list[Registered] = []


def check(name: str, *, control: str, group: str) -> Callable[[Check], Check]:
    """Register a check run once per host of ``group``."""

    def register(fn: Check) -> Check:
        CHECKS.append(Registered(name, control, group, (fn.__doc__ or "").strip(), fn))
        return fn

    return register


class Skipped(Exception):
    """The check does not apply to this region (said why)."""


# --- inventory ---------------------------------------------------------------------------------

_FACTS = (
    "{{ {'address': ansible_host | default(inventory_hostname), 'user': ansible_user | default(''),"
    " 'key': ansible_ssh_private_key_file | default(''), 'groups': group_names,"
    " 'ssh_args': ansible_ssh_common_args | default(''),"
    " 'https_port': nginx_listen | default('443') | string | regex_replace('^.*:', '')}"
    " | to_json }}"
)


def load_region(inventory: Path, limit: str | None) -> Region:
    """The hosts of ``inventory`` as Ansible renders them (vault and lookups included)."""
    ansible = shutil.which("ansible")
    if ansible is None:
        raise usage(
            "ansible is not installed", "pip install 'contactpoint-harness[deploy]' (ansible-core)"
        )
    if not inventory.exists():
        raise usage(f"no inventory at {inventory}")
    argv = [ansible, "all", "-i", str(inventory), "-m", "ansible.builtin.debug", "-a"]
    argv += [f"msg={_FACTS}"]
    if limit:
        argv += ["--limit", limit]
    with tempfile.TemporaryDirectory(prefix="cp-deploy-inventory-") as tree:
        # The tree callback (ansible-core's own) writes each host's answer as a JSON file.
        env = {
            **os.environ,
            "ANSIBLE_LOAD_CALLBACK_PLUGINS": "true",
            "ANSIBLE_CALLBACKS_ENABLED": "ansible.builtin.tree",
            "ANSIBLE_CALLBACK_TREE_DIR": tree,
            "PYTHONWARNINGS": "ignore",
        }
        result = subprocess.run(  # noqa: S603 (ansible from PATH, our own arguments)
            argv, capture_output=True, text=True, env=env, timeout=120, check=False
        )
        answers = {path.name: json.loads(path.read_text()) for path in Path(tree).iterdir()}
    if result.returncode != 0 or not answers:
        raise usage(
            "ansible could not read the inventory: "
            + (result.stderr or result.stdout).strip()[:300],
            "check --inventory, and the vault password (ANSIBLE_VAULT_PASSWORD_FILE)",
        )
    hosts = []
    for name, answer in sorted(answers.items()):
        facts = json.loads(answer["msg"]) if isinstance(answer["msg"], str) else answer["msg"]
        hosts.append(
            Host(
                name=name,
                address=facts["address"],
                user=facts["user"],
                key=facts["key"],
                groups=list(facts["groups"]),
                https_port=int(facts["https_port"] or 443),
                ssh_args=shlex.split(facts["ssh_args"]),
            )
        )
    if not hosts:
        raise usage(f"no hosts in {inventory}" + (f" matching {limit}" if limit else ""))
    return Region(hosts)


# --- checks ------------------------------------------------------------------------------------


def _registry_instances(host: Host) -> list[str]:
    listed = host.out(f"systemctl list-units --all --plain --no-legend '{REGISTRY_UNIT}*.service'")
    return sorted(line.split()[0] for line in listed.splitlines() if line.strip())


@check("services_active", control="availability", group="all")
def services_active(region: Region, host: Host) -> str:
    """Every unit the host's tiers run is active under systemd."""
    units = [u for tier in ["all", *host.groups] for u in UNITS.get(tier, [])]
    if "app" in host.groups:
        instances = _registry_instances(host)
        if not instances:
            raise Failed(f"no {REGISTRY_UNIT}PORT instance loaded")
        units += instances
    states = host.out("systemctl is-active " + " ".join(units)).split()
    down = [f"{u}={s}" for u, s in zip(units, states, strict=False) if s != "active"]
    if down or len(states) != len(units):
        raise Failed("not active: " + ", ".join(down or ["(no answer)"]))
    return f"{len(units)} units active"


def _context(
    ca: str, version: ssl.TLSVersion, highest: ssl.TLSVersion | None = None
) -> ssl.SSLContext:
    context = ssl.create_default_context(cadata=ca)
    context.minimum_version = version
    context.maximum_version = highest or version
    if version is not ssl.TLSVersion.TLSv1_2 and version is not ssl.TLSVersion.TLSv1_3:
        # OpenSSL 3 refuses TLS 1.1 on the client side at its default level: lower it, so the
        # refusal measured is the server's.
        context.set_ciphers("DEFAULT:@SECLEVEL=0")
    return context


def _ca(host: Host) -> str:
    ca = host.out("cat /etc/contactpoint/tls/ca.crt")
    if "BEGIN CERTIFICATE" not in ca:
        raise Failed("no CA certificate at /etc/contactpoint/tls/ca.crt")
    return ca


def _https(
    host: Host,
    ca: str,
    method: str,
    path: str,
    body: dict[str, Any] | None = None,
    token: str | None = None,
) -> tuple[int, dict[str, str], bytes]:
    import http.client

    conn = http.client.HTTPSConnection(
        host.address,
        host.https_port,
        context=_context(ca, ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3),
        timeout=15,
    )
    try:
        payload = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"} if body is not None else {}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        conn.request(method, path, body=payload, headers=headers)
        answer = conn.getresponse()
        return answer.status, {k.lower(): v for k, v in answer.getheaders()}, answer.read()
    finally:
        conn.close()


HEADERS = {
    "strict-transport-security": "max-age=",
    "x-content-type-options": "nosniff",
    "content-security-policy": "default-src 'none'",
    "cache-control": "no-store",
    "referrer-policy": "no-referrer",
}


@check("edge_tls", control="ASVS 12.1.1 TLS 1.2+, security headers", group="app")
def edge_tls(region: Region, host: Host) -> str:
    """nginx answers over TLS 1.2/1.3 with the region's CA, with HSTS and the API's headers."""
    ca = _ca(host)
    status, headers, _ = _https(host, ca, "GET", "/readyz")
    if status != 200:
        raise Failed(f"/readyz through nginx answered {status}")
    missing = [h for h, want in HEADERS.items() if want not in headers.get(h, "")]
    if missing:
        raise Failed("missing or wrong headers: " + ", ".join(missing))
    if re.search(r"\d", headers.get("server", "")):
        raise Failed(f"the Server header gives a version: {headers['server']}")
    status, _, body = _https(host, ca, "GET", "/metrics")
    if status != 404 or b'"not_found"' not in body:
        raise Failed(f"/metrics is reachable through the edge ({status})")
    with (
        socket.create_connection((host.address, host.https_port), timeout=10) as raw,
        _context(ca, ssl.TLSVersion.TLSv1_3).wrap_socket(raw, server_hostname=host.address) as tls,
    ):
        version = tls.version()
    return f"TLS 1.2 and {version} with the region's CA; headers present; /metrics refused"


@check("edge_refuses_tls_1_1", control="ASVS 12.1.1", group="app")
def edge_refuses_old_tls(region: Region, host: Host) -> str:
    """nginx refuses a TLS 1.1 handshake (the server's refusal, not the client's)."""
    ca = _ca(host)
    with warnings.catch_warnings():
        # Offering TLS 1.1 is the point: the deprecation warning is about this very test.
        warnings.simplefilter("ignore", DeprecationWarning)
        context = _context(ca, ssl.TLSVersion.TLSv1_1)
    try:
        with (
            socket.create_connection((host.address, host.https_port), timeout=10) as raw,
            context.wrap_socket(raw, server_hostname=host.address) as tls,
        ):
            raise Failed(f"a {tls.version()} handshake succeeded")
    except ssl.SSLError as exc:
        text = str(exc)
        if "NO_PROTOCOLS_AVAILABLE" in text or "no protocols available" in text:
            raise Failed(
                f"this client could not offer TLS 1.1, nothing was measured: {text}"
            ) from exc
        if not re.search(
            r"PROTOCOL_VERSION|UNSUPPORTED_PROTOCOL|WRONG_VERSION|HANDSHAKE_FAILURE", text
        ):
            raise Failed(f"refused for another reason: {text}") from exc
        return f"refused: {exc.reason or text}"


def _totp(secret: str, at: float) -> str:
    import pyotp

    return str(pyotp.TOTP(secret, interval=30).at(int(at)))


@check("login_through_edge", control="OWASP API2 (login through the edge)", group="app")
def login_through_edge(region: Region, host: Host) -> str:
    """A demo persona logs in through nginx (password and one-time code) and is answered."""
    role, _ = login(host, _ca(host))
    return f"persona with role {role} logged in through nginx"


def login(host: Host, ca: str) -> tuple[str, str]:
    """Log a demo persona in through nginx: its role and an access token."""
    raw = host.out(f"cat {DEMO_DIR}/personas.json 2>/dev/null || true")
    if not raw.strip():
        raise Skipped("no demo personas on this region (contactpoint_registry_demo_enabled off)")
    persona = next(p for p in json.loads(raw) if p["role"] == "la_data_manager")
    deadline = time.monotonic() + 75
    status, body = 0, b""
    while time.monotonic() < deadline:
        code = _totp(persona["totp_secret"], time.time())
        status, _, body = _https(
            host,
            ca,
            "POST",
            "/api/v1/auth/login",
            {"username": persona["username"], "password": persona["password"], "otp": code},
        )
        if status == 200:
            break
        # A one-time code works once: after an earlier run in the same 30 s step, wait for
        # the next step (at most twice).
        time.sleep(31 - time.time() % 30)
    if status != 200:
        raise Failed(f"login through nginx answered {status}: {body[:120]!r}")
    token = json.loads(body).get("access_token")
    if not token:
        raise Failed("the login answer carried no access token")
    return str(persona["role"]), str(token)


@check("postgres_refuses_plaintext", control="ASVS 12.3.1 TLS to the database", group="db")
def postgres_refuses_plaintext(region: Region, host: Host) -> str:
    """PostgreSQL refuses a TCP connection without TLS before any password is asked."""
    result = host.ssh(
        "PGCONNECT_TIMEOUT=5 psql 'host=127.0.0.1 port=5432 dbname=contactpoint "
        "user=contactpoint_app sslmode=disable' -Atc 'select 1' </dev/null",
        sudo=True,
    )
    text = result.stderr
    if result.returncode == 0:
        raise Failed("a connection without TLS was accepted")
    if "no encryption" not in text:
        raise Failed(f"refused, but not for want of TLS: {text.strip()[:200]}")
    return "refused: pg_hba.conf rejects connections with no encryption"


@check("app_role_cannot_delete_audit", control="ASVS 16.4.2 audit rows immutable", group="app")
def app_role_cannot_delete_audit(region: Region, host: Host) -> str:
    """The registry's database role is refused when it deletes (or updates) an audit row."""
    results = {}
    for verb, sql in (
        ("DELETE", "DELETE FROM audit_events WHERE id = (SELECT min(id) FROM audit_events)"),
        ("UPDATE", "UPDATE audit_events SET id = id WHERE id = (SELECT min(id) FROM audit_events)"),
    ):
        result = host.ssh(
            "set -a && . /etc/contactpoint/registry.env && "
            'psql "$CONTACTPOINT_DATABASE_URL" -v ON_ERROR_STOP=1 '
            f"-Atc {shlex.quote(sql)} </dev/null"
        )
        if result.returncode == 0:
            raise Failed(f"the app role could {verb} an audit row")
        if "permission denied for table audit_events" not in result.stderr:
            raise Failed(
                f"{verb} failed, but not for want of privilege: {result.stderr.strip()[:200]}"
            )
        results[verb] = "refused"
    count = host.out(
        "set -a && . /etc/contactpoint/registry.env && "
        'psql "$CONTACTPOINT_DATABASE_URL" -Atc "SELECT count(*) FROM audit_events" </dev/null'
    ).strip()
    return f"DELETE and UPDATE refused (permission denied); {count} audit rows readable"


# Run on the database host: counts pgaudit lines, and how many lines hold any of the given
# strings (personal data of the demo population, the roles' passwords); prints counts only.
_LOG_SCAN = r"""
import json, os, re, sys, glob
needles = set()
for path in glob.glob(sys.argv[2] + "/personas.json"):
    for p in json.load(open(path)):
        needles.update([p["username"], p["password"], p["totp_secret"]])
for path in glob.glob(sys.argv[2] + "/children_sample.jsonl"):
    for line in list(open(path))[:2000]:
        row = json.loads(line)
        for key in ("family_name", "given_name", "postcode", "date_of_birth"):
            if isinstance(row.get(key), str) and len(row[key]) >= 4:
                needles.add(row[key])
for env in glob.glob("/etc/contactpoint/*.env"):
    for line in open(env):
        m = re.search(r"://[^:]+:([^@]+)@", line)
        if m:
            needles.add(m.group(1))
audit = hits = 0
for line in open(sys.argv[1], errors="replace"):
    if "AUDIT: SESSION" in line:
        audit += 1
    if any(n in line for n in needles):
        hits += 1
print(json.dumps({"audit_lines": audit, "lines_with_personal_data_or_secrets": hits,
                  "needles": len(needles)}))
"""


@check("pgaudit_clean", control="ASVS 16.2.1, 16.2.5 (no personal data in logs)", group="db")
def pgaudit_clean(region: Region, host: Host) -> str:
    """pgaudit logs role and DDL changes, and no log line holds personal data or a password."""
    raw = host.out(f"python3 - {PG_LOG} {DEMO_DIR}", stdin=_LOG_SCAN)
    try:
        found = json.loads(raw)
    except json.JSONDecodeError:
        raise Failed(f"could not scan {PG_LOG}") from None
    if found["audit_lines"] == 0:
        raise Failed("no pgaudit lines in the server log")
    if found["lines_with_personal_data_or_secrets"]:
        raise Failed(
            f"{found['lines_with_personal_data_or_secrets']} log lines hold personal data "
            "or a secret"
        )
    return (
        f"{found['audit_lines']} pgaudit lines; none of {found['needles']} personal values or "
        "secrets in the log"
    )


@check("unit_sandboxed", control="systemd-analyze security exposure <= 2.0", group="app")
def unit_sandboxed(region: Region, host: Host) -> str:
    """Each registry instance scores an exposure of 2.0 or less in `systemd-analyze security`."""
    instances = _registry_instances(host)
    if not instances:
        raise Failed(f"no {REGISTRY_UNIT}PORT instance loaded")
    scores = []
    for unit in instances:
        text = host.out(f"systemd-analyze security {unit} --no-pager")
        found = re.search(r"Overall exposure level for \S+: ([\d.]+)", text)
        if not found:
            raise Failed(f"systemd-analyze gave no exposure level for {unit}")
        exposure = float(found.group(1))
        if exposure > EXPOSURE_MAX:
            raise Failed(f"{unit}: exposure {exposure} > {EXPOSURE_MAX}")
        scores.append(f"{unit} {exposure}")
    return f"exposure {', '.join(scores)} (<= {EXPOSURE_MAX})"


@check("registry_only_install", control="least functionality (registry-only venv)", group="app")
def registry_only_install(region: Region, host: Host) -> str:
    """The registry's virtualenv holds none of the harness's libraries; reports its version."""
    freeze = host.out(f"{REGISTRY_VENV}/bin/python -m pip freeze --all --disable-pip-version-check")
    installed = {
        re.split(r"[=@ ]", line.strip(), maxsplit=1)[0].lower().replace("_", "-")
        for line in freeze.splitlines()
        if line.strip() and not line.startswith("#")
    }
    if REGISTRY_PACKAGE not in installed:
        raise Failed(f"{REGISTRY_PACKAGE} is not installed in {REGISTRY_VENV}")
    found = sorted(installed & set(HARNESS_DISTRIBUTIONS))
    if found:
        raise Failed("harness libraries in the registry's virtualenv: " + ", ".join(found))
    version = re.search(rf"(?im)^{REGISTRY_PACKAGE}==(\S+)$", freeze)
    return (
        f"{len(installed)} distributions, none of {', '.join(HARNESS_DISTRIBUTIONS)}; "
        f"{REGISTRY_PACKAGE} {version.group(1) if version else '(version unknown)'}"
    )


def _connects(address: str, port: int, timeout: float = 3) -> bool:
    try:
        with socket.create_connection((address, port), timeout=timeout):
            return True
    except OSError:
        return False


@check("firewall_drops_unlisted", control="nftables default deny", group="all")
def firewall_drops_unlisted(region: Region, host: Host) -> str:
    """A port the host listens on but does not serve to this machine is dropped by nftables."""
    listening = host.out(f"ss -Hltn 'sport = :{UNLISTED_PORT}'")
    if not listening.strip():
        raise Failed(f"nothing listens on {UNLISTED_PORT}: the probe would prove nothing")
    if _connects(host.address, UNLISTED_PORT):
        raise Failed(f"port {UNLISTED_PORT} answered from here")
    if not _connects(host.address, 22):
        raise Failed("SSH (an allowed port) did not answer either: the probe proves nothing")
    rules = host.out("nft list table inet contactpoint")
    if "policy drop" not in rules:
        raise Failed("the input chain's policy is not drop")
    return f"{UNLISTED_PORT} (listening) dropped; 22 allowed; input policy drop"


def _prometheus(host: Host, path: str) -> dict[str, Any]:
    raw = host.out(f"curl -sf --max-time 10 'http://127.0.0.1:9090{path}'", sudo=False)
    try:
        return dict(json.loads(raw))
    except json.JSONDecodeError:
        raise Failed(f"Prometheus did not answer {path}") from None


@check("prometheus_targets_up", control="monitoring", group="monitoring")
def prometheus_targets_up(region: Region, host: Host) -> str:
    """Prometheus scrapes every target as up, and the alert rules are loaded."""
    deadline = time.monotonic() + 90
    down: list[str] = []
    targets: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        targets = _prometheus(host, "/api/v1/targets?state=active")["data"]["activeTargets"]
        down = [
            f"{t['labels']['job']}@{t['labels']['instance']}"
            for t in targets
            if t["health"] != "up"
        ]
        if targets and not down:
            break
        time.sleep(5)
    if down or not targets:
        raise Failed("targets not up: " + ", ".join(down or ["(none)"]))
    groups = _prometheus(host, "/api/v1/rules")["data"]["groups"]
    rules = sum(len(g["rules"]) for g in groups)
    if rules == 0:
        raise Failed("no alert rules loaded")
    jobs = sorted({t["labels"]["job"] for t in targets})
    return (
        f"{len(targets)} targets up ({', '.join(jobs)}); {len(groups)} rule groups, {rules} rules"
    )


def _container(host: Host) -> str | None:
    """The kind of container the host is (systemd-detect-virt), or None on a machine."""
    kind = host.out("systemd-detect-virt --container || true", sudo=False).strip()
    return None if kind in ("", "none") else kind


def _settings(text: str) -> dict[str, str]:
    """``key = value`` lines (sysctl.d's format and sysctl's output), spacing normalised."""
    found = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")) or "=" not in line:
            continue
        key, value = line.split("=", 1)
        found[key.strip().lstrip("-")] = " ".join(value.split())
    return found


@check("kernel_sysctls_live", control="kernel and network hardening (sysctl)", group="all")
def kernel_sysctls_live(region: Region, host: Host) -> str:
    """Every setting the base role wrote to its sysctl.d file reads back from the kernel."""
    container = _container(host)
    if container:
        raise Skipped(f"a {container} container: the sysctls belong to the host's kernel")
    wanted = _settings(host.out(f"cat {SYSCTL_FILE}"))
    if not wanted:
        raise Failed(f"no settings in {SYSCTL_FILE}")
    live = _settings(host.out("sysctl " + " ".join(shlex.quote(k) for k in sorted(wanted))))
    wrong = [
        f"{k}={live.get(k, '(missing)')}, not {v}" for k, v in wanted.items() if live.get(k) != v
    ]
    if wrong:
        raise Failed(f"{len(wrong)} of {len(wanted)} not live: " + "; ".join(sorted(wrong)[:5]))
    return f"{len(wanted)} settings live"


@check("audit_watch_recorded", control="auditd watches on secrets and configuration", group="all")
def audit_watch_recorded(region: Region, host: Host) -> str:
    """auditd holds the base role's watches, and opening a watched file for writing is recorded."""
    container = _container(host)
    if container:
        raise Skipped(f"a {container} container: the kernel's audit subsystem belongs to the host")
    rules = host.out("auditctl -l")
    keys = sorted(set(re.findall(r"-k (\S+)", rules)))
    path, key = AUDIT_PROBE
    if key not in keys:
        raise Failed(f"no watch keyed {key} loaded (auditctl -l lists {len(keys)} keys)")
    # The shell opens the file itself (a redirection, appending nothing): its pid is the one
    # the record names. ausearch reads the log only with --input-logs when its input is not a
    # terminal, as here; without it, it reads the empty input and finds nothing.
    opened = host.out(f"echo $$; : >> {path}").split()
    if not opened or not opened[0].isdigit():
        raise Failed(f"could not open {path} for writing")
    search = f"ausearch --input-logs -k {key} -p {opened[0]} -i 2>/dev/null"
    found = host.out(
        f"for _ in $(seq {AUDIT_WAIT_S}); do {search} | grep -q 'name={path} ' && echo found "
        "&& break; sleep 1; done",
        timeout=AUDIT_WAIT_S + 30,
    )
    if "found" not in found:
        raise Failed(f"opening {path} for writing was not recorded under {key}")
    return f"{len(keys)} watch keys loaded; opening {path} for writing recorded under {key}"


@check("backups_encrypted", control="encrypted backups", group="db")
def backups_encrypted(region: Region, host: Host) -> str:
    """pgBackRest holds a backup in a repository encrypted with a cipher."""
    raw = host.out("runuser -u postgres -- pgbackrest --stanza=contactpoint --output=json info")
    try:
        stanza = json.loads(raw)[0]
    except (json.JSONDecodeError, IndexError):
        raise Failed("pgbackrest info did not answer") from None
    if not stanza["backup"]:
        raise Failed("no pgBackRest backup")
    ciphers = {repo.get("cipher") for repo in stanza.get("repo", [])}
    if ciphers & {None, "none"}:
        raise Failed(f"a repository is not encrypted: {ciphers}")
    names = ", ".join(sorted(map(str, ciphers)))
    return f"{len(stanza['backup'])} backups in a repository encrypted with {names}"


@check("restore_drill_passed", control="restore drill", group="all")
def restore_drill_passed(region: Region, host: Host) -> str:
    """The last restore drill (restore_drill.yml) restored each backup and it matched."""
    raw = host.out(f"cat {DRILL_DIR}/*.json 2>/dev/null | python3 -c " + shlex.quote(_REPORTS))
    reports = json.loads(raw or "[]")
    if not reports:
        raise Skipped("no restore drill has run here yet (ansible-playbook restore_drill.yml)")
    failed = [r for r in reports if not r.get("passed")]
    if failed:
        raise Failed("; ".join(f"{r.get('kind')}: {r.get('detail', '')}" for r in failed))
    return "; ".join(
        f"{r.get('kind')} ({r.get('finished_at', '?')}): {r.get('detail')}" for r in reports
    )


# Reads the concatenated JSON reports on stdin and prints them as one list.
_REPORTS = (
    "import json,sys; d=json.JSONDecoder(); s=sys.stdin.read().strip(); out=[]\n"
    "while s:\n o,i=d.raw_decode(s); out.append(o); s=s[i:].strip()\n"
    "print(json.dumps(out))"
)


# --- running -----------------------------------------------------------------------------------


def run_checks(region: Region, only: set[str] | None = None) -> list[Result]:
    """Run every registered check (or ``only`` these) on every host of its tier."""
    results = []
    for registered in CHECKS:
        if only and registered.name not in only:
            continue
        for host in region.group(registered.group):
            started = time.monotonic()
            try:
                outcome, detail = "passed", registered.run(region, host)
            except Failed as exc:
                outcome, detail = "failed", str(exc)
            except Skipped as exc:
                outcome, detail = "skipped", str(exc)
            except (OSError, subprocess.TimeoutExpired, KeyError, ValueError) as exc:
                outcome, detail = "failed", f"{type(exc).__name__}: {exc}"
            results.append(
                Result(
                    registered.name,
                    registered.control,
                    host.name,
                    outcome,
                    detail,
                    round(time.monotonic() - started, 3),
                )
            )
    return results


def write_junit(results: list[Result], path: Path) -> None:
    """One testcase per check and host; a failure is a <failure>, a skip a <skipped>."""
    suite = ET.Element(
        "testsuite",
        name="contactpoint-deploy",
        tests=str(len(results)),
        failures=str(sum(r.outcome == "failed" for r in results)),
        errors="0",
        skipped=str(sum(r.outcome == "skipped" for r in results)),
        time=f"{sum(r.seconds for r in results):.3f}",
    )
    for result in results:
        case = ET.SubElement(
            suite,
            "testcase",
            classname=f"deploy.{result.host}",
            name=result.name,
            time=f"{result.seconds:.3f}",
        )
        if result.outcome == "failed":
            ET.SubElement(case, "failure", message=result.detail, type=result.control)
        elif result.outcome == "skipped":
            ET.SubElement(case, "skipped", message=result.detail)
        else:
            ET.SubElement(case, "system-out").text = result.detail
    path.parent.mkdir(parents=True, exist_ok=True)
    ET.indent(suite)
    ET.ElementTree(suite).write(path, encoding="utf-8", xml_declaration=True)


@contextmanager
def multiplexed(region: Region) -> Iterator[None]:
    """Share one SSH connection per host across the checks, closed at the end."""
    with tempfile.TemporaryDirectory(prefix="cp-deploy-ssh-") as tmp:
        extra = ["-o", "ControlMaster=auto", "-o", f"ControlPath={tmp}/%C"]
        extra += ["-o", "ControlPersist=yes"]
        saved = {host.name: host.ssh_args for host in region.hosts}
        for host in region.hosts:
            host.ssh_args = [*host.ssh_args, *extra]
        try:
            yield
        finally:
            for host in region.hosts:
                subprocess.run(  # noqa: S603
                    ["ssh", *host.ssh_args, "-O", "exit", host.address],  # noqa: S607
                    capture_output=True,
                    timeout=10,
                    check=False,
                )
                host.ssh_args = saved[host.name]


@click.group("deploy")
def deploy() -> None:
    """Prove a deployed region (deploy/ansible) before it takes traffic."""


@deploy.command("check")
@click.option(
    "--inventory",
    type=click.Path(path_type=Path),
    required=True,
    help="The region's Ansible inventory (e.g. deploy/ansible/inventories/pilot).",
)
@click.option("--limit", default=None, help="Only these hosts or groups (Ansible's --limit).")
@click.option("--only", multiple=True, help="Only this check (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
@click.option("--junit", type=click.Path(path_type=Path, dir_okay=False), help="Write JUnit XML.")
def deploy_check(
    inventory: Path, limit: str | None, only: tuple[str, ...], as_json: bool, junit: Path | None
) -> None:
    """Run the verify checks against every host of the inventory.

    Exit 0 when every check passed (skips say why they do not apply), 1 when one failed,
    2 for a bad inventory or no ansible, 4 when a host does not answer SSH.
    """
    known = {c.name for c in CHECKS}
    if set(only) - known:
        raise usage(
            f"no such check: {', '.join(sorted(set(only) - known))}", ", ".join(sorted(known))
        )
    region = load_region(inventory, limit)
    with multiplexed(region):
        results = run_checks(region, set(only) or None)
    if junit:
        write_junit(results, junit)
    failed = [r for r in results if r.outcome == "failed"]
    if as_json:
        click.echo(
            json.dumps(
                {
                    "passed": not failed,
                    "exit_code": int(ExitCode.FOUND if failed else ExitCode.PASS),
                    "checks": [r.__dict__ for r in results],
                },
                indent=2,
            )
        )
    else:
        for r in results:
            click.echo(f"{r.outcome:7} {r.name:30} {r.host:12} {r.detail}")
    if failed:
        raise SystemExit(int(ExitCode.FOUND))
