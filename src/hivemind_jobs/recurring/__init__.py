"""Recurring jobs: schedules (cron, intervals, calendars), the client and the scheduler."""

from hivemind_jobs.recurring.calendars import Calendar, CalendarRegistry, DailyTimeFrame, DayCalendar, WeekdayCalendar
from hivemind_jobs.recurring.client import RecurringJobClient, RecurringNotFoundError
from hivemind_jobs.recurring.model import (
    Misfire,
    NextRunBase,
    RecurringDefinition,
    RecurringJob,
    RecurringSettings,
    RecurringStats,
)
from hivemind_jobs.recurring.schedule import Schedule, cron, every

__all__ = [
    "Calendar",
    "CalendarRegistry",
    "DailyTimeFrame",
    "DayCalendar",
    "Misfire",
    "NextRunBase",
    "RecurringDefinition",
    "RecurringJob",
    "RecurringJobClient",
    "RecurringNotFoundError",
    "RecurringSettings",
    "RecurringStats",
    "Schedule",
    "WeekdayCalendar",
    "cron",
    "every",
]
