"""Metered billing: aggregate a period's usage, clamp it, price it, and close it into a line.

The steps, each usable on its own:

1. ``aggregate(events, strategy=..., start=..., end=...)`` reduces the usage events of the
   service period ``[start, end)`` to one figure: ``sum`` of the reported quantities, the ``last``
   reported quantity (the latest ``at``; on a tie the later event in the input), their ``max``,
   the ``count`` of events, or the ``unique_count`` of one event property's distinct values
   (``unique_by="user_id"``). Events outside the period are ignored, an event exactly at
   ``start`` counts and one exactly at ``end`` does not. An empty period aggregates to 0.
2. ``billable_quantity(value, minimum=..., maximum=...)`` clamps the figure to the price's
   minimum and maximum quantity, whatever was reported.
3. The price's model (``billing_core.rules.pricing``) turns the quantity into a charge.
4. ``close_period(events, price=..., start=..., end=...)`` does the three and returns the
   ``InvoiceLine`` (kind ``usage``) with a sentence that shows every figure.

**Duplicates.** Usage is usually delivered at least once, so the same event id may arrive
twice: it counts once, the first delivery in the input wins. Dedup applies to the events inside
the period (an event outside is dropped before its id is looked at). It needs memory, and the
``dedup`` argument says how much:

* ``Dedup.BY_ID`` (the default) keeps the set of ids seen in the period: memory grows with the
  number of *distinct event ids in the period* (about 90 bytes per id), whatever the order.
* ``Dedup.SORTED_BY_ID`` keeps only the previous id: constant memory, for a stream ordered by
  event id (``ORDER BY id`` in the store). The order is checked: an id smaller than the one
  before raises ``InvalidValueError`` naming ``events[i].id``, so a wrong promise is never a
  silent double count.

Apart from that set, ``sum``, ``last``, ``max`` and ``count`` run in constant memory over any
iterable (a list, a generator, a file reader), in one pass; ``unique_count`` holds the distinct
values. Metered prices are postpaid only: ``MeteredPrice(timing="in_advance")`` raises
``ConfigurationError`` when it is built.
"""

from __future__ import annotations

import collections
import decimal
import enum
from collections.abc import Iterable, Iterator
from datetime import datetime, tzinfo
from decimal import Decimal
from typing import Any

import attrs

from ..errors import BillingError, ConfigurationError, InvalidTypeError, InvalidValueError
from ..model import InvoiceLine, InvoiceLineKind, UsageEvent
from ..money import Money, to_decimal
from ..plans import BillingTiming  # lives in the values layer; re-exported here
from ..timeutil import local_date, require_aware
from ..timeutil import timezone as _timezone
from .pricing import Charge, PerUnit, PricingModel, check_model

__all__ = [
    "Aggregation",
    "BillingTiming",
    "Dedup",
    "MeteredPrice",
    "Usage",
    "UsageCharge",
    "aggregate",
    "billable_quantity",
    "close_period",
]


# Exact sums: enough digits that adding realistic quantities never rounds (Inexact would raise).
_EXACT = decimal.Context(prec=100, traps=[decimal.Inexact])


class Aggregation(enum.StrEnum):
    """How a period's usage events become one figure."""

    SUM = "sum"
    LAST = "last"
    MAX = "max"
    COUNT = "count"
    UNIQUE_COUNT = "unique_count"


class Dedup(enum.StrEnum):
    """How duplicate event ids are found; see the module docstring for the memory each needs."""

    BY_ID = "by_id"
    SORTED_BY_ID = "sorted_by_id"


def _member(kind: type[enum.StrEnum], value: object, field: str) -> Any:
    if isinstance(value, kind):
        return value
    try:
        return kind(value)  # type: ignore[arg-type]
    except ValueError:
        allowed = ", ".join(m.value for m in kind)
        raise InvalidValueError(
            f"must be one of {allowed}, not {value!r}", field=field, value=value
        ) from None


