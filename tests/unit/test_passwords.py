"""argon2id hashing at OWASP's minimum cost, and generated passwords."""

from argon2 import extract_parameters

from callcore.auth.passwords import generate_password, hash_password, needs_rehash, verify_password


def test_hash_is_argon2id_with_at_least_owasp_parameters():
    stored = hash_password("correct horse")
    params = extract_parameters(stored)
    assert stored.startswith("$argon2id$")
    assert params.memory_cost >= 19 * 1024
    assert params.time_cost >= 2
    assert params.parallelism == 1
    assert not needs_rehash(stored)


def test_verify_accepts_the_password_and_rejects_others():
    stored = hash_password("correct horse")
    assert verify_password(stored, "correct horse")
    assert not verify_password(stored, "correct horse ")
    assert not verify_password("not a hash", "correct horse")


def test_generated_passwords_are_long_mixed_and_distinct():
    passwords = {generate_password() for _ in range(50)}
    assert len(passwords) == 50
    for password in passwords:
        assert len(password) == 20
        assert any(c.isdigit() for c in password)
        assert any(c.isalpha() for c in password)
