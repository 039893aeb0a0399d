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


def test_an_ivr_webhooks_credential_headers_are_redacted_in_a_flow_graph():
    webhook = {
        "id": "crm",
        "type": "webhook",
        "params": {
            "url": "https://crm.example/lookup?caller={caller_id}",
            "headers": {
                "Authorization": "Bearer s3cr3t",
                "X-Api-Key": "k3y",
                "Cookie": "session=abc",
                "Proxy-Authorization": "Basic eA==",
                "Accept": "application/json",
            },
        },
    }
    after = redact({"graph": {"nodes": [webhook]}})
    [node] = after["graph"]["nodes"]
    assert node["params"]["headers"] == {
        "Authorization": REDACTED,
        "X-Api-Key": REDACTED,
        "Cookie": REDACTED,
        "Proxy-Authorization": REDACTED,
        "Accept": "application/json",
    }
    assert node["params"]["url"] == webhook["params"]["url"]
