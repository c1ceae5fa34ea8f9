#!/usr/bin/python3
"""Ensure a PostgreSQL login role (and optionally a database) exactly as asked; print "changed"
when anything was altered. Run as the postgres user on the database host.

Passwords travel as SCRAM-SHA-256 verifiers, never in clear text in a statement (pgaudit logs
role statements), and are set only when the stored verifier does not match the password.
"""

import argparse
import base64
import hashlib
import hmac
import os
import re
import secrets
import subprocess
import sys

NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def psql(port, sql, database="postgres"):
    out = subprocess.run(
        [
            "psql",
            "-X",
            "-q",
            "-tA",
            "-v",
            "ON_ERROR_STOP=1",
            "-p",
            str(port),
            "-d",
            database,
            "-c",
            sql,
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip()


def keys(password, salt, iterations):
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    server = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    return hashlib.sha256(client).digest(), server


def verifier(password):
    salt, iterations = secrets.token_bytes(16), 4096
    stored, server = keys(password, salt, iterations)
    b64 = lambda raw: base64.b64encode(raw).decode()  # noqa: E731
    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(stored)}:{b64(server)}"


def matches(stored_verifier, password):
    found = re.match(r"^SCRAM-SHA-256\$(\d+):([^$]+)\$([^:]+):(.+)$", stored_verifier or "")
    if not found:
        return False
    iterations, salt, stored, server = found.groups()
    want = keys(password, base64.b64decode(salt), int(iterations))
    return hmac.compare_digest(want[0], base64.b64decode(stored)) and hmac.compare_digest(
        want[1], base64.b64decode(server)
    )


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("role")
    parser.add_argument("--port", type=int, default=5432)
    parser.add_argument("--no-password", action="store_true")
    parser.add_argument("--grant", action="append", default=[])
    parser.add_argument("--database")
    parser.add_argument("--connect", action="append", default=[])
    parser.add_argument("--extension", default="")
    parser.add_argument("--read-only", default="")
    args = parser.parse_args()
    names = [args.role, *args.grant, *args.connect] + ([args.database] if args.database else [])
    names += [n for n in (args.extension, args.read_only) if n]
    for name in names:
        if not NAME.match(name):
            sys.exit(f"unsafe name {name!r}")
    changed = []
    role = args.role
    if psql(args.port, f"SELECT 1 FROM pg_roles WHERE rolname = '{role}'") != "1":
        psql(args.port, f'CREATE ROLE "{role}" LOGIN')
        changed.append("role created")
    if not args.no_password:
        password = os.environ["CONTACTPOINT_ROLE_PASSWORD"]
        current = psql(args.port, f"SELECT rolpassword FROM pg_authid WHERE rolname = '{role}'")
        if not matches(current, password):
            psql(args.port, f"ALTER ROLE \"{role}\" PASSWORD '{verifier(password)}'")
            changed.append("password set")
    for member_of in args.grant:
        if psql(args.port, f"SELECT pg_has_role('{role}', '{member_of}', 'MEMBER')") != "t":
            psql(args.port, f'GRANT "{member_of}" TO "{role}"')
            changed.append(f"granted {member_of}")
    if args.database:
        db = args.database
        if psql(args.port, f"SELECT 1 FROM pg_database WHERE datname = '{db}'") != "1":
            psql(args.port, f'CREATE DATABASE "{db}" OWNER "{role}"')
            changed.append("database created")
        if psql(args.port, f"SELECT has_database_privilege('public', '{db}', 'CONNECT')") == "t":
            psql(args.port, f'REVOKE CONNECT, TEMPORARY ON DATABASE "{db}" FROM PUBLIC')
            changed.append("connect revoked from public")
        for grantee in args.connect:
            if (
                psql(args.port, f"SELECT has_database_privilege('{grantee}', '{db}', 'CONNECT')")
                != "t"
            ):
                psql(args.port, f'GRANT CONNECT ON DATABASE "{db}" TO "{grantee}"')
                changed.append(f"connect granted to {grantee}")
        if (
            args.extension
            and psql(
                args.port, f"SELECT 1 FROM pg_extension WHERE extname = '{args.extension}'", db
            )
            != "1"
        ):
            psql(args.port, f'CREATE EXTENSION "{args.extension}"', db)
            changed.append(f"extension {args.extension}")
        if (
            args.read_only
            and psql(
                args.port, f"SELECT pg_has_role('{args.read_only}', 'pg_read_all_data', 'MEMBER')"
            )
            != "t"
        ):
            psql(args.port, f'GRANT pg_read_all_data TO "{args.read_only}"')
            changed.append(f"read-only granted to {args.read_only}")
    print("changed: " + ", ".join(changed) if changed else "ok")


if __name__ == "__main__":
    main()
