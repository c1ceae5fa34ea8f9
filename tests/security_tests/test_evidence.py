"""Evidence keeps what proves a finding and drops credentials and personal data."""

from __future__ import annotations

import json

import httpx

from security_tests.evidence import KEEP_FIRST, KEEP_LAST, REDACTED, Evidence, redact


def exchange(body: dict[str, object], path: str = "/api/v1/children/search") -> httpx.Response:
    request = httpx.Request(
        "POST",
        "http://registry.test" + path,
        json=body,
        headers={
            "Authorization": "Bearer eyJsecret.token.value",
            "X-Access-Reason": "safeguarding",
        },
    )
    return httpx.Response(
        200, json={"results": [{"child_id": "X", "given_name": "Ada"}]}, request=request
    )


def test_secrets_and_personal_fields_are_redacted_at_any_depth() -> None:
    body = {
        "username": "u1",
        "password": "hunter2",
        "otp": "123456",
        "nested": [{"family_name": "Quorvex", "address": {"postcode": "QA1 9ZZ"}}],
    }
    assert redact(body) == {
        "username": "u1",
        "password": REDACTED,
        "otp": REDACTED,
        "nested": [{"family_name": REDACTED, "address": REDACTED}],
    }


def test_enrolment_answers_keep_no_second_factor() -> None:
    """An enrolment answer holds the TOTP secret twice: as a field and inside the authenticator
    URI. Both go, with the one-time enrolment code and any credential-named field."""
    secret = "6QRR43V67BK6PI3HKU74N67A5JY5SYEX"
    body = {
        "id": 7,
        "enrolment_code": "KUpMdPaFNBCqtfcQUBdXwo86XxXcenwh",
        "totp_secret": secret,
        "otpauth_uri": f"otpauth://totp/ContactPoint:u1?secret={secret}&issuer=ContactPoint",
        "new_password": "hunter2",
        "refresh_token": "r1",
        "links": ["otpauth://totp/x?secret=" + secret],
        "error": {"code": "harvesting_blocked"},
    }
    redacted = redact(body)
    assert secret not in json.dumps(redacted)
    assert "KUpMd" not in json.dumps(redacted)
    assert redacted["links"] == [REDACTED]
    assert (redacted["new_password"], redacted["refresh_token"]) == (REDACTED, REDACTED)
    assert (redacted["id"], redacted["error"]) == (7, {"code": "harvesting_blocked"})


def test_an_exchange_is_recorded_without_the_token_or_names() -> None:
    evidence = Evidence()
    evidence.record(exchange({"family_name": "Quorvex", "given_name": "Ada"}), 0.012)
    dumped = json.dumps(evidence.dump())
    assert "eyJsecret" not in dumped
    assert "Quorvex" not in dumped
    assert "Ada" not in dumped
    entry = evidence.dump()[0]
    assert entry["request"]["headers"]["authorization"] == f"Bearer {REDACTED}"
    assert entry["request"]["headers"]["x-access-reason"] == "safeguarding"
    assert entry["response"]["status"] == 200
    assert entry["ms"] == 12.0


def test_download_tokens_in_paths_are_cut() -> None:
    evidence = Evidence()
    evidence.record(exchange({}, "/api/v1/exports/download/" + "a" * 60))
    assert evidence.dump()[0]["request"]["path"] == f"/api/v1/exports/download/{REDACTED}"


def test_a_long_scenario_keeps_its_first_and_last_exchanges() -> None:
    evidence = Evidence()
    for n in range(100):
        evidence.record(exchange({"n": n}))
    dumped = evidence.dump()
    kept = [e["n"] for e in dumped if "n" in e]
    assert len(kept) == KEEP_FIRST + KEEP_LAST
    assert kept[:KEEP_FIRST] == list(range(1, KEEP_FIRST + 1))
    assert kept[-1] == 100
    assert "100 requests made" in dumped[0]["note"]
