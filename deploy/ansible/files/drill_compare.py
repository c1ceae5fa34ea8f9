#!/usr/bin/python3
"""Compare the restored scratch cluster with the live one; print a JSON verdict.

Run as postgres on the database host. Every table of the live database must exist in the
restored one; the schema revision must match; the audit trail restored must be exactly the
live trail's first rows (same rows, same content, by id), and no other table may hold more
rows restored than live has now (the backup is older than now, never newer).
"""

import json
import subprocess
import sys

LIVE_PORT, DRILL_PORT, DB = sys.argv[1], sys.argv[2], sys.argv[3]
# The audit trail (tables and their keys): restored rows must equal the live first rows.
AUDIT = (("audit_events", "id"), ("audit_log_entries", "seq"))


def q(port, sql):
    out = subprocess.run(
        ["psql", "-X", "-tA", "-v", "ON_ERROR_STOP=1", "-p", port, "-d", DB, "-c", sql],
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip()


def tables(port):
    return set(q(port, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'").split())


live_tables, drill_tables = tables(LIVE_PORT), tables(DRILL_PORT)
problems = []
if live_tables - drill_tables:
    problems.append(
        "tables missing from the restore: " + ", ".join(sorted(live_tables - drill_tables))
    )
revision = q(LIVE_PORT, "SELECT version_num FROM alembic_version")
if q(DRILL_PORT, "SELECT version_num FROM alembic_version") != revision:
    problems.append("schema revision differs")
counts = {}
for table in sorted(live_tables & drill_tables):
    live = int(q(LIVE_PORT, f'SELECT count(*) FROM "{table}"'))
    drill = int(q(DRILL_PORT, f'SELECT count(*) FROM "{table}"'))
    counts[table] = {"live": live, "restored": drill}
audit_rows = 0
for table, key in AUDIT:
    top = q(DRILL_PORT, f"SELECT coalesce(max({key}), 0) FROM {table}")
    digest = (
        f"SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t.{key}), '')) "
        f"FROM {table} t WHERE t.{key} <= {top}"
    )
    if q(LIVE_PORT, digest) != q(DRILL_PORT, digest):
        problems.append(f"the restored {table} differs from the live one's first rows")
    audit_rows += counts.get(table, {}).get("restored", 0)
print(
    json.dumps(
        {
            "passed": not problems,
            "detail": "; ".join(problems)
            or (
                f"{len(counts)} tables restored at revision {revision}; "
                f"{audit_rows} audit rows (events and log entries) identical to live"
            ),
            "tables": counts,
        }
    )
)
