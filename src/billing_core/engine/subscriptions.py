"""Subscriptions, inventory, renewals and usage, on top of the rules.

Each flow reads what it needs in a store session, asks the pure rules, and writes what the rules
computed; money moves only through ``charging.charge``. "Today" is the customer's local date.
Certificates are checked, ordered and cancelled by ``certificate_orders``
(``request_certificate_cancellation`` is re-exported here for the engine); metered periods are
closed by ``metered_closes``; ``renew_due`` (re-exported here) is ``engine.renewals``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date

from ..errors import InvalidTypeError, InvalidValueError, NotFoundError
from ..model import (
    CertificateLine,
    Customer,
    Subscription,
    SubscriptionState,
    UsageEvent,
)
from ..money import Money
from ..periods import Period
from ..plugins.events import SubscriptionAdded
from ..plugins.protocols import StoreSession
from ..rules import backdating, certificates, changes, suspension
from ..serialization import unstructure
from ..timeutil import local_date, timezone
from . import activation, receipts, trials
from .certificate_orders import (
    first_blocked,
    order_certificates,
    plan_certificates,
    request_certificate_cancellation,
)
from .charging import charge
from .context import EngineContext
from .renewals import renew_due
from .results import (
    ChargeOutcome,
    InventoryResult,
    StateOutcome,
    StateResult,
    SubscriptionResult,
)

__all__ = [
    "add_inventory",
    "add_subscription",
    "change_renewal_inventory",
    "record_usage",
    "renew_due",
    "request_certificate_cancellation",
    "set_state",
]


def customer_today(ctx: EngineContext, customer: Customer) -> date:
    """The customer's local date now."""
    return local_date(ctx.now(), timezone(customer.timezone))


def _customer(s: StoreSession, customer_id: str) -> Customer:
    customer = s.get_customer(customer_id)
    if customer is None:
        raise NotFoundError(f"no customer {customer_id!r}", field="customer_id", value=customer_id)
    return customer


def _subscription(s: StoreSession, subscription_id: str, *, lock: bool = False) -> Subscription:
    sub = s.get_subscription(subscription_id, lock=lock)
    if sub is None:
        raise NotFoundError(
            f"no subscription {subscription_id!r}", field="subscription_id", value=subscription_id
        )
    return sub


