from app.auth.passwords import (
    DUMMY_HASH,
    dummy_verify,
    hash_password,
    needs_rehash,
    verify_password,
)


def test_hash_then_verify() -> None:
    hashed = hash_password("correct horse battery staple")
    assert hashed.startswith("$argon2id$")
    assert "correct horse" not in hashed
    assert verify_password(hashed, "correct horse battery staple") is True


def test_wrong_password_is_false() -> None:
    hashed = hash_password("s3cret-password")
    assert verify_password(hashed, "s3cret-passwore") is False
    assert verify_password(hashed, "") is False


def test_garbage_hash_is_false_not_an_error() -> None:
    for garbage in ["", "not a hash", "$argon2id$v=19$m=1,t=1,p=1$", "$2b$12$abc", "hä$h"]:
        assert verify_password(garbage, "whatever") is False


def test_hashes_differ_per_call_because_of_the_salt() -> None:
    first = hash_password("same password")
    second = hash_password("same password")
    assert first != second
    assert verify_password(first, "same password")
    assert verify_password(second, "same password")


def test_unicode_password_round_trip() -> None:
    hashed = hash_password("pässwörd 🔑")
    assert verify_password(hashed, "pässwörd 🔑")
    assert not verify_password(hashed, "passwort 🔑")


def test_needs_rehash() -> None:
    assert needs_rehash(hash_password("pw")) is False
    # Weaker parameters than the current defaults must be upgraded.
    from argon2 import PasswordHasher

    weak = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1).hash("pw")
    assert verify_password(weak, "pw")
    assert needs_rehash(weak) is True
    assert needs_rehash("garbage") is True


def test_dummy_hash_is_a_real_hash_that_matches_nothing_obvious() -> None:
    assert DUMMY_HASH.startswith("$argon2id$")
    assert needs_rehash(DUMMY_HASH) is False
    assert verify_password(DUMMY_HASH, "") is False
    assert verify_password(DUMMY_HASH, "password") is False
    dummy_verify("password")  # spends the time, returns nothing, never raises
