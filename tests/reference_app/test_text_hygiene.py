"""Every free text field of every request refuses control and bidi characters with the stable
code ``control_characters`` (and the X-Access-Reason header's free text too); switched off
(``text_hygiene``, a development build) they are stored."""

from __future__ import annotations

from typing import Any, get_args

import pytest
from pydantic.fields import FieldInfo

from reference_app.access.permissions import Role
from reference_app.api import request_models
from reference_app.kit.controls import Control
from reference_app.kit.text import multi_line, one_line
from tests.fixtures.world import LA_A, World, strict_world, unique_name

RLO = "\u202e"
CHILD = {
    "given_name": "Ivy",
    "date_of_birth": "2019-05-04",
    "gender": "female",
    "address": {"line1": "3 Brook Lane", "town": "Preston", "postcode": "PR2 3ZZ"},
}
# Strings that are not free text: secrets, codes and identifiers checked by pattern or lookup.
NOT_FREE_TEXT = {
    ("LoginRequest", "username"),
    ("LoginRequest", "password"),
    ("LoginRequest", "otp"),
    ("AccountCreate", "username"),
    ("Address", "postcode"),
    ("SearchRequest", "postcode"),
    ("CarerCreate", "phone"),
    ("CarerCorrect", "phone"),
    ("RequestCreate", "child_id"),
    # Credentials are compared, never shown: any character a person types may be in them.
    ("EnrolRequest", "username"),
    ("EnrolRequest", "enrolment_code"),
    ("EnrolRequest", "password"),
    ("PasswordChange", "current_password"),
    ("PasswordChange", "otp"),
    ("PasswordChange", "new_password"),
    ("TotpReset", "password"),
    ("TotpReset", "otp"),
}


def _is_str(field: FieldInfo) -> bool:
    annotation = field.annotation
    return annotation is str or str in get_args(annotation)


def _hygienic(field: FieldInfo) -> bool:
    checks = {getattr(m, "func", None) for m in field.metadata}
    for arg in get_args(field.annotation):  # OneLine | None keeps its validator inside
        checks |= {getattr(m, "func", None) for m in getattr(arg, "__metadata__", ())}
    return bool(checks & {one_line, multi_line})


def test_every_free_text_field_of_every_request_schema_is_checked() -> None:
    models = request_models()
    unchecked = [
        f"{model.__name__}.{name}"
        for model in models
        for name, field in model.model_fields.items()
        if _is_str(field) and not _hygienic(field) and (model.__name__, name) not in NOT_FREE_TEXT
    ]
    assert len(models) > 10
    assert unchecked == []


def _post_child(world: World, headers: dict[str, str] | None = None, **changes: Any) -> Any:
    return world.client.post(
        "/api/v1/children",
        json={**CHILD, "family_name": unique_name(), **changes},
        headers=headers or world.headers(Role.LA_DATA_MANAGER, LA_A),
    )


@pytest.mark.parametrize(
    "changes",
    [
        {"given_name": f"Ivy{RLO}"},
        {"address": {**CHILD["address"], "line1": "3 Brook\x00 Lane"}},
        {"address": {**CHILD["address"], "town": "Preston\u2066"}},
    ],
)
def test_names_and_addresses_refuse_bidi_and_nul(world: World, changes: dict[str, Any]) -> None:
    response = _post_child(world, **changes)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "control_characters"
    assert RLO not in response.text  # the input is not echoed


def test_notes_refuse_bidi_but_keep_line_breaks(world: World) -> None:
    child_id = _post_child(world).json()["child_id"]
    headers = world.headers(Role.LA_DATA_MANAGER, LA_A)
    bad = world.client.post(
        f"/api/v1/children/{child_id}/shield",
        json={"shielded": True, "decision_note": f"court order{RLO} 12"},
        headers=headers,
    )
    assert bad.status_code == 422
    assert bad.json()["error"]["code"] == "control_characters"
    good = world.client.post(
        f"/api/v1/children/{child_id}/shield",
        json={"shielded": True, "decision_note": "court order\nref 12"},
        headers=headers,
    )
    assert good.status_code == 200


def test_export_recipient_and_justification_refuse_controls(world: World) -> None:
    response = world.client.post(
        "/api/v1/exports",
        json={
            "scope": {"kind": "local_authority"},
            "justification": "Quarterly return\x1b[2J to the department",
            "recipient_name": f"Analyst{RLO}",
            "recipient_public_key": "key",
        },
        headers=world.headers(Role.LA_DATA_MANAGER, LA_A),
    )
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "control_characters"


def test_the_access_reasons_free_text_refuses_controls(world: World) -> None:
    child_id = _post_child(world).json()["child_id"]
    headers = world.headers(Role.LA_DATA_MANAGER, LA_A)
    # A header arrives as latin-1: the UTF-8 bytes of U+202E read as C1 control characters.
    hostile = "safeguarding; note \u202e".encode().decode("latin-1")
    response = world.client.get(
        f"/api/v1/children/{child_id}",
        headers={**headers, "X-Access-Reason": hostile.encode("latin-1")},  # type: ignore[dict-item]
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "control_characters"
    plain = world.client.get(
        f"/api/v1/children/{child_id}", headers={**headers, "X-Access-Reason": "safeguarding; ok"}
    )
    assert plain.status_code == 200


def test_switched_off_control_characters_are_stored(world: World) -> None:
    with strict_world(world, off=[Control.TEXT_HYGIENE]) as weak:
        headers = weak.login(weak.new_account(Role.LA_DATA_MANAGER))
        response = _post_child(weak, headers, given_name=f"Ivy{RLO}")
        assert response.status_code == 201
