"""Calendar durations such as ``30d``, ``1y6m`` or ``2w12h`` (keep-within).

Years, months, weeks and days are calendar units: they move the wall clock of the declared
timezone, so "1d" before 10:00 on the day after a DST change is 10:00 the day before, 23 or 25
real hours earlier. Hours are real (elapsed) hours. A month back from the 31st lands on the last
day of a shorter month (March 31 - 1m = February 28 or 29), never spills into the next month.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

_PART = re.compile(r"(\d+)([ymwdh])")
_WHOLE = re.compile(r"^(\d+[ymwdh])+$")
_ORDER = "ymwdh"


class DurationError(ValueError):
    """A duration string that cannot be read."""


@dataclass(frozen=True)
class CalendarDuration:
    years: int = 0
    months: int = 0
    days: int = 0
    hours: int = 0

    @classmethod
    def parse(cls, text: str) -> CalendarDuration:
        """``1y6m``, ``30d``, ``2w``, ``36h``: units y(ears), m(onths), w(eeks), d(ays), h(ours), each at
        most once, largest first."""
        raw = text.strip().lower()
        if not _WHOLE.match(raw):
            raise DurationError(f"duration {text!r} is not valid: use numbers with units y, m, w, d, h "
                                "(months are m), e.g. 30d, 1y6m, 2w, 36h")
        units = [unit for _, unit in _PART.findall(raw)]
        if len(set(units)) != len(units) or units != sorted(units, key=_ORDER.index):
            raise DurationError(f"duration {text!r} is not valid: give each unit once, largest first (1y6m2d)")
        values = {unit: int(number) for number, unit in _PART.findall(raw)}
        duration = cls(years=values.get("y", 0), months=values.get("m", 0),
                       days=values.get("d", 0) + 7 * values.get("w", 0), hours=values.get("h", 0))
        if duration.is_zero():
            raise DurationError(f"duration {text!r} is zero")
        return duration

    def is_zero(self) -> bool:
        return not (self.years or self.months or self.days or self.hours)

    def before(self, moment: datetime, tz: ZoneInfo) -> datetime:
        """``moment`` minus this duration: calendar units on the wall clock of ``tz``, then real hours."""
        local = moment.astimezone(tz)
        month_index = local.year * 12 + (local.month - 1) - self.years * 12 - self.months
        year, month = divmod(month_index, 12)
        month += 1
        day = min(local.day, calendar.monthrange(year, month)[1])
        wall = local.replace(year=year, month=month, day=day, fold=0) - timedelta(days=self.days)
        # the wall time may not exist (spring forward) or exist twice (fall back): resolve it in tz
        resolved = datetime(wall.year, wall.month, wall.day, wall.hour, wall.minute, wall.second,
                            wall.microsecond, tzinfo=tz, fold=local.fold)
        # aware arithmetic in one zone moves the wall clock: real hours are counted in UTC
        return (resolved.astimezone(UTC) - timedelta(hours=self.hours)).astimezone(tz)

    def __str__(self) -> str:
        parts = [(self.years, "y"), (self.months, "m"), (self.days, "d"), (self.hours, "h")]
        return "".join(f"{n}{u}" for n, u in parts if n) or "0h"
