"""Mid-term changes to a subscription and the invoice lines they produce (SPEC 3.3).

* **Inventory added to the running term** (certificates, seats): ``unit price × added quantity ×
  remaining part of the term``, one ``PRORATION`` line billed on the next invoice.
* **Renewal inventory changed**: nothing is charged now; the new quantities take effect at the
  renewal, at the full price (see ``rules.renewal``).
* **Price or plan changed mid-term**: the unused part of the old price is credited and the
  remaining part of the new one charged, as two separate lines per certificate type: a
  ``CREDIT`` line (negative amount) and a ``PRORATION`` line.

Every line is priced as quantity × unit price × fraction, computed exactly and rounded once.
The remaining part of the term is measured from the change to the term end by a
``proration.DayCount`` (``ACTUAL`` by default) against the whole term, so a chain of changes in
one term charges exactly the time-weighted sum of the prices before rounding: each change
credits only what the previous price still had to run and never what an earlier line charged
(no compounding). Each line is rounded once, so the billed total is within half a minor unit
per line of that sum; an upgrade and a downgrade back on the same day net to zero exactly.

The subscription's plan gives the price per unit (``Subscription.plans``); a term that is a stub
of an anchored period (``start`` between two boundaries from ``anchor``) is measured against the
whole period ``[period_start, term_end)``, so a change on the term's first day charges exactly
what ``rules.timeline.bills`` bills for that stub at the same quantity.

``at`` (when the change happens) is a plain local date or an aware datetime. With
``timezone=`` a datetime is first turned into the customer's local date, so a change at 23:30 in
New York is billed from that New York day whatever the server's clock says.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime, tzinfo
from decimal import Decimal

import attrs

from ..errors import CurrencyMismatchError, InvalidAmountError, InvalidTypeError, InvalidValueError
from ..model import InvoiceLine, InvoiceLineKind, Subscription
from ..money import Money
from ..timeutil import local_date, require_aware
from ..timeutil import timezone as to_timezone
from .proration import DayCount, Proration, prorate

__all__ = [
    "SubscriptionChange",
    "add_inventory",
    "change_prices",
    "change_renewal_inventory",
    "inventory_addition_line",
    "price_change_lines",
]


@attrs.frozen(kw_only=True)
class SubscriptionChange:
    """What a change did: the subscription after it, the lines for the next invoice, and why."""

    subscription: Subscription
    lines: tuple[InvoiceLine, ...] = ()
    explanation: str = ""

    @property
    def total(self) -> Money | None:
        """The sum of the lines (``None`` when there are none: nothing to bill)."""
        if not self.lines:
            return None
        return sum((line.amount for line in self.lines[1:]), self.lines[0].amount)


# -- the lines, from plain values ----------------------------------------------------------------
def _check_quantity(quantity: object, field: str = "quantity") -> int:
    if isinstance(quantity, bool) or not isinstance(quantity, int):
        raise InvalidTypeError(
            f"must be an int, not {type(quantity).__name__}", field=field, value=quantity
        )
    if quantity < 1:
        raise InvalidAmountError("must be positive", field=field, value=quantity)
    return quantity


def _check_price(price: object, field: str) -> Money:
    if not isinstance(price, Money):
        raise InvalidTypeError(
            f"must be Money, not {type(price).__name__}", field=field, value=price
        )
    if price.amount < 0:
        raise InvalidAmountError("must not be negative", field=field, value=price)
    return price


def _remaining(
    price: Money,
    quantity: int,
    term_start: date,
    term_end: date,
    at: date,
    day_count: DayCount | str,
    whole_start: date | None = None,
) -> Proration:
    """The remaining part of the term from ``at``, ``at`` named as such in errors, measured
    against the whole period ``[whole_start, term_end)`` (``whole_start`` defaults to
    ``term_start``; a stub term is measured against its whole anchored period)."""
    if isinstance(at, datetime):
        require_aware(at, "at")
    elif not isinstance(at, date):
        raise InvalidTypeError(
            f"must be a date or an aware datetime, not {type(at).__name__}", field="at", value=at
        )
    day = local_date(at)
    if not (isinstance(term_start, date) and isinstance(term_end, date)):
        raise InvalidTypeError("must be a date", field="term_start", value=term_start)
    first = local_date(term_start)
    last = local_date(term_end)
    if not first <= day <= last:
        raise InvalidValueError(
            f"must fall inside the term {first.isoformat()} to {last.isoformat()}",
            field="at",
            value=at,
        )
    return prorate(
        price,
        quantity=quantity,
        period_start=term_start if whole_start is None else whole_start,
        period_end=term_end,
        start=at,
        day_count=day_count,
    )


def inventory_addition_line(
    *,
    unit_price: Money,
    quantity: int,
    term_start: date,
    term_end: date,
    at: date,
    certificate_type: str = "",
    day_count: DayCount | str = DayCount.ACTUAL,
    subscription_id: str | None = None,
    whole_start: date | None = None,
) -> InvoiceLine:
    """The ``PRORATION`` line for ``quantity`` units added at ``at`` to a running term.

    ``unit_price`` is the price of one unit for the whole term ``[term_start, term_end)``
    (``[whole_start, term_end)`` when the term is a stub of an anchored period).
    """
    _check_price(unit_price, "unit_price")
    _check_quantity(quantity)
    part = _remaining(unit_price, quantity, term_start, term_end, at, day_count, whole_start)
    what = f"{quantity} × {certificate_type}" if certificate_type else f"{quantity} unit(s)"
    return InvoiceLine(
        description=f"{what} added on {local_date(at).isoformat()}: {part.explanation}",
        amount=part.amount,
        kind=InvoiceLineKind.PRORATION,
        quantity=Decimal(quantity),
        unit_price=unit_price,
        period_start=local_date(at),
        period_end=local_date(term_end),
        subscription_id=subscription_id,
    )


def price_change_lines(
    *,
    old_unit_price: Money,
    new_unit_price: Money,
    quantity: int,
    term_start: date,
    term_end: date,
    at: date,
    certificate_type: str = "",
    day_count: DayCount | str = DayCount.ACTUAL,
    subscription_id: str | None = None,
    whole_start: date | None = None,
) -> tuple[InvoiceLine, InvoiceLine]:
    """The ``CREDIT`` line for the unused old price and the ``PRORATION`` line for the new one.

    The credit is ``−(quantity × old unit price × remaining)``, the charge ``quantity × new unit
    price × remaining``, each rounded once; ``remaining`` is the part of the term from ``at``.
    """
    _check_price(old_unit_price, "old_unit_price")
    _check_price(new_unit_price, "new_unit_price")
    if old_unit_price.currency != new_unit_price.currency:
        raise CurrencyMismatchError(
            f"must be in {old_unit_price.currency} like the old price",
            field="new_unit_price",
            value=new_unit_price,
        )
    _check_quantity(quantity)
    old = _remaining(old_unit_price, quantity, term_start, term_end, at, day_count, whole_start)
    new = _remaining(new_unit_price, quantity, term_start, term_end, at, day_count, whole_start)
    what = f"{quantity} × {certificate_type}" if certificate_type else f"{quantity} unit(s)"
    day = local_date(at)
    common = {
        "quantity": Decimal(quantity),
        "period_start": day,
        "period_end": local_date(term_end),
        "subscription_id": subscription_id,
    }
    credit = InvoiceLine(
        description=f"Unused time on {what} at the old price from {day.isoformat()}: "
        f"{old.explanation} (credited)",
        amount=-old.amount,
        kind=InvoiceLineKind.CREDIT,
        unit_price=old_unit_price,
        **common,  # type: ignore[arg-type]
    )
    charge = InvoiceLine(
        description=f"Remaining time on {what} at the new price from {day.isoformat()}: "
        f"{new.explanation}",
        amount=new.amount,
        kind=InvoiceLineKind.PRORATION,
        unit_price=new_unit_price,
        **common,  # type: ignore[arg-type]
    )
    return credit, charge


# -- the same on a Subscription --------------------------------------------------------------
def _local(at: date, tz: str | tzinfo | None) -> date:
    if isinstance(at, datetime):
        require_aware(at, "at")
        if tz is not None:
            return local_date(at, to_timezone(tz))
    return at


def add_inventory(
    subscription: Subscription,
    *,
    certificate_type: str,
    quantity: int,
    at: date,
    timezone: str | tzinfo | None = None,
    day_count: DayCount | str = DayCount.ACTUAL,
) -> SubscriptionChange:
    """Add ``quantity`` units of ``certificate_type`` to the running term at ``at``.

    The subscription's ``inventory`` grows now (its renewal inventory is left alone) and the
    next invoice gets one ``PRORATION`` line for the rest of the term.
    """
    _check_quantity(quantity)
    plan = subscription.plans.get(certificate_type)
    if plan is None:
        raise InvalidValueError(
            f"has no unit price in the subscription (priced: "
            f"{', '.join(sorted(subscription.unit_prices)) or 'none'})",
            field="certificate_type",
            value=certificate_type,
        )
    line = inventory_addition_line(
        unit_price=plan.price,
        quantity=quantity,
        term_start=subscription.start,
        term_end=subscription.term_end,
        at=_local(at, timezone),
        certificate_type=certificate_type,
        day_count=day_count,
        subscription_id=subscription.id,
        whole_start=subscription.period_start,
    )
    inventory = dict(subscription.inventory)
    inventory[certificate_type] = inventory.get(certificate_type, 0) + quantity
    return SubscriptionChange(
        subscription=attrs.evolve(subscription, inventory=inventory),
        lines=(line,),
        explanation=line.description,
    )


def change_renewal_inventory(
    subscription: Subscription, *, inventory: Mapping[str, int]
) -> SubscriptionChange:
    """Replace the renewal inventory: no charge now, the full price at the next renewal."""
    for certificate_type, quantity in inventory.items():
        if quantity and certificate_type not in subscription.unit_prices:
            raise InvalidValueError(
                "has no unit price in the subscription",
                field=f"inventory.{certificate_type}",
                value=quantity,
            )
    changed = attrs.evolve(subscription, renewal_inventory=dict(inventory))
    items = [(t, q) for t, q in sorted(changed.renewal_inventory.items()) if q]
    listed = ", ".join(f"{q} × {t}" for t, q in items) or "nothing"
    if items:
        full = sum(
            (subscription.unit_prices[t] * q for t, q in items[1:]),
            subscription.unit_prices[items[0][0]] * items[0][1],
        ).rounded()
        price = f" at the full price of {full} per term"
    else:
        price = ""
    return SubscriptionChange(
        subscription=changed,
        lines=(),
        explanation=(
            f"No charge now: from the renewal on {subscription.term_end.isoformat()} the "
            f"inventory is {listed}{price}."
        ),
    )


def change_prices(
    subscription: Subscription,
    *,
    unit_prices: Mapping[str, Money],
    at: date,
    timezone: str | tzinfo | None = None,
    day_count: DayCount | str = DayCount.ACTUAL,
) -> SubscriptionChange:
    """Move the subscription to new unit prices (a plan or price change) at ``at``.

    For every certificate type in the current inventory whose price changes, the next invoice
    gets a ``CREDIT`` line for the unused old price and a ``PRORATION`` line for the new one.
    ``unit_prices`` must price every type of the current inventory.
    """
    day = _local(at, timezone)
    lines: list[InvoiceLine] = []
    for certificate_type, quantity in sorted(subscription.inventory.items()):
        if not quantity:
            continue
        new = unit_prices.get(certificate_type)
        if new is None:
            raise InvalidValueError(
                "must price every certificate type of the inventory",
                field=f"unit_prices.{certificate_type}",
            )
        old_plan = subscription.plans.get(certificate_type)
        if old_plan is None:
            raise InvalidValueError(
                "has no unit price in the subscription",
                field=f"subscription.unit_prices.{certificate_type}",
            )
        old = old_plan.price
        if old == new and old.currency == new.currency:
            continue
        lines.extend(
            price_change_lines(
                old_unit_price=old,
                new_unit_price=new,
                quantity=quantity,
                term_start=subscription.start,
                term_end=subscription.term_end,
                at=day,
                certificate_type=certificate_type,
                day_count=day_count,
                subscription_id=subscription.id,
                whole_start=subscription.period_start,
            )
        )
    changed = attrs.evolve(subscription, unit_prices=dict(unit_prices))
    explanation = (
        " ".join(line.description + "." for line in lines)
        if lines
        else "No price of the current inventory changes: nothing to bill."
    )
    return SubscriptionChange(subscription=changed, lines=tuple(lines), explanation=explanation)
