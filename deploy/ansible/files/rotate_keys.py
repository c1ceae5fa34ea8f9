#!/usr/bin/python3
"""Rotate the registry's keys document in place (stdin to stdout); print nothing else.

field: a new field-encryption key becomes current; the old ones stay to read existing rows
       (new and updated rows use the new key; older rows keep theirs until
       `contactpoint-registry keys reencrypt` rewrites them, which the playbook runs next).
audit: a new audit-signing key signs new checkpoints; old public keys still verify old ones.
token: a new token secret; every issued token stops working (users log in again).
The blind-index key cannot rotate here: every stored index would have to be recomputed.
"""

import base64
import json
import os
import sys


def fresh():
    return base64.b64encode(os.urandom(32)).decode("ascii")


def next_id(prefix, keys):
    numbers = [
        int(k[len(prefix) :]) for k in keys if k.startswith(prefix) and k[len(prefix) :].isdigit()
    ]
    return f"{prefix}{max(numbers, default=0) + 1}"


def main():
    what = set(sys.argv[1].split(","))
    unknown = what - {"field", "audit", "token"}
    if unknown:
        sys.exit(f"cannot rotate: {', '.join(sorted(unknown))}")
    doc = json.load(sys.stdin)
    if "field" in what:
        kid = next_id("f", doc["field_keys"])
        doc["field_keys"][kid] = fresh()
        doc["field_key_current"] = kid
    if "audit" in what:
        kid = next_id("a", doc["audit_signing_keys"])
        doc["audit_signing_keys"][kid] = fresh()  # any 32 bytes are an Ed25519 seed
        doc["audit_key_current"] = kid
    if "token" in what:
        doc["token_secret"] = fresh()
    json.dump(doc, sys.stdout, indent=2)


if __name__ == "__main__":
    main()
