"""ACME's sales outcomes, added next to callcore's system dispositions."""

from __future__ import annotations

import callcore
from callcore.dispositions import Disposition, DispositionGroup, DispositionRegistry

ACME_SALES = DispositionGroup("acme_sales", "ACME sales")

translations = {
    "fr": {
        "ACME sales": "Ventes ACME",
        "Appointment set": "Rendez-vous fixé",
        "Brochure sent": "Brochure envoyée",
        "Decision maker absent": "Décideur absent",
    },
}


@callcore.hookimpl
def register_dispositions(registry: DispositionRegistry) -> None:
    """Add ACME's sales outcomes."""
    registry.add(Disposition("appointment_set", "Appointment set", ACME_SALES, success=True))
    registry.add(Disposition("sent_brochure", "Brochure sent", ACME_SALES, position=10))
    registry.add(
        Disposition(
            "decision_maker_absent",
            "Decision maker absent",
            ACME_SALES,
            final=False,
            callback=True,
            position=20,
        )
    )
