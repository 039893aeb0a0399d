"""Graph problems in French: every message has its translation, with the same placeholders."""

import string

from callcore.ivr import graph_messages
from callcore.ivr.graph import GraphProblem, validate_graph
from callcore.ivr.node import NodeRegistry

TEMPLATES = {
    value
    for name, value in vars(graph_messages).items()
    if name.isupper() and isinstance(value, str)
}


def fields(template: str) -> list[tuple[str, str | None]]:
    return sorted(
        (name, conversion)
        for _, name, _, conversion in string.Formatter().parse(template)
        if name is not None
    )


def test_every_problem_message_has_a_french_translation_with_the_same_placeholders():
    french = graph_messages.PROBLEM_TRANSLATIONS["fr"]
    assert len(TEMPLATES) == 15
    assert set(french) == TEMPLATES
    for template in TEMPLATES:
        assert fields(french[template]) == fields(template), template


def test_a_problem_is_told_in_french_and_stays_english_otherwise():
    problems = validate_graph(
        {"entry": "a", "nodes": [{"id": "a", "type": "nope", "params": {}}], "edges": []},
        NodeRegistry(),
    )
    [problem] = problems
    assert problem.message == "node 'a' uses node type 'nope', which no installed plugin provides"
    assert problem.localized("en") == problem.message
    assert problem.localized("de") == problem.message
    assert problem.localized(None) == problem.message
    assert problem.localized("fr") == (
        "le nœud 'a' est de type 'nope', qu’aucun plugin installé ne fournit"
    )
    assert problem.as_json("fr")["message"] == problem.localized("fr")
    # Equality is about what the problem says in English and where it is.
    assert problem == GraphProblem("unknown_type", problem.message, "a", "type")
