"""The invoice values: coupons, tax rates, tax exemptions, credit memo items, totals and invoices.

* ``Coupon``: exactly one of ``amount_off`` (a positive ``Money`` in whole minor units) and
  ``percent_off`` (a ``Decimal`` in ``(0, 100]``); how long it lasts (``duration``: ``once``,
  ``repeating`` for ``duration_periods`` billing periods, or ``forever``); how often it may be
  redeemed (``max_redemptions``) and until when (``redeem_by``, the last day, inclusive).
* ``TaxRate``: a named percentage in ``[0, 100]``, applied once per invoice after discounts.
* ``TaxExemption``: a customer's tax-exemption document (seed 004): its status (``new``,
  ``in_review``, ``valid``, ``expired``), the last day it is valid on (``valid_until``, optional)
  and the document's id, which the invoice records when it exempts it.
* ``CreditMemoItem``: one item of a credit memo, ``quantity × unit_price`` plus a tax amount.
* ``CreditMemoBalance``: what is left of one credit memo as store credit, oldest first.
* ``InvoiceTotals``: what ``billing_core.rules.invoicing.total`` computes, kept on the invoice.
* ``Invoice``: a customer's invoice and where it stands in its lifecycle (``InvoiceStatus``):
  ``draft`` (lines editable, no number) → ``open`` (issued: numbered, lines frozen) → ``paid``,
  or ``void``; an open invoice may be partly paid, past due (see
  ``billing_core.rules.collection.assess_unpaid``) or marked ``uncollectible``. The allowed
  moves are the table in ``billing_core.rules.invoice_transitions``.

Values validate on construction and raise a ``BillingError`` naming the field.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import attrs

from .currencies import minor_unit_exponent
from .errors import (
    CurrencyMismatchError,
    InvalidAmountError,
    InvalidTypeError,
    InvalidValueError,
    PrecisionError,
)
from .model import (
    InvoiceLine,
    _aware,
    _count,
    _enum_value,
    _money,
    _non_empty_str,
    _optional_str,
    _plain_date,
    _str,
)
from .money import Money, to_decimal

__all__ = [
    "Coupon",
    "CouponDuration",
    "CreditMemoBalance",
    "CreditMemoItem",
    "ExemptionStatus",
    "Invoice",
    "InvoiceStatus",
    "InvoiceTotals",
    "TaxExemption",
    "TaxRate",
]

_HUNDRED = Decimal(100)
_optional_date = attrs.validators.optional(_plain_date)


class CouponDuration(enum.StrEnum):
    """How long a redeemed coupon keeps discounting: one invoice, N billing periods, or always."""

    ONCE = "once"
    REPEATING = "repeating"
    FOREVER = "forever"


class ExemptionStatus(enum.StrEnum):
    """Where a tax-exemption document stands; only ``valid`` exempts."""

    NEW = "new"
    IN_REVIEW = "in_review"
    VALID = "valid"
    EXPIRED = "expired"


class InvoiceStatus(enum.StrEnum):
    """An invoice's lifecycle status (the table is ``rules.invoice_transitions.TABLE``)."""

    DRAFT = "draft"
    OPEN = "open"
    PAID = "paid"
    UNCOLLECTIBLE = "uncollectible"
    VOID = "void"


