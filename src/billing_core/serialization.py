"""JSON forms of every value, round-tripping exactly, with one cattrs converter.

* ``Decimal`` is a string (``"19.990"`` keeps its trailing zero; a JSON number would not).
* ``Money`` is ``{"amount": "19.99", "currency": "USD"}``.
* ``datetime`` is ISO 8601 with its offset; when it carries an IANA zone the zone follows in
  brackets (RFC 9557): ``"2026-03-29T10:00:00+01:00[Europe/London]"``, so a value read back does
  its calendar arithmetic in the same zone. ``date`` is ``"2026-11-21"``.
* ``Period`` is an ISO 8601 duration (``"P1M"``); ``Fraction`` is ``"17/31"``; enums are their
  string values. A ``timedelta`` (an issue or due shift) is a signed ISO 8601 duration in days
  and seconds: ``"P14D"``, ``"-P2D"``, ``"PT90S"``.

``structure`` refuses what is not a value: a float where an amount belongs, a naive datetime, an
unknown currency, a missing field, an extra field. It raises one ``StructureError`` whose
``errors`` lists every bad field as ``(path, reason)``, and whose message reads
``"invalid Transaction: must be finite @ $.amount.amount; required field missing @ $.created_at"``.
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import cattrs
from cattrs.errors import ClassValidationError, ForbiddenExtraKeysError, IterableValidationError

from .errors import BillingError, InvalidTypeError, InvalidValueError, StructureError, join_path
from .money import Money, to_decimal
from .periods import Period
from .timeutil import parse_datetime, timezone

__all__ = ["converter", "dumps", "loads", "structure", "unstructure"]

T = TypeVar("T")


def _expect(value: object, kind: type | tuple[type, ...], what: str) -> None:
    if not isinstance(value, kind) or isinstance(value, bool):
        raise InvalidTypeError(f"must be {what}, not {type(value).__name__}", field="", value=value)


def _structure_decimal(value: object, _t: type) -> Decimal:
    if isinstance(value, float):
        raise InvalidTypeError(
            'must be a decimal string such as "19.99", not a JSON float', field="", value=value
        )
    return to_decimal(value, "")


def _unstructure_money(m: Money) -> dict[str, str]:
    return {"amount": str(m.amount), "currency": m.currency}


def _structure_money(value: object, _t: type) -> Money:
    _expect(value, dict, 'an object {"amount": "...", "currency": "..."}')
    assert isinstance(value, dict)
    errors: list[tuple[str, str]] = []
    extra = set(value) - {"amount", "currency"}
    for key in sorted(extra, key=str):
        errors.append((f"$.{key}", "extra field not allowed"))
    for key in ("amount", "currency"):
        if key not in value:
            errors.append((f"$.{key}", "required field missing"))
    if errors:
        raise StructureError("invalid Money", errors=errors)
    amount = value["amount"]
    if isinstance(amount, float):
        raise InvalidTypeError(
            'must be a decimal string such as "19.99", not a JSON float',
            field="amount",
            value=amount,
        )
    return Money(amount, value["currency"])


def _unstructure_datetime(dt: datetime) -> str:
    text = dt.isoformat()
    key = getattr(dt.tzinfo, "key", None)
    if isinstance(dt.tzinfo, ZoneInfo) and key and key != "UTC":
        text += f"[{key}]"
    return text


def _structure_datetime(value: object, _t: type) -> datetime:
    _expect(value, str, "an ISO 8601 datetime string with an offset")
    assert isinstance(value, str)
    zone_name = None
    text = value
    if text.endswith("]") and "[" in text:
        text, _, zone_name = text[:-1].partition("[")
    dt = parse_datetime(text, "")
    if zone_name:
        zone = timezone(zone_name, "")
        local = dt.astimezone(zone)
        if local.utcoffset() != dt.utcoffset():
            # a wall time the zone skipped or repeated: keep it as written if either fold of
            # that wall time has the stated offset (an exact round trip), else it is corrupt
            for fold in (0, 1):
                candidate = dt.replace(tzinfo=zone, fold=fold)
                if candidate.utcoffset() == dt.utcoffset():
                    local = candidate
                    break
            else:
                raise InvalidValueError(
                    f"offset {dt.isoformat()[19:]} does not match zone {zone_name}",
                    field="",
                    value=value,
                )
        dt = local
    return dt


def _structure_date(value: object, _t: type) -> date:
    _expect(value, str, "an ISO 8601 date string")
    assert isinstance(value, str)
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InvalidValueError(
            f"must be an ISO 8601 date such as 2026-11-21, not {value!r}", field="", value=value
        ) from None


def _structure_period(value: object, _t: type) -> Period:
    _expect(value, str, "an ISO 8601 duration string such as P1M")
    assert isinstance(value, str)
    try:
        return Period.parse(value)
    except BillingError as err:
        err.field = None
        raise


_TIMEDELTA_RE = re.compile(r"^(-)?P(?:(\d+)D)?(?:T(\d+)(?:\.(\d{1,6}))?S)?$")


def _unstructure_timedelta(delta: timedelta) -> str:
    size = abs(delta)
    text = f"{size.days}D" if size.days or not (size.seconds or size.microseconds) else ""
    if size.seconds or size.microseconds:
        fraction = f".{size.microseconds:06d}" if size.microseconds else ""
        text += f"T{size.seconds}{fraction}S"
    return f"{'-' if delta < timedelta(0) else ''}P{text}"


def _structure_timedelta(value: object, _t: type) -> timedelta:
    _expect(value, str, "an ISO 8601 duration string such as P14D")
    assert isinstance(value, str)
    m = _TIMEDELTA_RE.match(value)
    if not m or value in ("P", "-P") or value.endswith("T"):
        raise InvalidValueError(
            f"must be a duration in days and seconds such as P14D or -P2D, not {value!r}",
            field="",
            value=value,
        )
    sign, days, seconds, fraction = m.groups()
    delta = timedelta(
        days=int(days or 0),
        seconds=int(seconds or 0),
        microseconds=int((fraction or "0").ljust(6, "0")),
    )
    return -delta if sign else delta


def _structure_fraction(value: object, _t: type) -> Fraction:
    if isinstance(value, int) and not isinstance(value, bool):
        return Fraction(value)
    _expect(value, str, 'a fraction string such as "17/31"')
    assert isinstance(value, str)
    try:
        return Fraction(value)
    except (ValueError, ZeroDivisionError):
        raise InvalidValueError(
            f"must be a fraction such as 17/31, not {value!r}", field="", value=value
        ) from None


def _structure_enum(value: object, cls: type[enum.Enum]) -> enum.Enum:
    try:
        return cls(value)
    except (ValueError, TypeError):
        allowed = ", ".join(str(m.value) for m in cls)
        raise InvalidValueError(
            f"must be one of {allowed}, not {value!r}", field="", value=value
        ) from None


def _structure_str(value: object, _t: type) -> str:
    _expect(value, str, "a string")
    assert isinstance(value, str)
    return value


def _structure_int(value: object, _t: type) -> int:
    _expect(value, int, "an integer")
    assert isinstance(value, int)
    return value


def _structure_bool(value: object, _t: type) -> bool:
    if not isinstance(value, bool):
        raise InvalidTypeError(
            f"must be true or false, not {type(value).__name__}", field="", value=value
        )
    return value


def _enum_value(member: enum.Enum) -> Any:
    return member.value


def make_converter() -> cattrs.Converter:
    """A fresh converter with billing_core's hooks; ``converter`` is the shared one."""
    c = cattrs.Converter(forbid_extra_keys=True, detailed_validation=True)
    c.register_unstructure_hook(Decimal, str)
    c.register_structure_hook(Decimal, _structure_decimal)
    c.register_unstructure_hook(Money, _unstructure_money)
    c.register_structure_hook(Money, _structure_money)
    c.register_unstructure_hook(datetime, _unstructure_datetime)
    c.register_structure_hook(datetime, _structure_datetime)
    c.register_unstructure_hook(date, date.isoformat)
    c.register_structure_hook(date, _structure_date)
    c.register_unstructure_hook(Period, Period.isoformat)
    c.register_structure_hook(Period, _structure_period)
    c.register_unstructure_hook(timedelta, _unstructure_timedelta)
    c.register_structure_hook(timedelta, _structure_timedelta)
    c.register_unstructure_hook(Fraction, str)
    c.register_structure_hook(Fraction, _structure_fraction)
    # StrEnums are also str: register on StrEnum itself so str's hooks do not win the dispatch.
    for base in (enum.Enum, enum.StrEnum, enum.IntEnum):
        c.register_structure_hook(base, _structure_enum)
        c.register_unstructure_hook(base, _enum_value)
    c.register_structure_hook(str, _structure_str)
    c.register_structure_hook(int, _structure_int)
    c.register_structure_hook(bool, _structure_bool)
    return c


