"""Secret node params — a webhook's API key — kept out of every graph anyone can read.

A node type marks a param secret with ``"writeOnly": true`` in its params schema (JSON Schema's
own word for "sent, never returned"); its value is a string or an object of strings (header name
→ value). A stored graph holds :data:`MASK` in place of each secret string, so whatever serves or
copies a graph — the flows API, versions, exports, the audit log — shows the mask; the values
themselves are Fernet ciphertext in the version's ``secrets`` (node id → param → token, or
→ key → token), and only the engine decrypts them, when it compiles a published version.

Saving a graph (:func:`seal`): a secret string equal to :data:`MASK` keeps the value stored for
that node, param and key in the version being edited (the editor sends back what it was given);
any other string is the new value. A mask with nothing stored under it is refused, naming where.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

from callcore.crypto import SecretCipher
from callcore.errors import ValidationError
from callcore.ivr.graph import GraphProblem
from callcore.ivr.graph_messages import MASK_NOT_STORED
from callcore.ivr.node import SECRET_MASK as MASK
from callcore.ivr.node import NodeRegistry, secret_params

MASK_CODE: Final = "mask_not_stored"

Secrets = dict[str, dict[str, Any]]
"""node id → param → token (a secret string) or key → token (an object of secrets)."""
_Change = Callable[[str, str, str | None, str], str]
"""(node id, param, key or None, the string) → the string to put in its place."""


def _rewrite(graph: Mapping[str, Any], registry: NodeRegistry, change: _Change) -> dict[str, Any]:
    """A copy of ``graph`` where each secret string is what ``change`` makes of it."""
    nodes = []
    for node in graph.get("nodes", ()):
        kind = node.get("type") if isinstance(node, Mapping) else None
        params = node.get("params") if isinstance(node, Mapping) else None
        names = secret_params(registry[kind]) if kind in registry else ()
        if not isinstance(params, Mapping) or not any(name in params for name in names):
            nodes.append(node)
            continue
        params = dict(params)
        for name in names:
            value = params.get(name)
            if isinstance(value, str):
                params[name] = change(node["id"], name, None, value)
            elif isinstance(value, Mapping):
                params[name] = {
                    key: change(node["id"], name, key, item) if isinstance(item, str) else item
                    for key, item in value.items()
                }
        nodes.append({**node, "params": params})
    return {**graph, "nodes": nodes}


def _stored(secrets: Mapping[str, Any], node_id: str, param: str, key: str | None) -> str | None:
    value = secrets.get(node_id, {}).get(param)
    if key is not None:
        value = value.get(key) if isinstance(value, Mapping) else None
    return value if isinstance(value, str) else None


def _field(param: str, key: str | None) -> str:
    escaped = None if key is None else key.replace("~", "~0").replace("/", "~1")
    return f"params/{param}" if escaped is None else f"params/{param}/{escaped}"


def seal(
    graph: Mapping[str, Any],
    registry: NodeRegistry,
    cipher: SecretCipher,
    previous: Mapping[str, Any],
) -> tuple[dict[str, Any], Secrets, list[GraphProblem]]:
    """``graph`` as stored (masks in place of secrets), its secrets encrypted, and a problem per
    mask with nothing in ``previous`` (the edited version's secrets) to keep."""
    secrets: Secrets = {}
    problems: list[GraphProblem] = []

    def change(node_id: str, param: str, key: str | None, value: str) -> str:
        token = _stored(previous, node_id, param, key)
        if value != MASK:
            if token is None or not _opens_to(cipher, token, value):
                token = cipher.encrypt(value).decode("ascii")
        elif token is None:
            field = _field(param, key)
            problems.append(
                GraphProblem.of(
                    MASK_CODE, MASK_NOT_STORED, node_id, field, node=node_id, field=field
                )
            )
            return MASK
        slot = secrets.setdefault(node_id, {})
        if key is None:
            slot[param] = token
        else:
            slot.setdefault(param, {})[key] = token
        return MASK

    return _rewrite(graph, registry, change), secrets, problems


def _opens_to(cipher: SecretCipher, token: str, value: str) -> bool:
    """Whether ``token`` holds ``value`` (then it is kept as it is: saving twice changes
    nothing); a token this key cannot open holds nothing."""
    try:
        return cipher.decrypt(token.encode("ascii")).value == value
    except ValidationError:
        return False


def reveal(
    graph: Mapping[str, Any],
    secrets: Mapping[str, Any],
    registry: NodeRegistry,
    cipher: SecretCipher | None,
) -> dict[str, Any]:
    """``graph`` with each mask replaced by its decrypted value, for the engine only.

    Raises :class:`ValidationError` when the graph has secrets and there is no key to open them
    (or not the key they were sealed with)."""

    def change(node_id: str, param: str, key: str | None, value: str) -> str:
        token = _stored(secrets, node_id, param, key)
        if value != MASK or token is None:
            return value
        if cipher is None:
            raise ValidationError(
                f"node {node_id!r} has a secret {param} and this process has no secret_key"
            )
        return cipher.decrypt(token.encode("ascii")).value

    return _rewrite(graph, registry, change) if secrets else dict(graph)


def without_secrets(
    graph: Mapping[str, Any], registry: NodeRegistry
) -> tuple[dict[str, Any], list[str]]:
    """``graph`` without its secret params (an export), and where they were
    (``/nodes/<id>/params/<param>``), so whoever imports it knows what to enter again."""
    omitted: list[str] = []
    nodes = []
    for node in graph.get("nodes", ()):
        kind = node.get("type")
        names = secret_params(registry[kind]) if kind in registry else ()
        params = node.get("params", {})
        dropped = [name for name in names if name in params]
        if dropped:
            omitted += [f"/nodes/{node['id']}/params/{name}" for name in dropped]
            node = {**node, "params": {k: v for k, v in params.items() if k not in dropped}}
        nodes.append(node)
    return {**graph, "nodes": nodes}, omitted


def in_secrets(
    problems: list[GraphProblem], graph: dict[str, Any], registry: NodeRegistry
) -> list[GraphProblem]:
    """The problems of ``graph`` that lie in a secret param: the flows API refuses such a value
    rather than store it, since nobody could see it to fix it afterwards."""
    secret_fields = {
        (node.get("id"), f"params/{name}")
        for node in graph["nodes"]
        if node.get("type") in registry
        for name in secret_params(registry[node["type"]])
    }
    return [
        problem
        for problem in problems
        if problem.field is not None
        and any(
            (problem.node, problem.field.rsplit("/", n)[0]) in secret_fields
            for n in range(problem.field.count("/"))
        )
    ]


def rotated(secrets: Mapping[str, Any], cipher: SecretCipher) -> tuple[Secrets, int]:
    """A version's ``secrets`` with every token encrypted again with the cipher's current key
    (``callcore rotate-secrets``), and how many tokens that was."""
    count = 0

    def again(token: str) -> str:
        nonlocal count
        count += 1
        return cipher.rotate(token.encode("ascii")).decode("ascii")

    return {
        node: {
            param: again(value)
            if isinstance(value, str)
            else {key: again(token) for key, token in value.items()}
            for param, value in params.items()
        }
        for node, params in secrets.items()
    }, count