# -- aggregation -----------------------------------------------------------------------------
@attrs.frozen(kw_only=True)
class Usage:
    """A period's aggregated usage.

    ``value`` is the figure (0 for an empty period), ``count`` the number of distinct events
    counted in the period, ``duplicates`` the repeated deliveries skipped and ``outside`` the
    events outside ``[start, end)``. ``last_at`` is the instant of the event ``last`` chose.
    """

    strategy: Aggregation
    value: Decimal
    count: int
    start: datetime
    end: datetime
    duplicates: int = 0
    outside: int = 0
    unique_by: str | None = None
    last_at: datetime | None = None

    @property
    def explanation(self) -> str:
        """``sum of 1,250 over 37 events from ... to ... (end excluded); ...``."""
        events = _plural(self.count, "event")
        if self.strategy is Aggregation.SUM:
            what = f"sum of {_num(self.value)} over {events}"
        elif self.strategy is Aggregation.MAX:
            what = f"maximum of {_num(self.value)} over {events}"
        elif self.strategy is Aggregation.LAST:
            at = f" (at {self.last_at.isoformat()})" if self.last_at is not None else ""
            what = f"last reported {_num(self.value)}{at} of {events}"
        elif self.strategy is Aggregation.COUNT:
            what = f"count of {events}"
        else:
            what = f"{_num(self.value)} distinct {self.unique_by} over {events}"
        text = f"{what} from {self.start.isoformat()} to {self.end.isoformat()} (end excluded)"
        ignored = []
        if self.duplicates:
            ignored.append(_plural(self.duplicates, "duplicate delivery", "duplicate deliveries"))
        if self.outside:
            ignored.append(_plural(self.outside, "event") + " outside the period")
        if ignored:
            text += "; ignored " + " and ".join(ignored)
        return text


def _plural(n: int, word: str, words: str | None = None) -> str:
    return f"{n:,} {word if n == 1 else (words or word + 's')}"


def _num(q: Decimal) -> str:
    return f"{q.normalize():,f}" if q == q.to_integral_value() else f"{q:,f}"


class _Tally:
    __slots__ = ("counted", "duplicates", "outside")

    def __init__(self) -> None:
        self.counted = self.duplicates = self.outside = 0


def _not_event(i: int, e: object) -> InvalidTypeError:
    return InvalidTypeError(
        f"must be a UsageEvent, not {type(e).__name__}", field=f"events[{i}]", value=e
    )


def _property(i: int, e: UsageEvent, key: str) -> object:
    try:
        value = e.properties[key]
    except KeyError:
        raise InvalidValueError(
            f"missing; unique_count needs every counted event to carry {key!r}",
            field=f"events[{i}].properties.{key}",
        ) from None
    try:
        hash(value)
    except TypeError:
        raise InvalidTypeError(
            f"must be hashable (a str or number) to be counted, not {type(value).__name__}",
            field=f"events[{i}].properties.{key}",
            value=value,
        ) from None
    return value


def _by_id(
    events: Iterable[UsageEvent], start: datetime, end: datetime, key: str | None, t: _Tally
) -> Iterator[Any]:
    """The first delivery of each event in the period (or its ``key`` property), via a set.

    The index of the current event is ``n + dup + out`` (no ``enumerate``: this is the hot loop).
    """
    seen: set[str] = set()
    add = seen.add
    kind = UsageEvent
    n = dup = out = 0
    try:
        for e in events:
            if e.__class__ is not kind and not isinstance(e, kind):
                raise _not_event(n + dup + out, e)
            at = e.at
            if at < start or at >= end:
                out += 1
                continue
            eid = e.id
            if eid in seen:
                dup += 1
                continue
            add(eid)
            yield e if key is None else _property(n + dup + out, e, key)
            n += 1
    finally:
        t.counted, t.duplicates, t.outside = n, dup, out


def _sorted_by_id(
    events: Iterable[UsageEvent], start: datetime, end: datetime, key: str | None, t: _Tally
) -> Iterator[Any]:
    """As ``_by_id`` for a stream ordered by id: keeps only the previous id, checks the order."""
    previous = ""  # ids are non-empty, so every id is above it
    kind = UsageEvent
    n = dup = out = 0
    try:
        for e in events:
            if e.__class__ is not kind and not isinstance(e, kind):
                raise _not_event(n + dup + out, e)
            at = e.at
            if at < start or at >= end:
                out += 1
                continue
            eid = e.id
            if eid <= previous:
                if eid == previous:
                    dup += 1
                    continue
                raise InvalidValueError(
                    f"must not be below the previous id {previous!r}: dedup='sorted_by_id' "
                    "needs the events ordered by id",
                    field=f"events[{n + dup + out}].id",
                    value=eid,
                )
            previous = eid
            yield e if key is None else _property(n + dup + out, e, key)
            n += 1
    finally:
        t.counted, t.duplicates, t.outside = n, dup, out