def add_subscription(
    ctx: EngineContext,
    customer_id: str,
    *,
    term: Period,
    inventory: Mapping[str, int],
    unit_prices: Mapping[str, Money],
    start: date | None,
    auto_renew: bool,
    domains: Sequence[str],
    key: str,
    actor: str,
    pending: bool = False,
    sub_id: str | None = None,
    claim: Callable[[StoreSession], None] | None = None,
    trial: Period | None = None,
) -> SubscriptionResult:
    """Create a subscription, charge its (possibly backdated) first term, order certificates.

    The domains are reconciled with the inventory first (``certificates.plan_domains``: none,
    or one per unit, each once) and each must be free of a live certificate. ``pending=True``
    stores it ``pending`` instead, charging nothing (``engine.activation`` activates it later,
    under its id ``sub_id``, with ``claim`` run where its sale is written ahead). ``trial``
    stores it ``trialing`` instead, charging nothing until the trial ends (``engine.trials``:
    its stored ``start`` is the trial's end).
    """
    with ctx.store.session() as s:
        customer = _customer(s, customer_id)
    today = customer_today(ctx, customer)
    first = start or today
    sub_id = sub_id or ctx.ids("sub")
    draft = Subscription(
        id=sub_id,
        customer_id=customer_id,
        term=term,
        start=first,
        auto_renew=auto_renew,
        inventory=dict(inventory),
        renewal_inventory=dict(inventory),
        unit_prices=dict(unit_prices),
    )  # the draft checks the inventory and prices: bad input raises before anything else
    trial_length = trials.check_trial(trial, pending=pending, domains=domains)
    if trial_length is not None:
        return trials.store_trial(ctx, draft, trial_length, today=today, actor=actor)
    plan = certificates.plan_domains(inventory, domains)
    refusal = plan if not plan.allowed else first_blocked(ctx, plan)
    if refusal is not None:
        return SubscriptionResult(
            outcome=ChargeOutcome.DENIED,
            reason=str(refusal.reason),
            explanation=refusal.explanation,
        )
    if pending:
        return activation.store_pending(ctx, draft, actor=actor)
    # the price of one unit of each type for this (possibly backdated) term
    unit_charges: dict[str, Money] = {}
    decision: backdating.BackdateDecision | None = None
    for certificate_type, quantity in sorted(inventory.items()):
        if quantity <= 0:
            continue
        price = unit_prices.get(certificate_type)
        if price is None:
            raise InvalidValueError(
                "has no unit price for a certificate type of the inventory",
                field=f"unit_prices.{certificate_type}",
            )
        decision = backdating.assess_start(first, term=term, today=today, price=price)
        if not decision.allowed:
            return SubscriptionResult(
                outcome=ChargeOutcome.DENIED,
                reason=str(decision.reason),
                explanation=decision.explanation,
                term_start=first,
            )
        assert decision.charge is not None
        unit_charges[certificate_type] = decision.charge
    cert_plan = plan_certificates(ctx, plan)
    lines = _lines(inventory, unit_charges, cert_plan)
    currency = next(iter(unit_prices.values())).currency if unit_prices else "USD"
    total = sum((line.total for line in lines), Money.zero(currency))
    result, sale = charge(
        ctx,
        amount=total,
        key=key,
        actor=actor,
        customer_id=customer_id,
        subscription_id=sub_id,
        lines=lines,
        description=f"{term.describe()} subscription from {first.isoformat()}",
        claim=claim,
    )
    if result.outcome is not ChargeOutcome.CHARGED:
        return SubscriptionResult(
            outcome=result.outcome,
            explanation=result.explanation,
            charge=result,
            reason=result.reason,
            term_start=first,
        )
    ordered = order_certificates(
        ctx,
        cert_plan,
        customer_id=customer_id,
        subscription_id=sub_id,
        key=key,
        transaction_id=sale.id if sale else None,
    )
    with ctx.store.session() as s:
        s.put_subscription(draft)
        ordered.record(ctx, s, key=key, actor=actor)
        receipts.record_receipt(ctx, s, sale, on=today, actor=actor)  # engine.receipts
        ctx.audit(
            s,
            action="subscription.added",
            subject_id=sub_id,
            actor=actor,
            detail={"start": first.isoformat(), "charge": str(total)},
        )
    ctx.emit(SubscriptionAdded(at=ctx.now(), subscription=draft, charge=sale))
    bought = ", ".join(
        f"{line.quantity} × {line.certificate_type} at {line.unit_price}" for line in lines
    )
    backdated = (
        f" Each certificate's price is prorated: {decision.explanation}"
        if decision is not None and first < today
        else ""
    )
    return SubscriptionResult(
        outcome=ChargeOutcome.CHARGED,
        subscription_id=sub_id,
        charge=result,
        term_start=first,
        term_end=draft.term_end,
        certificate_ids=tuple(c.id for c in ordered.certificates),
        explanation=f"Subscription {sub_id}: {term.describe()} from {first.isoformat()} to "
        f"{draft.term_end.isoformat()}, charged {total} ({bought}).{backdated}{ordered.note()}",
    )


def _lines(
    inventory: Mapping[str, int],
    unit_charges: Mapping[str, Money],
    cert_plan: Sequence[tuple[str, str, str]],
) -> list[CertificateLine]:
    """The sale's lines: one per named certificate, then the unnamed units per type."""
    rest = {t: q for t, q in sorted(inventory.items()) if q > 0}
    lines: list[CertificateLine] = []
    for cert_id, domain, certificate_type in cert_plan:
        rest[certificate_type] -= 1
        lines.append(
            CertificateLine(
                certificate_type=certificate_type,
                quantity=1,
                unit_price=unit_charges[certificate_type],
                domain=domain,
                certificate_id=cert_id,
            )
        )
    lines.extend(
        CertificateLine(certificate_type=t, quantity=q, unit_price=unit_charges[t])
        for t, q in sorted(rest.items())
        if q > 0
    )
    return lines


def add_inventory(
    ctx: EngineContext,
    subscription_id: str,
    *,
    certificate_type: str,
    quantity: int,
    domains: Sequence[str] = (),
    key: str,
    actor: str,
) -> InventoryResult:
    """Add units to the running term: a prorated line for the next invoice, no charge now.

    ``domains`` names one domain per unit (or none: unnamed units); each named unit's
    certificate is ordered now, under the same rules as a new subscription's.
    """
    with ctx.store.session() as s:
        sub = _subscription(s, subscription_id)
        customer = _customer(s, sub.customer_id)
    today = customer_today(ctx, customer)
    # bad input (a quantity below one, a type without a price) raises before anything else
    changes.add_inventory(sub, certificate_type=certificate_type, quantity=quantity, at=today)
    plan = certificates.plan_domains({certificate_type: quantity}, domains)
    refusal = plan if not plan.allowed else first_blocked(ctx, plan)
    if refusal is not None:
        return InventoryResult(
            subscription_id=sub.id,
            allowed=False,
            reason=str(refusal.reason),
            explanation=refusal.explanation,
        )
    cert_plan = plan_certificates(ctx, plan)
    with ctx.store.session() as s:
        sub = _subscription(s, subscription_id, lock=True)
        change = changes.add_inventory(
            sub, certificate_type=certificate_type, quantity=quantity, at=today
        )
        s.put_subscription(change.subscription)
        s.add_invoice_lines(sub.id, change.lines)
        ctx.audit(
            s,
            action="inventory.added",
            subject_id=sub.id,
            actor=actor,
            detail={
                "certificate_type": certificate_type,
                "quantity": quantity,
                "domains": [domain for _, domain, _ in cert_plan],
                "lines": unstructure(list(change.lines)),
            },
        )
    ordered = order_certificates(
        ctx,
        cert_plan,
        customer_id=sub.customer_id,
        subscription_id=sub.id,
        key=key,
        transaction_id=None,
    )
    with ctx.store.session() as s:
        ordered.record(ctx, s, key=key, actor=actor)
    named = f" {plan.explanation}" if ordered.certificates else ""
    return InventoryResult(
        subscription_id=sub.id,
        lines=change.lines,
        certificate_ids=tuple(c.id for c in ordered.certificates),
        explanation=f"{change.explanation}{named}{ordered.note()}",
    )


