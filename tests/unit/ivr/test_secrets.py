"""Secret node params: sealed with a real Fernet key, revealed, left out of exports, and the
problems that lie in them told apart from the others."""

import pytest
from cryptography.fernet import Fernet

from callcore.crypto import SecretCipher
from callcore.errors import ValidationError
from callcore.ivr import Node, NodeRegistry
from callcore.ivr.graph import validate_graph
from callcore.ivr.node import SECRET_MASK
from callcore.ivr.secrets import in_secrets, reveal, seal, without_secrets
from callcore.testing import TEST_SECRET_KEY

CIPHER = SecretCipher(Fernet(TEST_SECRET_KEY))
HEADERS = {"type": "object", "additionalProperties": {"type": "string", "pattern": "^[^\n]*$"}}


class Hook(Node):
    name = "hook"
    label = "Hook"
    params_schema = {
        "type": "object",
        "properties": {
            "headers": HEADERS,
            "keys": {**HEADERS, "writeOnly": True},
            "token": {"type": "string", "maxLength": 20, "writeOnly": True},
        },
    }

    def optional_exits(self) -> frozenset[str]:
        return frozenset({"next"})


def registry() -> NodeRegistry:
    nodes = NodeRegistry()
    with nodes.adding_for("tests", {}):
        nodes.add(Hook)
    return nodes


def graph(**params: object) -> dict:
    return {"entry": "h", "nodes": [{"id": "h", "type": "hook", "params": params}], "edges": []}


def test_sealed_then_revealed_and_a_mask_keeps_the_stored_value():
    nodes = registry()
    sealed, secrets, problems = seal(
        graph(headers={"X-Ref": "1"}, keys={"X-Key": "k1"}, token="t0k"), nodes, CIPHER, {}
    )
    assert problems == []
    assert sealed == graph(headers={"X-Ref": "1"}, keys={"X-Key": SECRET_MASK}, token=SECRET_MASK)
    assert "k1" not in str(secrets) and "t0k" not in str(secrets)
    plain = graph(headers={"X-Ref": "1"}, keys={"X-Key": "k1"}, token="t0k")
    assert reveal(sealed, secrets, nodes, CIPHER) == plain
    # The mask keeps the token as it is; a value typed again too; a new value replaces it.
    again, kept, _ = seal(
        graph(keys={"X-Key": SECRET_MASK, "X-New": "n"}, token="t0k"), nodes, CIPHER, secrets
    )
    assert kept["h"]["keys"]["X-Key"] == secrets["h"]["keys"]["X-Key"]
    assert kept["h"]["token"] == secrets["h"]["token"]
    assert reveal(again, kept, nodes, CIPHER)["nodes"][0]["params"]["keys"] == {
        "X-Key": "k1",
        "X-New": "n",
    }


def test_a_mask_with_nothing_stored_is_a_problem_at_its_field():
    _, _, problems = seal(graph(keys={"A/B": SECRET_MASK}), registry(), CIPHER, {})
    assert [(p.code, p.node, p.field) for p in problems] == [
        ("mask_not_stored", "h", "params/keys/A~1B")
    ]


def test_reveal_without_the_key_refuses_and_a_graph_without_secrets_needs_none():
    nodes = registry()
    sealed, secrets, _ = seal(graph(token="t0k"), nodes, CIPHER, {})
    with pytest.raises(ValidationError, match="no secret_key"):
        reveal(sealed, secrets, nodes, None)
    assert reveal(graph(headers={}), {}, nodes, None) == graph(headers={})


def test_an_export_leaves_secret_params_out_and_says_where():
    exported, omitted = without_secrets(
        graph(headers={"X-Ref": "1"}, keys={"X-Key": SECRET_MASK}), registry()
    )
    assert exported == graph(headers={"X-Ref": "1"})
    assert omitted == ["/nodes/h/params/keys"]


def test_only_problems_inside_secret_params_count_as_secret():
    nodes = registry()
    bad = graph(headers={"X-A": "a\nb"}, keys={"X-B": "a\nb"}, token="x" * 21)
    problems = validate_graph(bad, nodes)
    assert {p.field for p in problems} == {
        "params/headers/X-A",
        "params/keys/X-B",
        "params/token",
    }
    assert {p.field for p in in_secrets(problems, bad, nodes)} == {
        "params/keys/X-B",
        "params/token",
    }
