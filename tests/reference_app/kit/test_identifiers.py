import random

import pytest

from reference_app.kit import identifiers


def test_new_ids_are_valid_unique_and_not_sequential() -> None:
    ids = [identifiers.new_child_id() for _ in range(2000)]
    assert len(set(ids)) == len(ids)
    assert all(identifiers.is_valid(i) and len(i) == identifiers.LENGTH for i in ids)
    assert sorted(ids) != ids


def test_every_single_character_slip_is_caught() -> None:
    child_id = identifiers.from_random_bytes(random.Random(1).randbytes(8))
    for pos in range(len(child_id)):
        for ch in identifiers.ALPHABET:
            if ch != child_id[pos]:
                typo = child_id[:pos] + ch + child_id[pos + 1 :]
                assert not identifiers.is_valid(typo), typo


def test_most_adjacent_transpositions_are_caught() -> None:
    rng = random.Random(7)
    caught = total = 0
    for _ in range(300):
        child_id = identifiers.from_random_bytes(rng.randbytes(8))
        for pos in range(len(child_id) - 1):
            a, b = child_id[pos], child_id[pos + 1]
            if a != b:
                total += 1
                swapped = child_id[:pos] + b + a + child_id[pos + 2 :]
                caught += not identifiers.is_valid(swapped)
    assert caught / total > 0.9


def test_normalise_accepts_spacing_case_and_confusable_letters() -> None:
    child_id = identifiers.from_random_bytes(bytes(range(8, 16)))
    messy = " " + child_id.lower()[:4] + "-" + child_id.lower()[4:] + " "
    assert identifiers.normalise(messy) == child_id
    with_o = child_id.replace("0", "O")
    assert identifiers.normalise(with_o) == child_id


@pytest.mark.parametrize("bad", ["", "ABC", "U" * 13, "0123456789ABCDE", "*" * 13])
def test_malformed_ids_are_rejected(bad: str) -> None:
    with pytest.raises(identifiers.InvalidIdentifier):
        identifiers.normalise(bad)


def test_seeded_bytes_give_the_same_id() -> None:
    raw = random.Random(42).randbytes(8)
    assert identifiers.from_random_bytes(raw) == identifiers.from_random_bytes(raw)
    with pytest.raises(ValueError, match="8 random bytes"):
        identifiers.from_random_bytes(b"short")
