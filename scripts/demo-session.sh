#!/usr/bin/env bash
# A scripted session against `contactpoint serve --demo`: log in with password + TOTP, search,
# view a record with a reason for access, and read the audit entry the view produced.
# Usage: scripts/demo-session.sh [BASE_URL] [DATA_DIR]
set -euo pipefail
BASE=${1:-http://127.0.0.1:8000}
DATA=${2:-demo-data}
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] && PY=${PYTHON:-.venv/bin/python}
json() { "$PY" -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

# 1. The LA data manager persona, with a fresh one-time code from its TOTP secret.
read -r USERNAME PASSWORD OTP LA < <("$PY" -c "
import json, pyotp
p = next(p for p in json.load(open('$DATA/personas.json')) if p['role'] == 'la_data_manager')
print(p['username'], p['password'], pyotp.TOTP(p['totp_secret']).now(), p['local_authority'])")
LOGIN=$(curl -s -X POST "$BASE/api/v1/auth/login" -H 'Content-Type: application/json' \
  -d "{\"username\": \"$USERNAME\", \"password\": \"$PASSWORD\", \"otp\": \"$OTP\"}")
case "$LOGIN" in
  *access_token*) TOKEN=$(echo "$LOGIN" | json 'd["access_token"]') ;;
  *) echo "login refused: $LOGIN (a one-time code works once: wait 30 s and retry)" >&2; exit 1 ;;
esac
AUTH="Authorization: Bearer $TOKEN"
echo "logged in as $USERNAME"

# 2. Search for a child of the manager's LA from the generated sample: family name, given name
#    and date of birth, in a POST body (never in the URL).
QUERY=$("$PY" -c "
import json
rows = (json.loads(line) for line in open('$DATA/children_sample.jsonl'))
c = next(r for r in rows if r['local_authority'] == '$LA' and not r['shielded'])
print(json.dumps({k: c[k] for k in ('family_name', 'given_name', 'date_of_birth')}))")
CHILD=$(curl -sf -X POST "$BASE/api/v1/children/search" -H "$AUTH" \
  -H 'Content-Type: application/json' -d "$QUERY" \
  | json 'd["results"][0]["child_id"] if d["results"] else ""')
[ -n "${CHILD:-}" ] || { echo "no child found for $QUERY" >&2; exit 1; }
echo "found child $CHILD"

# 3. View the record, stating a reason for access.
curl -sf "$BASE/api/v1/children/$CHILD" -H "$AUTH" -H 'X-Access-Reason: safeguarding' \
  | json '"viewed: " + d["given_name"] + " " + d["family_name"] + ", access " + str(d["access"])'

# 4. The audit trail records the view, with its reason and relationship.
curl -sf "$BASE/api/v1/audit/events?child_id=$CHILD" -H "$AUTH" \
  | json '"\n".join("audit: %s reason=%s relationship=%s" % (e["tag"], e["reason_code"], e["relationship"]) for e in d)'