def aggregate(
    events: Iterable[UsageEvent],
    *,
    strategy: Aggregation | str,
    start: datetime,
    end: datetime,
    unique_by: str | None = None,
    dedup: Dedup | str = Dedup.BY_ID,
) -> Usage:
    """Aggregate the usage of ``[start, end)`` in one pass over ``events``; see the module doc.

    ``strategy`` is an ``Aggregation`` or its string; ``unique_by`` names the event property
    whose distinct values ``unique_count`` counts (required for it, refused for the others).
    """
    kind: Aggregation = _member(Aggregation, strategy, "strategy")
    mode: Dedup = _member(Dedup, dedup, "dedup")
    require_aware(start, "start")
    require_aware(end, "end")
    if end <= start:
        raise InvalidValueError(f"must be after start {start.isoformat()}", field="end", value=end)
    if kind is Aggregation.UNIQUE_COUNT:
        if not isinstance(unique_by, str) or not unique_by:
            raise InvalidValueError(
                "must name the event property that unique_count counts",
                field="unique_by",
                value=unique_by,
            )
    elif unique_by is not None:
        raise InvalidValueError(
            f"only applies to unique_count, not {kind.value}", field="unique_by", value=unique_by
        )
    if isinstance(events, (str, bytes)) or not isinstance(events, Iterable):
        raise InvalidTypeError(
            f"must be an iterable of UsageEvent, not {type(events).__name__}",
            field="events",
            value=events,
        )
    tally = _Tally()
    stream = (_by_id if mode is Dedup.BY_ID else _sorted_by_id)(
        events, start, end, unique_by, tally
    )
    last_at: datetime | None = None
    value = Decimal(0)
    if kind is Aggregation.SUM:
        add = _EXACT.add
        for e in stream:
            value = add(value, e.quantity)
    elif kind is Aggregation.MAX:
        for e in stream:
            if e.quantity > value:
                value = e.quantity
    elif kind is Aggregation.LAST:
        for e in stream:
            at = e.at
            if last_at is None or at >= last_at:
                last_at, value = at, e.quantity
    elif kind is Aggregation.COUNT:
        collections.deque(stream, maxlen=0)
    else:
        value = Decimal(len(set(stream)))
    if kind is Aggregation.COUNT:
        value = Decimal(tally.counted)
    return Usage(
        strategy=kind,
        value=value,
        count=tally.counted,
        start=start,
        end=end,
        duplicates=tally.duplicates,
        outside=tally.outside,
        unique_by=unique_by,
        last_at=last_at,
    )


# -- clamping --------------------------------------------------------------------------------
def _optional_quantity(value: object, field: str) -> Decimal | None:
    if value is None:
        return None
    q = to_decimal(value, field)
    if q < 0:
        raise InvalidValueError("must not be negative", field=field, value=value)
    return q


def _check_bounds(minimum: Decimal | None, maximum: Decimal | None) -> None:
    if minimum is not None and maximum is not None and minimum > maximum:
        raise ConfigurationError(
            f"must not exceed the maximum quantity {_num(maximum)}", field="minimum", value=minimum
        )


def billable_quantity(
    value: Decimal | int | str,
    *,
    minimum: Decimal | int | str | None = None,
    maximum: Decimal | int | str | None = None,
) -> Decimal:
    """``value`` clamped to ``[minimum, maximum]`` (either may be None), whatever was reported.

    A minimum above the maximum is a ``ConfigurationError``.
    """
    q = to_decimal(value, "value")
    if q < 0:
        raise InvalidValueError("must not be negative", field="value", value=value)
    low = _optional_quantity(minimum, "minimum")
    high = _optional_quantity(maximum, "maximum")
    _check_bounds(low, high)
    if low is not None and q < low:
        return low
    if high is not None and q > high:
        return high
    return q


# -- prices and closing a period -------------------------------------------------------------
def _strategy(value: object) -> Aggregation:
    result: Aggregation = _member(Aggregation, value, "strategy")
    return result


def _timing(value: object) -> BillingTiming:
    result: BillingTiming = _member(BillingTiming, value, "timing")
    return result


def _minimum(value: object) -> Decimal | None:
    return _optional_quantity(value, "minimum")


def _maximum(value: object) -> Decimal | None:
    return _optional_quantity(value, "maximum")