# -- field checks ------------------------------------------------------------------------------
def _optional_count(inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None:
        _count(attribute.name, value, positive=True)


def _rounded_money(value: Money, field: str) -> None:
    if not value.is_rounded:
        raise PrecisionError(
            f"must be a whole number of {value.currency} minor units, not {value.amount}",
            field=field,
            value=value,
        )


def _same_currency(value: Money, currency: str, field: str) -> None:
    if value.currency != currency:
        raise CurrencyMismatchError(f"must be in {currency}", field=field, value=value)


def _to_optional_percent(value: object) -> Decimal | None:
    return None if value is None else to_decimal(value, "percent_off")


def _to_percent(value: object) -> Decimal:
    return to_decimal(value, "percent")


def _to_duration(value: object) -> CouponDuration:
    return _enum_value(CouponDuration, value, "duration")


def _to_exemption_status(value: object) -> ExemptionStatus:
    return _enum_value(ExemptionStatus, value, "status")


def _to_invoice_status(value: object) -> InvoiceStatus:
    return _enum_value(InvoiceStatus, value, "status")


def _tuple(value: Iterable[Any]) -> tuple[Any, ...]:
    return tuple(value)


# -- coupons and tax ---------------------------------------------------------------------------
@attrs.frozen(kw_only=True)
class Coupon:
    """A discount: ``Coupon(id="c", amount_off=Money("12.00", "EUR"))`` or ``percent_off=20``."""

    id: str = attrs.field(validator=_non_empty_str)
    amount_off: Money | None = None
    percent_off: Decimal | None = attrs.field(default=None, converter=_to_optional_percent)
    duration: CouponDuration = attrs.field(
        default=CouponDuration.ONCE,
        converter=_to_duration,
    )
    duration_periods: int | None = attrs.field(default=None, validator=_optional_count)
    max_redemptions: int | None = attrs.field(default=None, validator=_optional_count)
    redeem_by: date | None = attrs.field(default=None, validator=_optional_date)
    name: str = attrs.field(default="", validator=_str)

    def __attrs_post_init__(self) -> None:
        if (self.amount_off is None) == (self.percent_off is None):
            raise InvalidValueError(
                "a coupon takes exactly one of amount_off and percent_off",
                field="amount_off" if self.amount_off is not None else "percent_off",
                value=self.amount_off if self.amount_off is not None else self.percent_off,
            )
        if self.amount_off is not None:
            _money(self, attrs.fields(Coupon).amount_off, self.amount_off)
            if self.amount_off.amount <= 0:
                raise InvalidAmountError(
                    "must be positive", field="amount_off", value=self.amount_off
                )
            _rounded_money(self.amount_off, "amount_off")
        if self.percent_off is not None and not 0 < self.percent_off <= _HUNDRED:
            raise InvalidAmountError(
                f"must be more than 0 and at most 100, not {self.percent_off}",
                field="percent_off",
                value=self.percent_off,
            )
        repeating = self.duration is CouponDuration.REPEATING
        if repeating and self.duration_periods is None:
            raise InvalidValueError(
                "a repeating coupon needs duration_periods", field="duration_periods", value=None
            )
        if not repeating and self.duration_periods is not None:
            raise InvalidValueError(
                f"only a repeating coupon takes duration_periods, not a {self.duration.value} one",
                field="duration_periods",
                value=self.duration_periods,
            )

    def describe(self) -> str:
        """``20% off`` or ``12.00 EUR off``, with the coupon's id."""
        off = f"{self.amount_off}" if self.amount_off is not None else f"{self.percent_off}%"
        return f"Coupon {self.id} ({off} off)"


@attrs.frozen(kw_only=True)
class TaxRate:
    """A tax: ``TaxRate(name="VAT", percent=Decimal("20"))``, applied after discounts."""

    name: str = attrs.field(validator=_non_empty_str)
    percent: Decimal = attrs.field(converter=_to_percent)

    @percent.validator
    def _check_percent(self, _a: object, value: Decimal) -> None:
        if not 0 <= value <= _HUNDRED:
            raise InvalidAmountError(
                f"must be between 0 and 100, not {value}", field="percent", value=value
            )


@attrs.frozen(kw_only=True)
class TaxExemption:
    """A tax-exemption document; exempts only while ``valid`` and not past ``valid_until``."""

    status: ExemptionStatus = attrs.field(converter=_to_exemption_status)
    valid_until: date | None = attrs.field(default=None, validator=_optional_date)
    document_id: str | None = attrs.field(default=None, validator=_optional_str)
    tax_id: str | None = attrs.field(default=None, validator=_optional_str)


# -- credit memos -------------------------------------------------------------------------------
def _to_item_quantity(value: object) -> Decimal:
    return to_decimal(value, "quantity")


@attrs.frozen(kw_only=True)
class CreditMemoItem:
    """One credit memo item: ``quantity × unit_price`` (rounded once) plus ``tax`` (an amount)."""

    description: str = attrs.field(validator=_str)
    quantity: Decimal = attrs.field(converter=_to_item_quantity)
    unit_price: Money = attrs.field(validator=_money)
    tax: Money | None = None
    tax_description: str = attrs.field(default="", validator=_str)

    def __attrs_post_init__(self) -> None:
        if self.quantity <= 0:
            raise InvalidAmountError("must be positive", field="quantity", value=self.quantity)
        if self.unit_price.amount < 0:
            raise InvalidAmountError(
                "must not be negative", field="unit_price", value=self.unit_price
            )
        if self.tax is not None:
            _money(self, attrs.fields(CreditMemoItem).tax, self.tax)
            _same_currency(self.tax, self.unit_price.currency, "tax")
            if self.tax.amount < 0:
                raise InvalidAmountError("must not be negative", field="tax", value=self.tax)
            _rounded_money(self.tax, "tax")

    @property
    def amount(self) -> Money:
        """``quantity × unit_price``, rounded once, half-up (the line price, before tax)."""
        return (self.unit_price * self.quantity).rounded()

    @property
    def tax_amount(self) -> Money:
        """The item's tax, zero when none was given."""
        return self.tax if self.tax is not None else Money.zero(self.unit_price.currency)


@attrs.frozen(kw_only=True)
class CreditMemoBalance:
    """What is left of credit memo ``memo_id`` as store credit, created at ``created_at``."""

    memo_id: str = attrs.field(validator=_non_empty_str)
    remaining: Money = attrs.field(validator=_money)
    created_at: datetime = attrs.field(validator=_aware)

    def __attrs_post_init__(self) -> None:
        if self.remaining.amount < 0:
            raise InvalidAmountError(
                "must not be negative", field="remaining", value=self.remaining
            )
        _rounded_money(self.remaining, "remaining")


# -- totals and invoices ------------------------------------------------------------------------
@attrs.frozen(kw_only=True)
class InvoiceTotals:
    """The figures of an invoice (``rules.invoicing.total``), each with the step that made it.

    ``total = subtotal − discount + tax``; ``amount_due = total − credit_applied``.
    ``coupon_discounts`` has one amount per coupon, ``tax_amounts`` one per tax rate, in order;
    ``line_discounts`` spreads ``discount`` over the lines. ``exempted_by`` names the exemption
    document when ``exempt``.
    """

    subtotal: Money = attrs.field(validator=_money)
    discount: Money = attrs.field(validator=_money)
    tax: Money = attrs.field(validator=_money)
    total: Money = attrs.field(validator=_money)
    credit_applied: Money = attrs.field(validator=_money)
    amount_due: Money = attrs.field(validator=_money)
    line_discounts: tuple[Money, ...] = attrs.field(default=(), converter=_tuple)
    coupon_discounts: tuple[Money, ...] = attrs.field(default=(), converter=_tuple)
    tax_amounts: tuple[Money, ...] = attrs.field(default=(), converter=_tuple)
    exempt: bool = False
    exempted_by: str | None = attrs.field(default=None, validator=_optional_str)
    explanation: str = ""

    def __attrs_post_init__(self) -> None:
        currency = self.subtotal.currency
        for name in ("discount", "tax", "total", "credit_applied", "amount_due"):
            _same_currency(getattr(self, name), currency, name)
        for name in ("line_discounts", "coupon_discounts", "tax_amounts"):
            for i, m in enumerate(getattr(self, name)):
                _money(self, attrs.fields_dict(InvoiceTotals)[name], m)
                _same_currency(m, currency, f"{name}[{i}]")

    @property
    def currency(self) -> str:
        return self.subtotal.currency


_ISSUED = frozenset({InvoiceStatus.OPEN, InvoiceStatus.PAID, InvoiceStatus.UNCOLLECTIBLE})


def _zero_in(invoice: Invoice) -> Money:
    minor_unit_exponent(invoice.currency, "currency")
    return Money.zero(invoice.currency)


@attrs.frozen(kw_only=True)
class Invoice:
    """A customer's invoice. Issued invoices (``open``, ``paid``, ``uncollectible``) carry a
    ``number``, ``issued_on`` and their ``totals``; a draft has no number. ``amount_paid`` and
    ``amount_refunded`` are the money received for it and given back, so ``amount_remaining``
    (``totals.amount_due − amount_paid``) always adds up. ``payments`` are the ids of the
    transactions that paid it (their refunds make ``amount_refunded``);
    ``payments_in_flight`` the ``(idempotency key, amount)`` of payments sent to the gateway
    and not recorded yet (reserved: no other payment may take them); ``created_at`` is when the
    engine made it.
    """

    id: str = attrs.field(validator=_non_empty_str)
    customer_id: str = attrs.field(validator=_non_empty_str)
    currency: str = attrs.field(validator=_non_empty_str)
    status: InvoiceStatus = attrs.field(
        default=InvoiceStatus.DRAFT,
        converter=_to_invoice_status,
    )
    lines: tuple[InvoiceLine, ...] = attrs.field(default=(), converter=_tuple)
    number: str | None = attrs.field(default=None, validator=_optional_str)
    issued_on: date | None = attrs.field(default=None, validator=_optional_date)
    due_on: date | None = attrs.field(default=None, validator=_optional_date)
    coupons: tuple[Coupon, ...] = attrs.field(default=(), converter=_tuple)
    tax_rates: tuple[TaxRate, ...] = attrs.field(default=(), converter=_tuple)
    exemption: TaxExemption | None = None
    totals: InvoiceTotals | None = None
    amount_paid: Money = attrs.field(
        default=attrs.Factory(_zero_in, takes_self=True), validator=_money
    )
    amount_refunded: Money = attrs.field(
        default=attrs.Factory(_zero_in, takes_self=True), validator=_money
    )
    subscription_id: str | None = attrs.field(default=None, validator=_optional_str)
    notes: str = attrs.field(default="", validator=_str)
    payments: tuple[str, ...] = attrs.field(default=(), converter=_tuple)
    payments_in_flight: tuple[tuple[str, Money], ...] = attrs.field(default=(), converter=_tuple)
    created_at: datetime | None = attrs.field(
        default=None, validator=attrs.validators.optional(_aware)
    )
    outside_payments: tuple[tuple[str, Money], ...] = attrs.field(default=(), converter=_tuple)
    """``(reference, amount)`` of payments made outside the gateway (a cheque, a wire), counted
    in ``amount_paid`` (``engine.record_outside_payment``)."""
    collection_attempts: int = 0
    """Automatic collections of it that failed for good so far (``engine.collect_due``)."""
    next_collection_on: date | None = attrs.field(default=None, validator=_optional_date)
    """The dunning schedule's next try (``None``: at its due time, or not scheduled)."""
    collection_stopped: str | None = attrs.field(default=None, validator=_optional_str)
    """Why automatic collection stopped: ``gave_up`` (the dunning schedule ran out) or
    ``delinquent`` (its subscription was cancelled); ``None`` while it goes on."""
    receipt_for: str | None = attrs.field(default=None, validator=_optional_str)
    """The sale this invoice is the receipt of (``engine.receipts``: a subscription term charged
    at once, issued ``paid``); ``None`` for an invoice of billed lines."""

    def __attrs_post_init__(self) -> None:
        minor_unit_exponent(self.currency, "currency")
        for i, outside in enumerate(self.outside_payments):
            ref, paid = outside
            if not isinstance(ref, str) or not ref or not isinstance(paid, Money):
                raise InvalidTypeError(
                    "must be (reference, Money)", field=f"outside_payments[{i}]", value=outside
                )
            _same_currency(paid, self.currency, f"outside_payments[{i}]")
        _count("collection_attempts", self.collection_attempts, positive=False)
        for i, flight in enumerate(self.payments_in_flight):
            key, amount = flight
            if not isinstance(key, str) or not isinstance(amount, Money):
                raise InvalidTypeError(
                    "must be (idempotency key, Money)",
                    field=f"payments_in_flight[{i}]",
                    value=flight,
                )
            _same_currency(amount, self.currency, f"payments_in_flight[{i}]")
        for i, payment in enumerate(self.payments):
            if not isinstance(payment, str) or not payment:
                raise InvalidTypeError(
                    "must be a transaction id (non-empty str)",
                    field=f"payments[{i}]",
                    value=payment,
                )
        typed: list[tuple[str, object, type]] = [
            *((f"lines[{i}]", v, InvoiceLine) for i, v in enumerate(self.lines)),
            *((f"coupons[{i}]", v, Coupon) for i, v in enumerate(self.coupons)),
            *((f"tax_rates[{i}]", v, TaxRate) for i, v in enumerate(self.tax_rates)),
            ("exemption", self.exemption, TaxExemption),
            ("totals", self.totals, InvoiceTotals),
        ]
        for field, value, cls in typed:
            if value is not None and not isinstance(value, cls):
                raise InvalidTypeError(
                    f"must be a {cls.__name__}, not {type(value).__name__}",
                    field=field,
                    value=value,
                )
        for i, line in enumerate(self.lines):
            _same_currency(line.amount, self.currency, f"lines[{i}].amount")
        for i, coupon in enumerate(self.coupons):
            if coupon.amount_off is not None:
                _same_currency(coupon.amount_off, self.currency, f"coupons[{i}].amount_off")
        if self.totals is not None:
            _same_currency(self.totals.subtotal, self.currency, "totals.subtotal")
        for name in ("amount_paid", "amount_refunded"):
            value = getattr(self, name)
            _same_currency(value, self.currency, name)
            if value.amount < 0:
                raise InvalidAmountError("must not be negative", field=name, value=value)
        self._check_lifecycle()

    def _check_lifecycle(self) -> None:
        status = self.status
        if status is InvoiceStatus.DRAFT:
            for name in ("number", "issued_on"):
                if getattr(self, name) is not None:
                    raise InvalidValueError(
                        "a draft is not issued yet: it has none",
                        field=name,
                        value=getattr(self, name),
                    )
        if status in _ISSUED:
            for name in ("number", "issued_on", "totals"):
                if getattr(self, name) is None:
                    raise InvalidValueError(
                        f"an {status.value} invoice has been issued: it needs one",
                        field=name,
                        value=None,
                    )
        if self.issued_on is not None and self.due_on is not None and self.due_on < self.issued_on:
            raise InvalidValueError(
                f"must not be before issued_on {self.issued_on.isoformat()}",
                field="due_on",
                value=self.due_on,
            )
        if self.amount_refunded > self.amount_paid:
            raise InvalidAmountError(
                f"must not exceed amount_paid {self.amount_paid}",
                field="amount_refunded",
                value=self.amount_refunded,
            )
        if self.amount_paid and (self.totals is None or status is InvoiceStatus.DRAFT):
            raise InvalidValueError(
                "only an issued invoice can be paid", field="amount_paid", value=self.amount_paid
            )
        if self.totals is not None and self.amount_paid > self.totals.amount_due:
            raise InvalidAmountError(
                f"must not exceed the amount due {self.totals.amount_due}",
                field="amount_paid",
                value=self.amount_paid,
            )
        if status is InvoiceStatus.PAID and self.amount_remaining:
            raise InvalidValueError(
                f"a paid invoice has nothing left to pay, not {self.amount_remaining}",
                field="amount_paid",
                value=self.amount_paid,
            )
        if status is InvoiceStatus.VOID and self.has_payments:
            raise InvalidValueError(
                "a void invoice keeps no payment: refund it first",
                field="amount_paid",
                value=self.amount_paid,
            )

    @property
    def amount_remaining(self) -> Money:
        """What is still to pay: the amount due less what was paid (the whole of it, unissued)."""
        if self.totals is None:
            return Money.zero(self.currency)
        return self.totals.amount_due - self.amount_paid

    @property
    def amount_in_flight(self) -> Money:
        """What payments sent to the gateway and not recorded yet hold back."""
        return sum((m for _, m in self.payments_in_flight), Money.zero(self.currency))

    @property
    def has_payments(self) -> bool:
        """True when money received for it has not all been given back."""
        return self.amount_paid > self.amount_refunded

    @property
    def partially_paid(self) -> bool:
        """Issued, some money received, some still to pay."""
        return bool(self.amount_paid) and bool(self.amount_remaining)
