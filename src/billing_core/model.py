"""The domain values the seed flows talk about, as frozen attrs classes.

* ``Customer``: a company with its address, the reseller that manages it (if any), its timezone.
* ``Subscription``: a term (a ``Period``) from a start date, auto-renewing or not, with an
  inventory of certificates (or seats) per type for the current term and a *renewal* inventory
  that takes effect at the next renewal.
* ``Transaction``: one movement of money through a gateway (a sale, an authorization, a capture,
  a refund, a void, a credit, a payout), what was refunded of it so far, its status, whether it
  has settled, and the certificate lines it paid for.
* ``Certificate``: a certificate for a domain and its status at the provider.
* ``UsageEvent``: one reported usage of a metered feature.

Values validate on construction: a naive datetime, a float amount or mixed currencies raise a
``BillingError`` naming the field. They are immutable; use ``attrs.evolve`` to change one.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar

import attrs

from .errors import CurrencyMismatchError, InvalidAmountError, InvalidTypeError, InvalidValueError
from .money import Money, to_decimal
from .periods import Period
from .plans import Plan, check_day_shift
from .timeutil import require_aware, require_date, timezone

__all__ = [
    "Certificate",
    "CertificateLine",
    "CertificateStatus",
    "Customer",
    "InvoiceLine",
    "InvoiceLineKind",
    "Subscription",
    "SubscriptionState",
    "Transaction",
    "TransactionKind",
    "TransactionStatus",
    "UsageEvent",
]


class TransactionKind(enum.StrEnum):
    """What a transaction did: take money (sale, capture), hold it (authorization), give it
    back (refund, void, credit) or send it out (payout)."""

    SALE = "sale"
    AUTHORIZATION = "authorization"
    CAPTURE = "capture"
    REFUND = "refund"
    VOID = "void"
    CREDIT = "credit"
    PAYOUT = "payout"


class TransactionStatus(enum.StrEnum):
    """Where a transaction stands; ``unknown`` means the gateway's answer was lost."""

    PENDING = "pending"
    COMPLETED = "completed"
    PARTIALLY_REFUNDED = "partially_refunded"
    REFUNDED = "refunded"
    VOIDED = "voided"
    FAILED = "failed"
    UNKNOWN = "unknown"


class CertificateStatus(enum.StrEnum):
    """A certificate's state at the provider."""

    PENDING = "pending"
    ISSUED = "issued"
    CANCELLED = "cancelled"
    REVOKED = "revoked"
    REJECTED = "rejected"
    EXPIRED = "expired"


class SubscriptionState(enum.StrEnum):
    """A subscription's state (``rules.subscription_states`` holds the transitions)."""

    PENDING = "pending"  # ordered, not activated yet (abandoned at ``abandon_on``)
    TRIALING = "trialing"
    ACTIVE = "active"
    PAST_DUE = "past_due"  # a renewal went unpaid: not renewed, waiting for the money
    SUSPENDED = "suspended"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