@attrs.frozen(kw_only=True)
class MeteredPrice:
    """A metered price: how usage is aggregated and clamped, and the model that prices it.

    ``timing`` is the billing timing of the plan the price belongs to; metered usage is only
    known at the end of the period, so ``"in_advance"`` (prepaid) raises ``ConfigurationError``.
    """

    model: PricingModel = attrs.field()
    strategy: Aggregation = attrs.field(default=Aggregation.SUM, converter=_strategy)
    unique_by: str | None = None
    minimum: Decimal | None = attrs.field(default=None, converter=_minimum)
    maximum: Decimal | None = attrs.field(default=None, converter=_maximum)
    timing: BillingTiming = attrs.field(default=BillingTiming.IN_ARREARS, converter=_timing)
    description: str = "Usage"

    def __attrs_post_init__(self) -> None:
        check_model(self.model, "model")
        if self.timing is not BillingTiming.IN_ARREARS:
            raise ConfigurationError(
                "a metered price is billed in arrears (postpaid) only; usage is not known in "
                "advance, so it cannot be on a prepaid plan",
                field="timing",
                value=self.timing,
            )
        _check_bounds(self.minimum, self.maximum)
        if (self.strategy is Aggregation.UNIQUE_COUNT) != (self.unique_by is not None):
            raise ConfigurationError(
                "names the property unique_count counts: required for it, refused otherwise",
                field="unique_by",
                value=self.unique_by,
            )
        if self.unique_by is not None and not isinstance(self.unique_by, str):
            raise InvalidTypeError("must be a str", field="unique_by", value=self.unique_by)
        if not isinstance(self.description, str):
            raise InvalidTypeError("must be a str", field="description", value=self.description)

    @property
    def currency(self) -> str:
        return self.model.currency


@attrs.frozen(kw_only=True)
class UsageCharge:
    """A closed metered period: the usage, the billable quantity, the charge and its line."""

    usage: Usage
    quantity: Decimal
    clamped: str | None  # "minimum", "maximum" or None
    charge: Charge
    lines: tuple[InvoiceLine, ...]
    explanation: str

    @property
    def amount(self) -> Money:
        """The rounded charge."""
        return self.charge.amount


def close_period(
    events: Iterable[UsageEvent],
    *,
    price: MeteredPrice,
    start: datetime,
    end: datetime,
    subscription_id: str | None = None,
    timezone: str | tzinfo | None = None,
    dedup: Dedup | str = Dedup.BY_ID,
) -> UsageCharge:
    """Aggregate ``[start, end)``, clamp, price and explain: one ``InvoiceLine`` of kind usage.

    The line's ``amount`` is the charge rounded once, ``exact_amount`` the figure before
    rounding, ``quantity`` the billable quantity, ``unit_price`` the price per unit when the
    model has one (per unit, volume), and ``period_start``/``period_end`` the local dates of
    ``start``/``end`` in ``timezone`` (their own offset when None), end excluded.
    """
    if not isinstance(price, MeteredPrice):
        raise InvalidTypeError(
            f"must be a MeteredPrice, not {type(price).__name__}", field="price", value=price
        )
    tz = None if timezone is None else _timezone(timezone)
    usage = aggregate(
        events,
        strategy=price.strategy,
        start=start,
        end=end,
        unique_by=price.unique_by,
        dedup=dedup,
    )
    quantity = billable_quantity(usage.value, minimum=price.minimum, maximum=price.maximum)
    clamped = None
    if quantity > usage.value:
        clamped = "minimum"
    elif quantity < usage.value:
        clamped = "maximum"
    charge = price.model.price(quantity)
    unit_price = None
    if isinstance(price.model, PerUnit):
        unit_price = price.model.unit_price
    elif len(charge.lines) == 1 and charge.lines[0].quantity == quantity:
        unit_price = charge.lines[0].unit_price  # volume: every unit at one price
    period_start, period_end = local_date(start, tz), local_date(end, tz)
    try:
        line = InvoiceLine(
            description=f"{price.description}, {_num(quantity)} billable "
            f"({period_start.isoformat()} to {period_end.isoformat()}, end excluded)",
            amount=charge.amount,
            kind=InvoiceLineKind.USAGE,
            quantity=quantity,
            unit_price=unit_price,
            exact_amount=charge.exact,
            period_start=period_start,
            period_end=period_end,
            subscription_id=subscription_id,
        )
    except BillingError as err:  # pragma: no cover - every figure was checked above
        raise err.at("line") from None
    if clamped is None:
        billable = f"billable quantity {_num(quantity)}"
    else:
        bound = "raised to the minimum" if clamped == "minimum" else "capped at the maximum"
        billable = f"billable quantity {_num(quantity)} ({bound}, {_num(usage.value)} reported)"
    explanation = f"{price.description}: {usage.explanation}; {billable}; {charge.explanation}."
    return UsageCharge(
        usage=usage,
        quantity=quantity,
        clamped=clamped,
        charge=charge,
        lines=(line,),
        explanation=explanation,
    )
