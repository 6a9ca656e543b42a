"""Time values: aware datetimes, timezones and local calendar dates.

Every instant billing_core accepts is a timezone-aware ``datetime`` (stdlib with ``zoneinfo``, or
pendulum's, which subclasses it); a naive one raises ``NaiveDatetimeError``. Days are counted on
*local calendar dates*: the date a customer sees on their own calendar, in their own timezone.
Hot paths use ``datetime``/``date`` ordinals; pendulum is used only at the edges (parsing text).
"""

from __future__ import annotations

import functools
from datetime import UTC, date, datetime, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .errors import InvalidTypeError, InvalidValueError, NaiveDatetimeError, UnknownTimezoneError

__all__ = [
    "UTC",
    "local_date",
    "parse_datetime",
    "require_aware",
    "require_date",
    "timezone",
]


def require_aware(value: object, field: str) -> datetime:
    """Return ``value`` if it is an aware datetime; raise naming ``field`` otherwise."""
    if not isinstance(value, datetime):
        raise InvalidTypeError(
            f"must be a timezone-aware datetime, not {type(value).__name__}",
            field=field,
            value=value,
        )
    if value.tzinfo is None or value.utcoffset() is None:
        raise NaiveDatetimeError(
            "must be timezone-aware (a naive datetime names no instant)", field=field, value=value
        )
    return value


def require_date(value: object, field: str) -> date:
    """Return ``value`` if it is a plain ``date`` (not a datetime); raise naming ``field`` otherwise."""
    if isinstance(value, datetime) or not isinstance(value, date):
        raise InvalidTypeError(
            f"must be a date, not {type(value).__name__}", field=field, value=value
        )
    return value


@functools.lru_cache(maxsize=512)
def _zone(name: str) -> tzinfo:
    if name.upper() == "UTC":
        return UTC
    return ZoneInfo(name)


def timezone(name: str | tzinfo, field: str = "timezone") -> tzinfo:
    """A tzinfo from an IANA name (``"Europe/London"``) or a tzinfo; unknown names raise."""
    if isinstance(name, tzinfo):
        return name
    if not isinstance(name, str):
        raise InvalidTypeError(
            f"must be an IANA timezone name, not {type(name).__name__}", field=field, value=name
        )
    try:
        return _zone(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise UnknownTimezoneError(f"unknown timezone {name!r}", field=field, value=name) from None


def local_date(moment: datetime | date, tz: tzinfo | None = None) -> date:
    """The calendar date of ``moment`` in ``tz`` (or in its own timezone when ``tz`` is None).

    A plain ``date`` is returned as it is.
    """
    if isinstance(moment, datetime):
        if tz is not None:
            moment = moment.astimezone(tz)
        return moment.date()
    return moment


def parse_datetime(text: str, field: str = "datetime") -> datetime:
    """Parse ISO 8601 text with an offset (``2026-11-21T10:00:00+01:00``) into an aware datetime."""
    if not isinstance(text, str):
        raise InvalidTypeError(
            f"must be an ISO 8601 string, not {type(text).__name__}", field=field, value=text
        )
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        value = _parse_with_pendulum(text, field)
    return require_aware(value, field)


def _parse_with_pendulum(text: str, field: str) -> datetime:
    import pendulum  # at the edge only: slower, but reads the ISO 8601 forms stdlib does not

    try:
        parsed = pendulum.parse(text, exact=True)
    except Exception:
        raise InvalidValueError(
            f"must be an ISO 8601 datetime, not {text!r}", field=field, value=text
        ) from None
    if not isinstance(parsed, datetime):
        raise InvalidValueError(
            f"must be an ISO 8601 datetime with a time and offset, not {text!r}",
            field=field,
            value=text,
        )
    if "T" not in text.upper() and " " not in text:
        raise InvalidValueError(
            f"must include a time and offset, not {text!r}", field=field, value=text
        )
    return parsed
