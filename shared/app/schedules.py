"""NCRONTAB schedules, as Functions timer triggers read them (six fields, seconds first).

The app derives intervals from its timer settings (the ingestion coalescing window, the purge
interval that bounds lateness), and the local host fires timers from the same parser.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta


def _field_values(expr: str, low: int, high: int) -> set[int]:
    values: set[int] = set()
    for item in expr.split(","):
        part, _, step_text = item.partition("/")
        step = int(step_text) if step_text else 1
        if part == "*":
            start, end = low, high
        elif "-" in part:
            a, b = part.split("-")
            start, end = int(a), int(b)
        else:
            start = end = int(part)
        values.update(range(start, end + 1, step))
    return values


@dataclass
class NCronTab:
    """Six-field NCRONTAB (second minute hour day month day-of-week), as Functions timers use."""

    seconds: set[int]
    minutes: set[int]
    hours: set[int]
    days: set[int]
    months: set[int]
    weekdays: set[int]

    @classmethod
    def parse(cls, text: str) -> NCronTab:
        parts = text.split()
        if len(parts) != 6:
            raise ValueError("NCRONTAB needs six fields")
        ranges = [(0, 59), (0, 59), (0, 23), (1, 31), (1, 12), (0, 6)]
        return cls(*(_field_values(p, lo, hi) for p, (lo, hi) in zip(parts, ranges, strict=True)))

    def next_after(self, moment: datetime) -> datetime:
        minute = moment.replace(second=0, microsecond=0)
        for _ in range(366 * 24 * 60):
            weekday = (minute.weekday() + 1) % 7  # NCRONTAB: 0 is Sunday
            if (
                minute.minute in self.minutes
                and minute.hour in self.hours
                and minute.day in self.days
                and minute.month in self.months
                and weekday in self.weekdays
            ):
                for second in sorted(self.seconds):
                    candidate = minute.replace(second=second)
                    if candidate > moment:
                        return candidate
            minute += timedelta(minutes=1)
        raise ValueError("schedule never fires")

    def period(self, start: datetime) -> timedelta:
        """The gap between two firings after `start` (the schedule's interval for regular ones)."""
        first = self.next_after(start)
        return self.next_after(first) - first
