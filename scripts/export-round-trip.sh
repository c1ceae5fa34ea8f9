#!/usr/bin/env bash
# An export's round trip against `contactpoint serve --demo`: the recipient makes an age key
# pair; one LA data manager requests an export for the recipient's public key; a second data
# manager of the same LA approves it; the requester takes a short-lived link and downloads the
# file once; the recipient opens it with the standard `age` tool (or `contactpoint export open`).
# Usage: scripts/export-round-trip.sh [BASE_URL] [DATA_DIR] [OUT_DIR]
set -euo pipefail
BASE=${1:-http://127.0.0.1:8000}
DATA=${2:-demo-data}
OUT=${3:-export-round-trip}
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] && PY=${PYTHON:-.venv/bin/python}
CP=${CONTACTPOINT:-contactpoint}
[ -x .venv/bin/contactpoint ] && CP=${CONTACTPOINT:-.venv/bin/contactpoint}
json() { "$PY" -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
mkdir -p "$OUT"

# 1. The recipient's age key pair: the secret key stays with the recipient.
"$CP" keys recipient-keypair --out-dir "$OUT/recipient" >/dev/null
RECIPIENT=$(grep -v '^#' "$OUT/recipient/recipient.pub.txt" | head -1)
echo "recipient key $RECIPIENT"

# 2. Two data managers of one LA (the last LA with two data manager personas), logged in with
#    password and a fresh one-time code each.
login() {
  local who=$1 attempt answer
  for attempt in 1 2; do
    read -r USERNAME PASSWORD OTP < <("$PY" -c "
import json, pyotp
from collections import defaultdict
by_la = defaultdict(list)
for p in json.load(open('$DATA/personas.json')):
    if p['role'] == 'la_data_manager':
        by_la[p['local_authority']].append(p)
pair = [ps for ps in by_la.values() if len(ps) >= 2][-1]
p = pair[$who]
print(p['username'], p['password'], pyotp.TOTP(p['totp_secret']).now())")
    answer=$(curl -s -X POST "$BASE/api/v1/auth/login" -H 'Content-Type: application/json' \
      -d "{\"username\": \"$USERNAME\", \"password\": \"$PASSWORD\", \"otp\": \"$OTP\"}")
    case "$answer" in
      *access_token*) echo "$answer" | json 'd["access_token"]'; return 0 ;;
    esac
    # A one-time code works once: if this one was used (by another session of the persona
    # in the same 30 s step), wait for the next step and try again.
    [ "$attempt" = 1 ] && sleep $((31 - $(date +%s) % 30))
  done
  echo "login refused for $USERNAME: $answer" >&2
  return 1
}
REQUESTER="Authorization: Bearer $(login 0)"
APPROVER="Authorization: Bearer $(login 1)"
echo "logged in two data managers of one LA"

# 3. The request: the LA's 17-year-olds, for the recipient's key, with a justification.
BODY=$("$PY" -c "
import json, sys
print(json.dumps({
    'scope': {'kind': 'local_authority', 'min_age': 17, 'max_age': 17},
    'justification': 'Transition planning for care leavers (demo round trip)',
    'recipient_name': 'Leaving care team',
    'recipient_public_key': sys.argv[1],
}))" "$RECIPIENT")
EXPORT=$(curl -sf -X POST "$BASE/api/v1/exports" -H "$REQUESTER" \
  -H 'Content-Type: application/json' -d "$BODY" | json 'd["id"]')
echo "export $EXPORT requested"

# 4. A second data manager approves it (the requester cannot).
curl -sf -X POST "$BASE/api/v1/exports/$EXPORT/approve" -H "$APPROVER" \
  | json '"export %s %s by a second data manager" % (d["id"], d["status"])'

# 5. The requester takes a short-lived link and downloads the file once.
URL=$(curl -sf -X POST "$BASE/api/v1/exports/$EXPORT/link" -H "$REQUESTER" | json 'd["url"]')
case "$URL" in http*) ;; *) URL="$BASE$URL" ;; esac
curl -sf "$URL" -H "$REQUESTER" -o "$OUT/export.age"
echo "downloaded $(wc -c < "$OUT/export.age") bytes, sealed to the recipient"

# 6. The recipient opens it with age and their secret key; nothing else can.
age -d -i "$OUT/recipient/recipient.key.txt" "$OUT/export.age" > "$OUT/export.jsonl"
echo "opened with age: $(wc -l < "$OUT/export.jsonl") lines"
