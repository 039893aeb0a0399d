"""The system dispositions every contact center needs.

Registered through ``register_dispositions`` like any third-party set; the core syncs them into
the database under this plugin's name. Telephony outcomes (no answer, busy, congestion, answering
machine, abandoned, failed) are not final, so the dialer retries them: soon after congestion
(the network recovers), later after an answering machine (nobody is home); each with its own cap,
so an unreachable number stops being dialled. Conversation outcomes close the lead.
"""

from __future__ import annotations

import callcore
from callcore.dispositions import Disposition, DispositionGroup, DispositionRegistry

SYSTEM = DispositionGroup("system", "System dispositions")

DISPOSITIONS = (
    Disposition(
        "no_answer", "No answer", SYSTEM, final=False, retry_delay=3600, max_retries=5, position=10
    ),
    Disposition("busy", "Busy", SYSTEM, final=False, retry_delay=900, max_retries=5, position=20),
    Disposition(
        "congestion",
        "Network congestion",
        SYSTEM,
        final=False,
        retry_delay=300,
        max_retries=3,
        position=30,
    ),
    Disposition(
        "answering_machine",
        "Answering machine",
        SYSTEM,
        final=False,
        retry_delay=14400,
        max_retries=3,
        position=40,
    ),
    Disposition(
        "abandoned", "Abandoned", SYSTEM, final=False, retry_delay=1800, max_retries=3, position=50
    ),
    Disposition(
        "failed", "Failed", SYSTEM, final=False, retry_delay=1800, max_retries=2, position=60
    ),
    Disposition("invalid_number", "Invalid number", SYSTEM, position=70),
    Disposition("wrong_number", "Wrong number", SYSTEM, position=80),
    Disposition("callback", "Callback", SYSTEM, final=False, callback=True, position=90),
    Disposition("not_interested", "Not interested", SYSTEM, position=100),
    Disposition("do_not_call", "Do not call", SYSTEM, dnc=True, position=110),
    Disposition("sale", "Sale", SYSTEM, success=True, position=120),
)

translations = {
    "fr": {
        "System dispositions": "Qualifications système",
        "No answer": "Pas de réponse",
        "Busy": "Occupé",
        "Network congestion": "Encombrement réseau",
        "Answering machine": "Répondeur",
        "Abandoned": "Abandonné",
        "Failed": "Échec",
        "Invalid number": "Numéro invalide",
        "Wrong number": "Mauvais numéro",
        "Callback": "Rappel",
        "Not interested": "Pas intéressé",
        "Do not call": "Ne plus appeler",
        "Sale": "Vente",
    },
}


@callcore.hookimpl
def register_dispositions(registry: DispositionRegistry) -> None:
    """Add the system dispositions."""
    for disposition in DISPOSITIONS:
        registry.add(disposition)
