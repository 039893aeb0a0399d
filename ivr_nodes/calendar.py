"""Calendar: branch on opening hours — ``open``, ``closed`` or ``holiday``.

The time is the call's (``ctx.now()``, which a dry run sets) read as wall-clock time in
``timezone``. What decides, in order:

1. an emergency override forcing the flow open (``Override.OPEN``) → ``open`` (a closed
   override never gets here: the service plays its message before the flow runs);
2. an exception for that date → open within its own ``hours`` (none: closed all day);
3. with ``holidays_closed``, a public holiday of ``holidays_country`` (and ``holidays_subdivision``,
   e.g. ``57`` for Moselle) from the ``holidays`` package → ``holiday``;
4. the weekly ``hours``: open when a range lists that ISO weekday (1 = Monday) and
   ``start <= time < end``.

Ranges are wall-clock: on the night clocks go forward, 01:00–03:00 is open one real hour (02:xx
does not exist); on the night they go back, three (02:xx happens twice). A range cannot cross
midnight — ``end`` must come after ``start``, ``24:00`` meaning the end of the day — so a night
shift is two ranges, 22:00–24:00 and 00:00–06:00 on the next day; that keeps every date's
opening decided by that date's own rules (exceptions, holidays).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from datetime import date, datetime
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import attrs
import holidays

import callcore
from callcore.ivr import CallContext, Node, NodeRegistry, Override
from callcore.ivr.patterns import whole

OPEN: Final = "open"
CLOSED: Final = "closed"
HOLIDAY: Final = "holiday"
START_PATTERN: Final = whole(r"([01][0-9]|2[0-3]):[0-5][0-9]")
END_PATTERN: Final = whole(r"(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)")


def _minutes(text: str) -> int:
    hours, minutes = text.split(":")
    return int(hours) * 60 + int(minutes)


def _range_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["start", "end"],
        "additionalProperties": False,
        "properties": {
            "start": {"type": "string", "pattern": START_PATTERN, "title": "From (HH:MM)"},
            "end": {"type": "string", "pattern": END_PATTERN, "title": "To (HH:MM)"},
        },
    }


@attrs.frozen
class Schedule:
    """Opening rules, parsed once per node: minutes of the day, end excluded."""

    zone: ZoneInfo
    weekly: Mapping[int, tuple[tuple[int, int], ...]]
    """ISO weekday → (start, end) minute ranges."""
    exceptions: Mapping[date, tuple[tuple[int, int], ...]]
    holidays_country: str | None
    """None when public holidays are not closed."""
    holidays_subdivision: str | None = None

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> Schedule:
        weekly: dict[int, list[tuple[int, int]]] = {day: [] for day in range(1, 8)}
        for block in params.get("hours", ()):
            for day in block["days"]:
                weekly[day].append((_minutes(block["start"]), _minutes(block["end"])))
        exceptions = {
            date.fromisoformat(item["date"]): tuple(
                (_minutes(r["start"]), _minutes(r["end"])) for r in item.get("hours", ())
            )
            for item in params.get("exceptions", ())
        }
        return cls(
            zone=ZoneInfo(params.get("timezone", "Europe/Paris")),
            weekly={day: tuple(ranges) for day, ranges in weekly.items()},
            exceptions=exceptions,
            holidays_country=(
                params.get("holidays_country", "FR")
                if params.get("holidays_closed", True)
                else None
            ),
            holidays_subdivision=params.get("holidays_subdivision"),
        )


@functools.lru_cache(maxsize=64)
def _public_holidays(country: str, subdivision: str | None, year: int) -> holidays.HolidayBase:
    return holidays.country_holidays(country, subdiv=subdivision, years=year)


def calendar_state(schedule: Schedule, at: datetime) -> str:
    """``open``, ``closed`` or ``holiday`` at the aware instant ``at`` (overrides aside)."""
    if at.tzinfo is None:
        raise ValueError(f"calendar_state needs an aware datetime, got {at!r}")
    local = at.astimezone(schedule.zone)
    today, minute = local.date(), local.hour * 60 + local.minute
    ranges = schedule.exceptions.get(today)
    if ranges is None:
        country = schedule.holidays_country
        if country is not None and today in _public_holidays(
            country, schedule.holidays_subdivision, today.year
        ):
            return HOLIDAY
        ranges = schedule.weekly[local.isoweekday()]
    return OPEN if any(start <= minute < end for start, end in ranges) else CLOSED


def _range_problems(ranges: Iterable[Mapping[str, str]], where: str) -> Iterable[tuple[str, str]]:
    for index, item in enumerate(ranges):
        if _minutes(item["end"]) <= _minutes(item["start"]):
            yield (
                f"{where}/{index}/end",
                f"{item['end']} is not after {item['start']}: a range cannot cross midnight; "
                f"split it into {item['start']}–24:00 and 00:00–{item['end']} the next day",
            )


class CalendarNode(Node):
    name = "calendar"
    label = "Opening hours"
    description = "Branch on the time: open, closed or public holiday."
    category = "logic"
    params_schema = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "timezone": {
                "type": "string",
                "maxLength": 64,
                "default": "Europe/Paris",
                "title": "Time zone",
            },
            "hours": {
                "type": "array",
                "title": "Weekly opening hours",
                "maxItems": 50,
                "items": {
                    "type": "object",
                    "required": ["days", "start", "end"],
                    "additionalProperties": False,
                    "properties": {
                        "days": {
                            "type": "array",
                            "title": "Days (1 = Monday … 7 = Sunday)",
                            "items": {"type": "integer", "minimum": 1, "maximum": 7},
                            "minItems": 1,
                            "uniqueItems": True,
                        },
                        **_range_schema()["properties"],
                    },
                },
            },
            "exceptions": {
                "type": "array",
                "title": "Exceptions",
                "maxItems": 400,
                "items": {
                    "type": "object",
                    "required": ["date"],
                    "additionalProperties": False,
                    "properties": {
                        "date": {
                            "type": "string",
                            "format": "date",
                            "pattern": whole(r"[0-9]{4}-[0-9]{2}-[0-9]{2}"),
                            "title": "Date",
                        },
                        "hours": {
                            "type": "array",
                            "title": "Opening hours that day (none: closed all day)",
                            "maxItems": 10,
                            "items": _range_schema(),
                        },
                    },
                },
            },
            "holidays_closed": {
                "type": "boolean",
                "default": True,
                "title": "Closed on public holidays",
            },
            "holidays_country": {
                "type": "string",
                "pattern": whole(r"[A-Z]{2}"),
                "default": "FR",
                "title": "Country of the public holidays",
            },
            "holidays_subdivision": {
                "type": "string",
                "minLength": 1,
                "maxLength": 20,
                "title": "Region of the public holidays",
            },
        },
    }
    exit_labels = {OPEN: "Open", CLOSED: "Closed", HOLIDAY: "Public holiday"}

    def __init__(self, params: Mapping[str, Any], node_id: str = "") -> None:
        super().__init__(params, node_id)
        self.schedule = Schedule.from_params(params)

    @classmethod
    def param_problems(cls, params: Mapping[str, Any]) -> Iterable[tuple[str, str]]:
        zone = params.get("timezone", "Europe/Paris")
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            yield "timezone", f"{zone!r} is not a known time zone (e.g. Europe/Paris)"
        yield from _range_problems(params.get("hours", ()), "hours")
        seen: set[str] = set()
        for index, item in enumerate(params.get("exceptions", ())):
            if item["date"] in seen:
                yield f"exceptions/{index}/date", f"{item['date']} has two exceptions"
            seen.add(item["date"])
            yield from _range_problems(item.get("hours", ()), f"exceptions/{index}/hours")
        country = params.get("holidays_country", "FR")
        subdivision = params.get("holidays_subdivision")
        try:
            holidays.country_holidays(country, subdiv=subdivision)
        except NotImplementedError:
            if subdivision is None or country not in holidays.list_supported_countries():
                yield "holidays_country", f"no public holidays are known for country {country!r}"
            else:
                yield (
                    "holidays_subdivision",
                    f"{subdivision!r} is not a region of {country} the holidays package knows",
                )

    def exits(self) -> tuple[str, ...]:
        if self.params.get("holidays_closed", True):
            return (OPEN, CLOSED, HOLIDAY)
        return (OPEN, CLOSED)

    async def run(self, ctx: CallContext) -> str:
        if ctx.override is Override.OPEN:
            return OPEN
        return calendar_state(self.schedule, ctx.now())


translations = {
    "fr": {
        "Opening hours": "Horaires d'ouverture",
        "Branch on the time: open, closed or public holiday.": (
            "Oriente selon l'heure : ouvert, fermé ou jour férié."
        ),
        "Time zone": "Fuseau horaire",
        "Weekly opening hours": "Horaires de la semaine",
        "Days (1 = Monday … 7 = Sunday)": "Jours (1 = lundi … 7 = dimanche)",
        "From (HH:MM)": "De (HH:MM)",
        "To (HH:MM)": "À (HH:MM)",
        "Exceptions": "Exceptions",
        "Date": "Date",
        "Opening hours that day (none: closed all day)": (
            "Horaires ce jour-là (aucun : fermé toute la journée)"
        ),
        "Closed on public holidays": "Fermé les jours fériés",
        "Country of the public holidays": "Pays des jours fériés",
        "Region of the public holidays": "Région des jours fériés",
        "Open": "Ouvert",
        "Closed": "Fermé",
        "Public holiday": "Jour férié",
    }
}


@callcore.hookimpl
def register_ivr_nodes(registry: NodeRegistry) -> None:
    registry.add(CalendarNode)