converter = make_converter()


def unstructure(value: Any) -> Any:
    """The JSON-ready form (dicts, lists, strings) of a billing_core value."""
    return converter.unstructure(value)


def structure(data: Any, cls: type[T]) -> T:
    """Build a ``cls`` from its JSON-ready form; raises ``StructureError`` listing every bad field."""
    try:
        return converter.structure(data, cls)
    except StructureError:
        raise
    except Exception as exc:
        errors = list(_walk(exc, "$"))
        name = getattr(cls, "__name__", str(cls))
        raise StructureError(f"invalid {name}", errors=errors, value=data) from exc


def dumps(value: Any, **kwargs: Any) -> str:
    """JSON text of a value."""
    return json.dumps(unstructure(value), **kwargs)


def loads(text: str | bytes, cls: type[T]) -> T:
    """A value from JSON text. JSON floats are refused where amounts belong."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise StructureError("invalid JSON", errors=[("$", str(exc))], value=text) from None
    return structure(data, cls)


def _walk(exc: BaseException, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(exc, ClassValidationError):
        with_notes, without = exc.group_exceptions()
        for sub, note in with_notes:
            yield from _walk(sub, f"{path}.{note.name}")
        for sub in without:
            yield from _walk(sub, path)
    elif isinstance(exc, IterableValidationError):
        with_notes_i, without_i = exc.group_exceptions()
        for sub, inote in with_notes_i:
            yield from _walk(sub, f"{path}[{inote.index!r}]")
        for sub in without_i:
            yield from _walk(sub, path)
    elif isinstance(exc, ForbiddenExtraKeysError):
        for key in sorted(exc.extra_fields):
            yield (f"{path}.{key}", "extra field not allowed")
    elif isinstance(exc, StructureError):
        for sub_path, reason in exc.errors:
            yield (join_path(path, sub_path) or path, reason)
    elif isinstance(exc, BaseExceptionGroup):
        for member in exc.exceptions:
            yield from _walk(member, path)
    elif isinstance(exc, BillingError):
        yield (join_path(path, exc.field) or path, exc.reason)
    elif isinstance(exc, KeyError):
        yield (path, "required field missing")
    elif isinstance(exc, AttributeError | TypeError) and "argument" in str(exc):
        yield (path, f"not a valid object ({exc})")
    else:
        yield (path, f"invalid value ({type(exc).__name__}: {exc})")