# -- field checks (attrs validators that name the field) -------------------------------------
def _aware(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    require_aware(value, attribute.name)


def _optional_aware(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None:
        require_aware(value, attribute.name)


def _plain_date(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    require_date(value, attribute.name)


def _money(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, Money):
        raise InvalidTypeError(
            f"must be Money, not {type(value).__name__}", field=attribute.name, value=value
        )


def _str(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, str):
        raise InvalidTypeError(
            f"must be a str, not {type(value).__name__}", field=attribute.name, value=value
        )


def _optional_str(inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None:
        _str(inst, attribute, value)


def _non_empty_str(inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    _str(inst, attribute, value)
    if not value:
        raise InvalidValueError("must not be empty", field=attribute.name, value=value)


def _count(name: str, value: object, *, positive: bool = False) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidTypeError(
            f"must be an int, not {type(value).__name__}", field=name, value=value
        )
    if value < (1 if positive else 0):
        raise InvalidAmountError(
            "must be positive" if positive else "must not be negative", field=name, value=value
        )
    return value


def _inventory(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, Mapping):
        raise InvalidTypeError(
            f"must be a mapping of certificate type to quantity, not {type(value).__name__}",
            field=attribute.name,
            value=value,
        )
    for key, qty in value.items():
        if not isinstance(key, str) or not key:
            raise InvalidTypeError("keys must be non-empty str", field=attribute.name, value=key)
        _count(f"{attribute.name}.{key}", qty)


def _zero_like(amount: object) -> Money:
    """Zero in the currency of ``amount`` (the default of refunded/reserved)."""
    if not isinstance(amount, Money):
        raise InvalidTypeError(
            f"must be Money, not {type(amount).__name__}", field="amount", value=amount
        )
    return Money.zero(amount.currency)


E = TypeVar("E", bound=enum.StrEnum)


def _enum_value(kind: type[E], value: object, field: str) -> E:
    if isinstance(value, kind):
        return value
    try:
        return kind(value)  # type: ignore[arg-type]  # any value: the enum decides
    except ValueError:
        allowed = ", ".join(m.value for m in kind)
        raise InvalidValueError(
            f"must be one of {allowed}, not {value!r}", field=field, value=value
        ) from None


def _to_transaction_status(value: object) -> TransactionStatus:
    return _enum_value(TransactionStatus, value, "status")


def _to_transaction_kind(value: object) -> TransactionKind:
    return _enum_value(TransactionKind, value, "kind")


def _to_certificate_status(value: object) -> CertificateStatus:
    return _enum_value(CertificateStatus, value, "status")


def _to_subscription_state(value: object) -> SubscriptionState:
    return _enum_value(SubscriptionState, value, "state")


def _to_lines(value: Iterable[CertificateLine]) -> tuple[CertificateLine, ...]:
    return tuple(value)


def _to_address(value: Iterable[str]) -> tuple[str, ...]:
    return tuple(value)


def _to_quantity(value: Decimal | int | str) -> Decimal:
    return to_decimal(value, "quantity")


def _to_usage_quantity(value: Decimal | int | str) -> Decimal:
    return _non_negative(value, "quantity")


# -- values ----------------------------------------------------------------------------------
@attrs.frozen(kw_only=True)
class Customer:
    """A customer company, as the reseller portal's customer page holds it."""

    id: str = attrs.field(validator=_non_empty_str)
    company: str = attrs.field(validator=_str)
    address: tuple[str, ...] = attrs.field(default=(), converter=_to_address)
    city: str = ""
    postal_code: str = ""
    state: str = ""
    country: str = ""
    reseller_id: str | None = attrs.field(default=None, validator=_optional_str)
    timezone: str = attrs.field(default="UTC")
    blocklisted: bool = False
    email: str | None = None

    @address.validator
    def _check_address(self, _a: object, value: tuple[str, ...]) -> None:
        if len(value) > 3:
            raise InvalidValueError("holds at most 3 lines", field="address", value=value)
        for i, line in enumerate(value):
            if not isinstance(line, str):
                raise InvalidTypeError("must be str", field=f"address[{i}]", value=line)

    @timezone.validator
    def _check_timezone(self, _a: object, value: str) -> None:
        timezone(value, "timezone")


@attrs.frozen(kw_only=True)
class CertificateLine:
    """A line of a transaction: ``quantity`` certificates of one type at ``unit_price`` each."""

    certificate_type: str = attrs.field(validator=_non_empty_str)
    quantity: int = attrs.field()
    unit_price: Money = attrs.field(validator=_money)
    refunded_quantity: int = 0
    domain: str | None = attrs.field(default=None, validator=_optional_str)
    certificate_id: str | None = attrs.field(default=None, validator=_optional_str)

    @quantity.validator
    def _check_quantity(self, _a: object, value: object) -> None:
        _count("quantity", value, positive=True)

    def __attrs_post_init__(self) -> None:
        _count("refunded_quantity", self.refunded_quantity)
        if self.refunded_quantity > self.quantity:
            raise InvalidValueError(
                f"must not exceed the line quantity {self.quantity}",
                field="refunded_quantity",
                value=self.refunded_quantity,
            )

    @property
    def total(self) -> Money:
        """Line price = quantity × unit price, always."""
        return self.unit_price * self.quantity

    @property
    def remaining_quantity(self) -> int:
        return self.quantity - self.refunded_quantity


@attrs.frozen(kw_only=True)
class Transaction:
    """One movement of money. ``Transaction(id=, amount=, created_at=, settled=)`` is enough."""

    id: str = attrs.field(validator=_non_empty_str)
    amount: Money = attrs.field(validator=_money)
    created_at: datetime = attrs.field(validator=_aware)
    settled: bool = attrs.field(default=False)
    refunded: Money = attrs.field(
        default=attrs.Factory(lambda s: _zero_like(s.amount), takes_self=True)
    )
    reserved: Money = attrs.field(
        default=attrs.Factory(lambda s: _zero_like(s.amount), takes_self=True)
    )
    status: TransactionStatus = attrs.field(
        default=TransactionStatus.COMPLETED, converter=_to_transaction_status
    )
    kind: TransactionKind = attrs.field(
        default=TransactionKind.SALE, converter=_to_transaction_kind
    )
    lines: tuple[CertificateLine, ...] = attrs.field(default=(), converter=_to_lines)
    parent_id: str | None = attrs.field(default=None, validator=_optional_str)
    customer_id: str | None = attrs.field(default=None, validator=_optional_str)
    subscription_id: str | None = attrs.field(default=None, validator=_optional_str)
    settled_at: datetime | None = attrs.field(default=None, validator=_optional_aware)
    gateway: str | None = None
    gateway_reference: str | None = None
    idempotency_key: str | None = None

    @settled.validator
    def _check_settled(self, _a: object, value: object) -> None:
        if not isinstance(value, bool):
            raise InvalidTypeError(
                f"must be a bool, not {type(value).__name__}", field="settled", value=value
            )

    def __attrs_post_init__(self) -> None:
        _money(self, attrs.fields(Transaction).refunded, self.refunded)
        _money(self, attrs.fields(Transaction).reserved, self.reserved)
        if self.amount.amount < 0:
            raise InvalidAmountError("must not be negative", field="amount", value=self.amount)
        if self.refunded.currency != self.amount.currency:
            raise CurrencyMismatchError(
                f"must be in {self.amount.currency}, not {self.refunded.currency}",
                field="refunded",
                value=self.refunded,
            )
        if self.refunded.amount < 0 or self.refunded > self.amount:
            raise InvalidAmountError(
                f"must be between 0 and the amount {self.amount}",
                field="refunded",
                value=self.refunded,
            )
        if self.reserved.currency != self.amount.currency:
            raise CurrencyMismatchError(
                f"must be in {self.amount.currency}, not {self.reserved.currency}",
                field="reserved",
                value=self.reserved,
            )
        if self.reserved.amount < 0 or self.refunded + self.reserved > self.amount:
            raise InvalidAmountError(
                f"refunded plus reserved must not exceed the amount {self.amount}",
                field="reserved",
                value=self.reserved,
            )
        for i, line in enumerate(self.lines):
            if not isinstance(line, CertificateLine):
                raise InvalidTypeError(
                    f"must be a CertificateLine, not {type(line).__name__}",
                    field=f"lines[{i}]",
                    value=line,
                )
            if line.unit_price.currency != self.amount.currency:
                raise CurrencyMismatchError(
                    f"must be in {self.amount.currency}",
                    field=f"lines[{i}].unit_price",
                    value=line.unit_price,
                )

    @property
    def currency(self) -> str:
        return self.amount.currency

    @property
    def refundable(self) -> Money:
        """What is left to refund: the amount less what was refunded and what is reserved by
        refunds in flight (written ahead, outcome not yet final)."""
        return self.amount - self.refunded - self.reserved


@attrs.frozen(kw_only=True)
class Certificate:
    """A certificate for ``domain`` at the certificate provider."""

    id: str = attrs.field(validator=_non_empty_str)
    domain: str = attrs.field(validator=_non_empty_str)
    status: CertificateStatus = attrs.field(
        default=CertificateStatus.PENDING, converter=_to_certificate_status
    )
    certificate_type: str = "standard"
    customer_id: str | None = None
    subscription_id: str | None = None
    transaction_id: str | None = None

    @property
    def live(self) -> bool:
        """Pending or issued: the domain's one live certificate."""
        return self.status in (CertificateStatus.PENDING, CertificateStatus.ISSUED)


@attrs.frozen(kw_only=True)
class Subscription:
    """A customer's subscription: a term from a start date, with inventory per certificate type."""

    id: str = attrs.field(validator=_non_empty_str)
    customer_id: str = attrs.field(validator=_non_empty_str)
    term: Period = attrs.field()
    start: date = attrs.field(validator=_plain_date)
    auto_renew: bool = True
    inventory: Mapping[str, int] = attrs.field(factory=dict, validator=_inventory)
    renewal_inventory: Mapping[str, int] = attrs.field(factory=dict, validator=_inventory)
    unit_prices: Mapping[str, Money] = attrs.field(factory=dict)
    state: SubscriptionState = attrs.field(
        default=SubscriptionState.ACTIVE, converter=_to_subscription_state
    )
    product: str = "ssl"
    anchor: date | None = attrs.field(default=None)
    """The recurrence's anchor (the first term's start); ``None`` means ``start``. Renewals move
    ``start`` to each new term and keep the anchor, so month ends never drift."""
    suspended_on: date | None = attrs.field(default=None)
    """The customer's local date the subscription was suspended on (``None`` unless suspended):
    re-enabling moves the term end by the days suspended since (``rules.suspension``)."""

    @suspended_on.validator
    def _check_suspended_on(self, _a: object, value: object) -> None:
        if value is not None:
            require_date(value, "suspended_on")

    plan: Plan | None = attrs.field(default=None)
    """The plan behind the term: timing, trial, setup fee, occurrences. ``None`` (seed 000
    rows): in advance, one ``term`` per period. Its ``period`` is the ``term``; each
    certificate type's price per unit comes from ``unit_prices`` (see ``plans``)."""
    issue_shift: timedelta | None = attrs.field(default=None)
    """Bills are issued this many whole days after (negative: before) their billing date."""
    due_shift: timedelta | None = attrs.field(default=None)
    """Bills are due this many whole days after they are issued."""
    autopay: bool = attrs.field(default=True)
    """AutoPay: ``collect_due`` charges its open invoices at their due time (on by default);
    off, the customer pays them (``pay_invoice``, ``record_outside_payment``)."""

    @autopay.validator
    def _check_autopay(self, _a: object, value: object) -> None:
        if not isinstance(value, bool):
            raise InvalidTypeError(
                f"must be a bool, not {type(value).__name__}", field="autopay", value=value
            )

    @plan.validator
    def _check_plan(self, _a: object, value: object) -> None:
        if value is None:
            return
        if not isinstance(value, Plan):
            raise InvalidTypeError(
                f"must be a Plan or None, not {type(value).__name__}", field="plan", value=value
            )
        if value.period != self.term:
            raise InvalidValueError(
                f"must recur every term ({self.term.describe()}), not every "
                f"{value.period.describe()}",
                field="plan.period",
                value=value.period,
            )
        for key, price in self.unit_prices.items():
            if isinstance(price, Money) and price.currency != value.currency:
                raise CurrencyMismatchError(
                    f"must be in the plan's currency {value.currency}",
                    field=f"unit_prices.{key}",
                    value=price,
                )

    @issue_shift.validator
    def _check_issue_shift(self, attribute: attrs.Attribute[Any], value: object) -> None:
        check_day_shift(value, attribute.name)

    @due_shift.validator
    def _check_due_shift(self, attribute: attrs.Attribute[Any], value: object) -> None:
        check_day_shift(value, attribute.name, negative=False)

    @property
    def plans(self) -> dict[str, Plan]:
        """Each certificate type's plan: ``plan`` (or an in-advance plan of one ``term``) at the
        type's unit price, so a seed-000 subscription is a set of plans too."""
        if self.plan is None:
            return {k: Plan(price=p, period=self.term) for k, p in self.unit_prices.items()}
        return {k: attrs.evolve(self.plan, price=p) for k, p in self.unit_prices.items()}

    @property
    def period_start(self) -> date:
        """The start of the whole anchored period that holds ``start``: ``start`` itself unless
        the current term is a stub (``start`` between two boundaries from ``anchor``)."""
        if self.anchor is None or self.anchor == self.start:
            return self.start
        return self.term.after(self.anchor, times=self._term_index() - 1)

    def _term_index(self) -> int:
        """How many terms from ``anchor`` the current term ends (``anchor`` set, before start)."""
        assert self.anchor is not None
        times = 1
        while self.term.after(self.anchor, times=times) <= self.start:
            times += 1
        return times

    @anchor.validator
    def _check_anchor(self, _a: object, value: object) -> None:
        if value is None:
            return
        require_date(value, "anchor")
        if value > self.start:  # type: ignore[operator]
            raise InvalidValueError(
                f"must not be after the start {self.start.isoformat()}", field="anchor", value=value
            )

    @term.validator
    def _check_term(self, _a: object, value: object) -> None:
        if not isinstance(value, Period):
            raise InvalidTypeError(
                f"must be a Period, not {type(value).__name__}", field="term", value=value
            )

    @unit_prices.validator
    def _check_prices(self, _a: object, value: Mapping[str, Money]) -> None:
        currencies = set()
        for key, price in value.items():
            _money(self, attrs.fields(Subscription).unit_prices, price)
            currencies.add(price.currency)
            if price.amount < 0:
                raise InvalidAmountError("must not be negative", field=f"unit_prices.{key}")
        if len(currencies) > 1:
            raise CurrencyMismatchError(
                f"must share one currency, not {sorted(currencies)}", field="unit_prices"
            )

    @property
    def term_end(self) -> date:
        """The end of the current term (exclusive): the first boundary of the recurrence from
        ``anchor`` after ``start`` (``term.after(start)`` when there is no anchor)."""
        if self.anchor is None or self.anchor == self.start:
            return self.term.after(self.start)
        return self.term.after(self.anchor, times=self._term_index())


@attrs.frozen(kw_only=True)
class UsageEvent:
    """One reported usage: ``quantity`` at instant ``at``, with optional ``properties``."""

    id: str = attrs.field(validator=_non_empty_str)
    quantity: Decimal = attrs.field(converter=_to_usage_quantity)
    at: datetime = attrs.field(validator=_aware)
    properties: Mapping[str, Any] = attrs.field(factory=dict)
    subscription_id: str | None = None
    metric: str | None = None

    @properties.validator
    def _check_properties(self, _a: object, value: object) -> None:
        if not isinstance(value, Mapping):
            raise InvalidTypeError(
                f"must be a mapping, not {type(value).__name__}", field="properties", value=value
            )


class InvoiceLineKind(enum.StrEnum):
    """What an invoice line is for."""

    SUBSCRIPTION = "subscription"  # a term's charge
    PRORATION = "proration"  # a partial-period charge (inventory added mid-term, a new plan)
    CREDIT = "credit"  # the unused part of an old price, given back (negative amount)
    RENEWAL = "renewal"  # the next term at the renewal inventory
    USAGE = "usage"  # a metered period's usage charge
    TRIAL = "trial"  # a plan's trial, its total price (0.00 for a free trial)
    SETUP_FEE = "setup_fee"  # a plan's one-off setup fee, never prorated


def _to_invoice_line_kind(value: object) -> InvoiceLineKind:
    return _enum_value(InvoiceLineKind, value, "kind")


@attrs.frozen(kw_only=True)
class InvoiceLine:
    """One line of an invoice: what, how many, at what unit price, for which span, for how much.

    ``amount`` is the rounded charge (negative for a credit). ``exact_amount`` keeps the
    unrounded figure behind it, so a support agent can see where the cents came from.
    """

    description: str = attrs.field(validator=_str)
    amount: Money = attrs.field(validator=_money)
    kind: InvoiceLineKind = attrs.field(
        default=InvoiceLineKind.SUBSCRIPTION, converter=_to_invoice_line_kind
    )
    quantity: Decimal = attrs.field(default=Decimal(1), converter=_to_quantity)
    unit_price: Money | None = None
    exact_amount: Money | None = None
    period_start: date | None = None
    period_end: date | None = None
    subscription_id: str | None = None

    def __attrs_post_init__(self) -> None:
        for name in ("unit_price", "exact_amount"):
            value = getattr(self, name)
            if value is None:
                continue
            _money(self, attrs.fields_dict(InvoiceLine)[name], value)
            if value.currency != self.amount.currency:
                raise CurrencyMismatchError(
                    f"must be in {self.amount.currency}", field=name, value=value
                )


def _non_negative(value: object, field: str) -> Decimal:
    result = to_decimal(value, field)
    if result < 0:
        raise InvalidAmountError("must not be negative", field=field, value=value)
    return result
