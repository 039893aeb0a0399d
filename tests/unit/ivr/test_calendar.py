"""The calendar node's time logic: wall-clock ranges across DST changes, public holidays from
the ``holidays`` package, exceptions, and the local date deciding which day's rules apply."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from callcore.ivr_nodes.calendar import CLOSED, HOLIDAY, OPEN, Schedule, calendar_state

OFFICE = {"days": [1, 2, 3, 4, 5], "start": "09:00", "end": "18:00"}


def schedule(**params: Any) -> Schedule:
    return Schedule.from_params({"hours": [OFFICE], **params})


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def open_minutes(rules: Schedule, day_start: datetime) -> int:
    """How many real minutes of the 24 hours from ``day_start`` are open."""
    return sum(
        calendar_state(rules, day_start + timedelta(minutes=m)) == OPEN for m in range(24 * 60)
    )


# -- weekly hours ------------------------------------------------------------------------------


def test_weekly_hours_are_local_wall_clock_time_with_the_end_excluded() -> None:
    rules = schedule()
    # Tuesday 4 February 2025, Paris is UTC+1
    assert calendar_state(rules, utc(2025, 2, 4, 7, 59)) == CLOSED
    assert calendar_state(rules, utc(2025, 2, 4, 8, 0)) == OPEN
    assert calendar_state(rules, utc(2025, 2, 4, 16, 59)) == OPEN
    assert calendar_state(rules, utc(2025, 2, 4, 17, 0)) == CLOSED
    # Saturday: no range lists day 6
    assert calendar_state(rules, utc(2025, 2, 8, 10, 0)) == CLOSED


def test_summer_time_moves_the_opening_in_utc() -> None:
    rules = schedule()
    # Tuesday 3 June 2025, Paris is UTC+2: 09:00 local is 07:00 UTC
    assert calendar_state(rules, utc(2025, 6, 3, 7, 0)) == OPEN
    assert calendar_state(rules, utc(2025, 6, 3, 16, 0)) == CLOSED


def test_several_ranges_a_day_and_end_of_day() -> None:
    rules = Schedule.from_params(
        {
            "holidays_closed": False,
            "hours": [
                {"days": [6], "start": "09:00", "end": "12:00"},
                {"days": [6], "start": "14:00", "end": "24:00"},
            ],
        }
    )
    # Saturday 8 February 2025
    assert calendar_state(rules, utc(2025, 2, 8, 10, 0)) == OPEN  # 11:00
    assert calendar_state(rules, utc(2025, 2, 8, 12, 30)) == CLOSED  # 13:30
    assert calendar_state(rules, utc(2025, 2, 8, 22, 59)) == OPEN  # 23:59
    assert calendar_state(rules, utc(2025, 2, 8, 23, 0)) == CLOSED  # Sunday 00:00


def test_another_time_zone() -> None:
    rules = schedule(timezone="America/New_York", holidays_country="US")
    # Tuesday 4 February 2025, New York is UTC-5
    assert calendar_state(rules, utc(2025, 2, 4, 13, 59)) == CLOSED  # 08:59
    assert calendar_state(rules, utc(2025, 2, 4, 14, 0)) == OPEN  # 09:00
    assert calendar_state(rules, utc(2025, 2, 4, 22, 59)) == OPEN  # 17:59
    assert calendar_state(rules, utc(2025, 2, 4, 23, 0)) == CLOSED  # 18:00
    assert calendar_state(rules, utc(2025, 7, 4, 15, 0)) == HOLIDAY  # Independence Day


def test_an_aware_time_is_required() -> None:
    with pytest.raises(ValueError, match="aware datetime"):
        calendar_state(schedule(), datetime(2025, 2, 4, 10, 0))


# -- daylight saving time in Europe/Paris --------------------------------------------------------

NIGHT = {"holidays_closed": False, "hours": [{"days": [7], "start": "01:00", "end": "03:00"}]}


def test_spring_forward_01_to_03_is_open_one_real_hour() -> None:
    """Sunday 30 March 2025: 02:00 CET becomes 03:00 CEST at 01:00 UTC; 02:xx never exists."""
    rules = Schedule.from_params(NIGHT)
    assert calendar_state(rules, utc(2025, 3, 29, 23, 59)) == CLOSED  # 00:59 CET
    assert calendar_state(rules, utc(2025, 3, 30, 0, 0)) == OPEN  # 01:00 CET
    assert calendar_state(rules, utc(2025, 3, 30, 0, 59)) == OPEN  # 01:59 CET
    assert calendar_state(rules, utc(2025, 3, 30, 1, 0)) == CLOSED  # 03:00 CEST
    assert open_minutes(rules, utc(2025, 3, 29, 22, 0)) == 60


def test_a_range_inside_the_spring_gap_never_opens() -> None:
    rules = Schedule.from_params(
        {"holidays_closed": False, "hours": [{"days": [7], "start": "02:00", "end": "02:30"}]}
    )
    assert open_minutes(rules, utc(2025, 3, 29, 22, 0)) == 0
    assert open_minutes(rules, utc(2025, 4, 5, 22, 0)) == 30  # the next Sunday it does


def test_fall_back_01_to_03_is_open_three_real_hours() -> None:
    """Sunday 26 October 2025: 03:00 CEST becomes 02:00 CET at 01:00 UTC; 02:xx happens twice."""
    rules = Schedule.from_params(NIGHT)
    assert calendar_state(rules, utc(2025, 10, 25, 22, 59)) == CLOSED  # 00:59 CEST
    assert calendar_state(rules, utc(2025, 10, 25, 23, 0)) == OPEN  # 01:00 CEST
    assert calendar_state(rules, utc(2025, 10, 26, 0, 30)) == OPEN  # 02:30 CEST, first pass
    assert calendar_state(rules, utc(2025, 10, 26, 1, 30)) == OPEN  # 02:30 CET, second pass
    assert calendar_state(rules, utc(2025, 10, 26, 2, 0)) == CLOSED  # 03:00 CET
    assert open_minutes(rules, utc(2025, 10, 25, 22, 0)) == 180


# -- public holidays -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("when", "name"),
    [
        (utc(2025, 5, 1, 10, 0), "Labour Day, a Thursday"),
        (utc(2025, 7, 14, 10, 0), "Bastille Day, a Monday"),
        (utc(2025, 4, 21, 10, 0), "Easter Monday 2025"),
        (utc(2025, 5, 29, 10, 0), "Ascension 2025, 39 days after Easter"),
        (utc(2025, 6, 9, 10, 0), "Pentecost Monday 2025, 50 days after Easter"),
        (utc(2024, 5, 9, 10, 0), "Ascension 2024"),
        (utc(2024, 5, 20, 10, 0), "Pentecost Monday 2024"),
    ],
)
def test_french_public_holidays_take_the_holiday_exit(when: datetime, name: str) -> None:
    assert calendar_state(schedule(), when) == HOLIDAY, name
    assert calendar_state(schedule(), when + timedelta(days=14)) == OPEN  # same weekday


def test_the_holiday_is_the_local_date_not_the_utc_one() -> None:
    rules = schedule(hours=[{"days": [1, 2, 3, 4, 5, 6, 7], "start": "00:00", "end": "24:00"}])
    assert calendar_state(rules, utc(2025, 7, 13, 22, 30)) == HOLIDAY  # 00:30 on 14 July
    assert calendar_state(rules, utc(2025, 7, 14, 22, 30)) == OPEN  # 00:30 on 15 July


def test_holidays_can_be_ignored() -> None:
    assert calendar_state(schedule(holidays_closed=False), utc(2025, 7, 14, 10, 0)) == OPEN


def test_a_subdivision_adds_its_own_holidays() -> None:
    good_friday = utc(2025, 4, 18, 10, 0)
    assert calendar_state(schedule(), good_friday) == OPEN
    assert calendar_state(schedule(holidays_subdivision="57"), good_friday) == HOLIDAY  # Moselle


def test_another_countrys_holidays() -> None:
    rules = schedule(holidays_country="DE")
    assert calendar_state(rules, utc(2025, 10, 3, 10, 0)) == HOLIDAY  # German Unity Day
    assert calendar_state(rules, utc(2025, 7, 14, 10, 0)) == OPEN


# -- exceptions ------------------------------------------------------------------------------


def test_an_exception_without_hours_closes_the_whole_day() -> None:
    rules = schedule(exceptions=[{"date": "2025-02-04"}])
    assert calendar_state(rules, utc(2025, 2, 4, 10, 0)) == CLOSED
    assert calendar_state(rules, utc(2025, 2, 5, 10, 0)) == OPEN


def test_an_exception_with_hours_replaces_the_days_hours_even_on_a_holiday() -> None:
    rules = schedule(
        exceptions=[
            {"date": "2025-07-14", "hours": [{"start": "10:00", "end": "12:00"}]},
            {"date": "2025-02-08", "hours": [{"start": "09:00", "end": "10:00"}]},
        ]
    )
    assert calendar_state(rules, utc(2025, 7, 14, 9, 0)) == OPEN  # 11:00 on Bastille Day
    assert calendar_state(rules, utc(2025, 7, 14, 11, 0)) == CLOSED  # 13:00, not a holiday
    assert calendar_state(rules, utc(2025, 2, 8, 8, 30)) == OPEN  # a Saturday opened
    assert calendar_state(rules, utc(2025, 2, 8, 9, 0)) == CLOSED
