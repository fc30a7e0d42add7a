"""Settlement periods: calendar days, weeks and months in a contract's own time zone."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo


class PeriodKind(StrEnum):
    DAY = "day"
    WEEK = "week"  # ISO weeks, Monday to Monday
    MONTH = "month"


@dataclass(frozen=True, slots=True, order=True)
class Period:
    """A half-open window [start, end) in UTC, labelled in the contract's time zone."""

    start: datetime
    end: datetime
    label: str

    def contains(self, when: datetime) -> bool:
        return self.start <= when < self.end


def _local_midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)


def period_of(when: datetime, kind: PeriodKind, timezone: str) -> Period:
    """The period containing ``when`` (aware), by the wall clock of ``timezone``."""
    zone = ZoneInfo(timezone)
    local = when.astimezone(zone).date()
    if kind is PeriodKind.DAY:
        first, after = local, local + timedelta(days=1)
        label = first.isoformat()
    elif kind is PeriodKind.WEEK:
        first = local - timedelta(days=local.weekday())
        after = first + timedelta(days=7)
        year, week, _ = first.isocalendar()
        label = f"{year}-W{week:02d}"
    else:
        first = local.replace(day=1)
        after = (first + timedelta(days=32)).replace(day=1)
        label = f"{first.year}-{first.month:02d}"
    return Period(_local_midnight(first, zone), _local_midnight(after, zone), label)


def next_period(period: Period, kind: PeriodKind, timezone: str) -> Period:
    return period_of(period.end, kind, timezone)


def period_from_label(label: str, kind: PeriodKind, timezone: str) -> Period:
    """The period a label names (the inverse of ``period_of(...).label``)."""
    zone = ZoneInfo(timezone)
    if kind is PeriodKind.DAY:
        first = date.fromisoformat(label)
    elif kind is PeriodKind.WEEK:
        year, week = label.split("-W")
        first = date.fromisocalendar(int(year), int(week), 1)
    else:
        year, month = label.split("-")
        first = date(int(year), int(month), 1)
    period = period_of(_local_midnight(first, zone), kind, timezone)
    if period.label != label:
        raise ValueError(f"{label!r} is not a {kind.value} label")
    return period
