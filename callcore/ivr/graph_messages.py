"""The messages of a graph's problems, in English (the message ids) and in French.

Each is a ``str.format`` template filled with the problem's values; a translation uses the
same placeholders. Details that come from elsewhere (a JSON Schema validator's sentence, a node
plugin's own check) are placed as they are.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

UNKNOWN_TYPE: Final = "node {node!r} uses node type {type!r}, which no installed plugin provides"
INVALID_PARAMS: Final = "node {node!r} ({type}): {field}: {detail}"
INVALID_GRAPH: Final = "{where}: {detail}"
DUPLICATE_NODE: Final = "node id {node!r} is used twice"
EDGE_FROM_UNKNOWN: Final = "{where} starts at unknown node {source!r}"
EDGE_TO_UNKNOWN: Final = "node {source!r} exit {exit!r} leads to unknown node {target!r}"
UNKNOWN_EXIT: Final = "node {source!r} ({type}) has no exit {exit!r}; its exits are {exits}"
UNKNOWN_EXIT_NONE: Final = "node {source!r} ({type}) has no exit {exit!r}; it has no exits"
DUPLICATE_EXIT: Final = "node {source!r} exit {exit!r} is connected twice"
UNCONNECTED_EXIT: Final = "node {node!r} ({type}) exit {exit!r} must be connected"
NO_ENTRY: Final = "the flow has no entry node"
ENTRY_UNKNOWN: Final = "entry node {entry!r} does not exist"
UNREACHABLE: Final = "node {node!r} cannot be reached from the entry node {entry!r}"
SPINNING_CYCLE: Final = (
    "node {node!r} is in a loop ({cycle}) with no node that waits for the caller, "
    "so a call would spin in it"
)
MASK_NOT_STORED: Final = (
    "node {node!r}: {field} holds the mask of a secret that has no stored value; type the value"
)

PROBLEM_TRANSLATIONS: Final[Mapping[str, Mapping[str, str]]] = {
    "fr": {
        UNKNOWN_TYPE: "le nœud {node!r} est de type {type!r}, qu’aucun plugin installé ne fournit",
        INVALID_PARAMS: "nœud {node!r} ({type}) : {field} : {detail}",
        INVALID_GRAPH: "{where} : {detail}",
        DUPLICATE_NODE: "l’identifiant de nœud {node!r} est utilisé deux fois",
        EDGE_FROM_UNKNOWN: "{where} part d’un nœud inconnu, {source!r}",
        EDGE_TO_UNKNOWN: "la sortie {exit!r} du nœud {source!r} mène à un nœud inconnu, {target!r}",
        UNKNOWN_EXIT: (
            "le nœud {source!r} ({type}) n’a pas de sortie {exit!r} ; ses sorties : {exits}"
        ),
        UNKNOWN_EXIT_NONE: (
            "le nœud {source!r} ({type}) n’a pas de sortie {exit!r} ; il n’en a aucune"
        ),
        DUPLICATE_EXIT: "la sortie {exit!r} du nœud {source!r} est connectée deux fois",
        UNCONNECTED_EXIT: "la sortie {exit!r} du nœud {node!r} ({type}) doit être connectée",
        NO_ENTRY: "le flux n’a pas de nœud de départ",
        ENTRY_UNKNOWN: "le nœud de départ {entry!r} n’existe pas",
        UNREACHABLE: "le nœud {node!r} est inaccessible depuis le nœud de départ {entry!r}",
        SPINNING_CYCLE: (
            "le nœud {node!r} est dans une boucle ({cycle}) sans aucun nœud qui attende "
            "l’appelant : un appel y tournerait sans fin"
        ),
        MASK_NOT_STORED: (
            "nœud {node!r} : {field} contient le masque d’un secret qui n’a pas de valeur "
            "enregistrée ; saisissez la valeur"
        ),
    }
}
"""Language → English template → translated template."""
