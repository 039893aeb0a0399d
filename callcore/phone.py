"""Phone numbers in E.164, as every table stores them (the ``e164`` domain of the schema).

``phonenumbers`` decides what a real number is: national forms are read in a default region
(France, the product's home market), and a number that only looks like one (``+3312``) is
refused, so nothing half-valid is dialled or stored.
"""

from __future__ import annotations

from typing import Final

import phonenumbers

DEFAULT_REGION: Final = "FR"


def to_e164(text: str, region: str = DEFAULT_REGION) -> str | None:
    """``text`` as an E.164 number (``+33123456789``), or None when it is not a valid number."""
    try:
        parsed = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(parsed):
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
