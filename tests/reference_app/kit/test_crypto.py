import pytest

from reference_app.kit.crypto import (
    BlindIndex,
    DecryptionError,
    FieldCipher,
    normalise_name,
    normalise_postcode,
    phonetic_code,
)

KEY_1 = bytes(range(32))
KEY_2 = bytes(range(1, 33))


def test_round_trip_and_no_clear_text_in_ciphertext() -> None:
    cipher = FieldCipher({"k1": KEY_1}, "k1")
    blob = cipher.encrypt("Olivia Smith", "children.given_name")
    assert b"Olivia" not in blob
    assert cipher.decrypt(blob, "children.given_name") == "Olivia Smith"
    assert cipher.encrypt("x", "c") != cipher.encrypt("x", "c")  # fresh nonce each time


def test_ciphertext_is_bound_to_its_column() -> None:
    cipher = FieldCipher({"k1": KEY_1}, "k1")
    blob = cipher.encrypt("2015-02-03", "children.date_of_birth")
    with pytest.raises(DecryptionError):
        cipher.decrypt(blob, "children.given_name")


def test_tampered_ciphertext_fails_authentication() -> None:
    cipher = FieldCipher({"k1": KEY_1}, "k1")
    blob = bytearray(cipher.encrypt("secret", "c"))
    blob[-1] ^= 1
    with pytest.raises(DecryptionError):
        cipher.decrypt(bytes(blob), "c")


def test_rotation_old_ciphertexts_still_read_new_ones_use_new_key() -> None:
    old = FieldCipher({"k1": KEY_1}, "k1")
    blob = old.encrypt("value", "c")
    rotated = FieldCipher({"k1": KEY_1, "k2": KEY_2}, "k2")
    assert rotated.decrypt(blob, "c") == "value"
    assert rotated.key_id_of(rotated.encrypt("value", "c")) == "k2"
    retired = FieldCipher({"k2": KEY_2}, "k2")
    with pytest.raises(DecryptionError, match="no key"):
        retired.decrypt(blob, "c")


def test_normalisation() -> None:
    assert normalise_name(" O'Brien-Smith ") == "obriensmith"
    assert normalise_name("Zoë") == "zoe"
    assert normalise_postcode("pr1 2ab") == "PR12AB"


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("Smith", "Smyth"),
        ("Phillips", "Philips"),
        ("Johnson", "Jonson"),
        ("Clarke", "Clark"),
        ("MacDonald", "McDonald"),
        ("Reid", "Reed"),
    ],
)
def test_phonetic_matches_common_spelling_variants(one: str, other: str) -> None:
    assert phonetic_code(one) == phonetic_code(other)


def test_phonetic_separates_different_names() -> None:
    assert phonetic_code("Smith") != phonetic_code("Jones")


def test_blind_index_is_keyed_and_normalised() -> None:
    one, two = BlindIndex(KEY_1), BlindIndex(KEY_2)
    assert one.name("Smith") == one.name(" SMITH ")
    assert one.name("Smith") != two.name("Smith")
    assert one.name("Smith") != one.postcode("Smith")  # kinds are separated
    assert len(one.name("Smith")) == 16
