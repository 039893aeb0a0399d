"""Audit redaction: secrets never reach the audit log, at any depth."""

from callcore.audit import REDACTED, redact


def test_secret_looking_keys_are_redacted_at_any_depth():
    before = {
        "name": "trunk-1",
        "password": "hunter2",
        "auth": {"api_key": "k", "Token": "t", "realm": "sip.example"},
        "secret_encrypted": b"gAAAA",
        "peers": [{"client_secret": "x", "host": "h"}],
    }
    after = redact(before)
    assert after == {
        "name": "trunk-1",
        "password": REDACTED,
        "auth": {"api_key": REDACTED, "Token": REDACTED, "realm": "sip.example"},
        "secret_encrypted": REDACTED,
        "peers": [{"client_secret": REDACTED, "host": "h"}],
    }
    assert before["password"] == "hunter2"
