"""Budget periods: they start at midnight UTC (a day, a Monday, the first of a month)."""

from __future__ import annotations

import datetime as dt
from typing import Literal

Period = Literal["daily", "weekly", "monthly"]


def period_start(now: dt.datetime, period: Period) -> dt.datetime:
    day = now.astimezone(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "daily":
        return day
    if period == "weekly":
        return day - dt.timedelta(days=day.weekday())
    return day.replace(day=1)


def period_end(start: dt.datetime, period: Period) -> dt.datetime:
    if period == "daily":
        return start + dt.timedelta(days=1)
    if period == "weekly":
        return start + dt.timedelta(weeks=1)
    return (start.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