def change_renewal_inventory(
    ctx: EngineContext, subscription_id: str, *, inventory: Mapping[str, int], actor: str
) -> InventoryResult:
    """Change what renews next term: no charge now, full price at renewal."""
    with ctx.store.session() as s:
        sub = _subscription(s, subscription_id, lock=True)
        change = changes.change_renewal_inventory(sub, inventory=inventory)
        s.put_subscription(change.subscription)
        ctx.audit(
            s,
            action="renewal_inventory.changed",
            subject_id=sub.id,
            actor=actor,
            detail={"inventory": dict(inventory)},
        )
    return InventoryResult(subscription_id=sub.id, explanation=change.explanation)


def set_state(
    ctx: EngineContext, subscription_id: str, state: SubscriptionState, *, actor: str
) -> StateResult:
    """Suspend, re-enable or cancel a subscription (``rules.suspension``; audited). Re-enabling
    moves the term end by the days suspended; a change the states do not allow is a denial. A
    pending order whose activation has written a sale that may have taken the money cannot be
    cancelled (the activation would overwrite the cancellation): reconcile it first."""
    with ctx.store.session() as s:
        sub = _subscription(s, subscription_id, lock=True)
        customer = _customer(s, sub.customer_id)
        if sub.state is SubscriptionState.PENDING and state is SubscriptionState.CANCELLED:
            try:  # an activation whose charge may have taken the money: it decides first
                activation.claim_pending(s, sub)
            except activation.ActivationTaken as taken:
                return StateResult(
                    subscription_id=sub.id,
                    outcome=StateOutcome.DENIED,
                    reason=str(suspension.StateReason.STATE_CHANGE_NOT_ALLOWED),
                    explanation=f"Subscription {sub.id} cannot be cancelled now: {taken.why}; "
                    "reconcile its activation first.",
                    subscription=sub,
                )
        change = suspension.change_state(sub, state, today=customer_today(ctx, customer))
        if change.changed:
            s.put_subscription(change.subscription)
            ctx.audit(
                s,
                action=f"subscription.{state.value}",
                subject_id=sub.id,
                actor=actor,
                detail={"from": sub.state.value, "paused_days": change.paused_days},
            )
    outcome = {
        SubscriptionState.SUSPENDED: StateOutcome.SUSPENDED,
        SubscriptionState.ACTIVE: StateOutcome.REENABLED,
        SubscriptionState.CANCELLED: StateOutcome.CANCELLED,
    }.get(state, StateOutcome.UNCHANGED)
    if not change.allowed:
        outcome = StateOutcome.DENIED
    elif not change.changed:
        outcome = StateOutcome.UNCHANGED
    return StateResult(
        subscription_id=sub.id,
        outcome=outcome,
        reason=str(change.reason) if change.reason else None,
        explanation=change.explanation,
        subscription=change.subscription,
        paused_days=change.paused_days,
    )


def record_usage(ctx: EngineContext, events: Iterable[UsageEvent]) -> int:
    """Store usage events (duplicates by id are ignored); returns how many were new."""
    if not isinstance(events, Iterable):
        raise InvalidTypeError(
            f"must be an iterable of UsageEvent, not {type(events).__name__}",
            field="events",
            value=events,
        )
    batch = list(events)
    for i, e in enumerate(batch):
        if not isinstance(e, UsageEvent):
            raise InvalidTypeError(
                f"must be a UsageEvent, not {type(e).__name__}", field=f"events[{i}]", value=e
            )
        if e.subscription_id is None:
            raise InvalidValueError(
                "must name its subscription", field=f"events[{i}].subscription_id"
            )
    with ctx.store.session() as s:
        return s.add_usage_events(batch)
