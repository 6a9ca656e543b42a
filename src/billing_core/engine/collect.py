"""Collecting due invoices (``collect_due``) and recording payments made outside the gateway.

``collect_due(now)`` looks at every ``open`` invoice whose due date (``due_on``, else
``issued_on``) has come on its customer's local date and whose subscription has ``autopay`` on
and is neither pending, suspended, cancelled nor expired (an invoice of no one subscription is
collected too). Each is paid through ``pay_invoice``'s
path: the amount is reserved on the invoice in the session that writes the sale ahead, the
customer's instruments are tried in payment order, and the idempotency key is
``collect:<invoice id>:<attempt>``, so a run, a concurrent worker or a replay never charges an
invoice twice. Per invoice, in order:

1. Left alone: cancelled for delinquency already, a payment in flight (its answer was lost:
   ``reconcile()`` first), or not due yet.
2. **Delinquent** (``rules.collection.assess_unpaid`` with ``delinquency_period``: ``cancel_on``
   has come; AutoPay on or off): the invoice is written off (``uncollectible``, still payable)
   and its subscription cancelled with the rule's sentence (``cancelled``); an invoice of no
   subscription (or of one cancelled already) is only written off (``uncollectible``).
3. Unless AutoPay is off, the schedule gave up (``gave_up``) or its ``next_collection_on``
   has not come, one attempt: ``collected`` (paid; a ``past_due`` subscription is ``active``
   again), ``declined`` (declined on every instrument, blocked by a blocklist entry or the
   customer's blocklisting, with no gateway call, or no usable instrument: the attempt is
   counted, the next one scheduled by the ``DunningPolicy``,
   the subscription goes ``past_due``; after the last one collection gives up and the merchant
   is notified), ``failed`` (never reached the gateway: the same attempt, with the same key,
   on the next run), ``unknown`` (the answer was lost: reserved until ``reconcile()``).

``record_outside_payment`` records money received outside the gateway (a cheque, a wire) on an
open (or uncollectible) invoice: no gateway call, ``amount_paid`` grows by it,
``outside_payments`` names it, and ``OutsidePaymentRecorded`` is emitted.
"""

from __future__ import annotations

import enum
from collections.abc import Collection
from datetime import date, datetime, timedelta
from functools import partial

import attrs

from ..invoices import Invoice, InvoiceStatus
from ..model import Customer, SubscriptionState
from ..money import Money
from ..periods import Period
from ..plugins.events import OutsidePaymentRecorded
from ..rules import collection
from ..rules import dunning as dunning_rules
from ..rules import invoice_transitions as transitions
from ..rules.invoice_transitions import InvoiceEvent
from ..serialization import unstructure
from ..timeutil import local_date, timezone
from . import dunning, invoice_payments, overdue
from .charging import NO_USABLE_INSTRUMENT
from .context import EngineContext
from .guards import blocklisted
from .invoice_flows import _denied, _get, read_invoice, retrying
from .invoice_results import InvoiceOutcome, InvoiceResult

__all__ = [
    "DEFAULT_DELINQUENCY_PERIOD",
    "AutopayOutcome",
    "AutopayResult",
    "CollectOutcome",
    "CollectRunOutcome",
    "CollectRunResult",
    "CollectionResult",
    "collect_due",
    "collection_key",
    "record_outside_payment",
]

DEFAULT_DELINQUENCY_PERIOD = Period.days(30)
"""How long an invoice may stay unpaid after its due date before its subscription is
cancelled (``collect_due(delinquency_period=...)``; ``None`` never cancels)."""

_NOT_COLLECTED = frozenset(
    {
        SubscriptionState.PENDING,
        SubscriptionState.SUSPENDED,
        SubscriptionState.CANCELLED,
        SubscriptionState.EXPIRED,
    }
)
"""Subscriptions whose invoices AutoPay leaves alone (paused, ended, or not started)."""
_ENDED = frozenset({SubscriptionState.CANCELLED, SubscriptionState.EXPIRED})


class CollectOutcome(enum.StrEnum):
    """How one invoice's collection ended."""

    COLLECTED = "collected"  # paid in full
    DECLINED = "declined"  # not paid, for good: counted, retried per the dunning schedule
    GAVE_UP = "gave_up"  # declined on the schedule's last try: the merchant is notified
    FAILED = "failed"  # never reached the gateway: tried again with the same key next run
    UNKNOWN = "unknown"  # the gateway's answer was lost: reserved until reconcile()
    CANCELLED = "cancelled"  # delinquent: written off, and the subscription was cancelled
    UNCOLLECTIBLE = "uncollectible"  # delinquent: written off (no subscription to cancel)
    DENIED = "denied"  # nothing to collect (paid, void, being paid, ...): nothing charged


@attrs.frozen(kw_only=True)
class CollectionResult:
    """One invoice's collection: ``attempt`` counts from 1; ``key`` is its idempotency key."""

    invoice_id: str
    outcome: CollectOutcome
    explanation: str
    attempt: int = 0
    key: str | None = None
    reason: str | None = None
    transaction_id: str | None = None
    next_collection_on: date | None = None
    subscription_id: str | None = None


class CollectRunOutcome(enum.StrEnum):
    DONE = "done"
    DENIED = "denied"


@attrs.frozen(kw_only=True)
class CollectRunResult:
    """``collect_due``: one ``CollectionResult`` per invoice it acted on, in invoice order."""

    outcome: CollectRunOutcome = CollectRunOutcome.DONE
    collections: tuple[CollectionResult, ...] = ()
    reason: str | None = None
    explanation: str = ""

    def count(self, outcome: CollectOutcome | str) -> int:
        return sum(1 for c in self.collections if c.outcome == outcome)


class AutopayOutcome(enum.StrEnum):
    SET = "set"
    UNCHANGED = "unchanged"
    DENIED = "denied"


@attrs.frozen(kw_only=True)
class AutopayResult:
    """``set_autopay``: whether the subscription's AutoPay flag changed, and what it is now."""

    subscription_id: str
    outcome: AutopayOutcome
    explanation: str
    autopay: bool | None = None
    reason: str | None = None


def collection_key(invoice_id: str, attempt: int) -> str:
    """The idempotency key of attempt ``attempt`` (from 1) at collecting ``invoice_id``."""
    return f"collect:{invoice_id}:{attempt}"


def _today(
    ctx: EngineContext, invoice: Invoice, now: datetime
) -> tuple[date, bool, Customer | None]:
    """The customer's local date at ``now``, whether the invoice's subscription (if any) is
    collected automatically (autopay on, and not pending, suspended, cancelled or expired), and
    the customer."""
    with ctx.store.session() as s:
        customer = s.get_customer(invoice.customer_id)
        sub = s.get_subscription(invoice.subscription_id) if invoice.subscription_id else None
    tz = timezone(customer.timezone) if customer else timezone("UTC")
    auto = sub is None or (sub.autopay and sub.state not in _NOT_COLLECTED)
    return local_date(now, tz), auto, customer


def collect_due(
    ctx: EngineContext,
    now: datetime,
    *,
    policy: dunning_rules.DunningPolicy,
    delinquency_period: Period | timedelta | None,
    invoice_ids: Collection[str] | None = None,
    actor: str,
) -> CollectRunResult:
    """Collect every due open invoice (or only ``invoice_ids``: then a paid or void one is a
    denial in the results, nothing charged)."""
    with ctx.store.session() as s:
        if invoice_ids is None:
            invoices = s.list_invoices(statuses=[InvoiceStatus.OPEN])
        else:
            invoices = [_get(s, i) for i in invoice_ids]
    results: list[CollectionResult] = []
    for invoice in invoices:
        if invoice.status is not InvoiceStatus.OPEN:
            decision = transitions.assess(invoice, InvoiceEvent.PAY_REST)
            results.append(
                CollectionResult(
                    invoice_id=invoice.id,
                    outcome=CollectOutcome.DENIED,
                    reason=str(decision.reason),
                    explanation=decision.explanation,
                )
            )
            continue
        done = collect_one(
            ctx, invoice, now, policy=policy, delinquency_period=delinquency_period, actor=actor
        )
        if done is not None:
            results.append(done)
    n = len(results)
    counts = ", ".join(
        f"{sum(1 for r in results if r.outcome is o)} {o.value}"
        for o in CollectOutcome
        if any(r.outcome is o for r in results)
    )
    return CollectRunResult(
        collections=tuple(results),
        explanation=f"Acted on {n} due invoice{'' if n == 1 else 's'}"
        + (f": {counts}." if counts else "."),
    )


def collect_one(
    ctx: EngineContext,
    invoice: Invoice,
    now: datetime,
    *,
    policy: dunning_rules.DunningPolicy,
    delinquency_period: Period | timedelta | None,
    actor: str,
) -> CollectionResult | None:
    """One invoice's turn in ``collect_due``; None when it is left alone (step 1)."""
    if invoice.collection_stopped == dunning.STOPPED_DELINQUENT or invoice.payments_in_flight:
        return None
    today, auto, customer = _today(ctx, invoice, now)
    due_on = overdue.due_date(invoice)
    if today < due_on:
        return None
    sub_id = invoice.subscription_id
    if delinquency_period is not None:
        unpaid = collection.assess_unpaid(
            due_on=due_on, today=today, delinquency_period=delinquency_period
        )
        if unpaid.state is collection.UnpaidState.DELINQUENT:
            return _delinquent(ctx, invoice, unpaid, actor=actor)
    if not auto or invoice.collection_stopped:  # autopay off, or the schedule ran out
        return None
    if invoice.next_collection_on is not None and today < invoice.next_collection_on:
        return None
    attempt = invoice.collection_attempts + 1
    key = collection_key(invoice.id, attempt)
    if customer is not None and customer.blocklisted:  # the guard path's own check
        denial = blocklisted(customer, "pay_invoice")
        paid = InvoiceResult(
            outcome=InvoiceOutcome.DENIED,
            reason=str(denial.reason),
            invoice_id=invoice.id,
            explanation=denial.explanation,
        )
    else:
        paid = invoice_payments.pay_invoice(ctx, invoice.id, amount=None, key=key, actor=actor)
    base = partial(
        CollectionResult, invoice_id=invoice.id, attempt=attempt, key=key, subscription_id=sub_id
    )
    if paid.outcome in (InvoiceOutcome.PAID, InvoiceOutcome.PARTIALLY_PAID):
        assert paid.invoice is not None
        dunning.reactivate(ctx, paid.invoice, actor=actor)
        return base(
            outcome=CollectOutcome.COLLECTED,
            transaction_id=paid.transaction_id,
            explanation=paid.explanation,
        )
    if paid.outcome is InvoiceOutcome.UNKNOWN:
        return base(
            outcome=CollectOutcome.UNKNOWN,
            transaction_id=paid.transaction_id,
            explanation=f"{paid.explanation} It stays reserved until reconcile().",
        )
    definitive = paid.outcome is InvoiceOutcome.DECLINED or (
        paid.outcome is InvoiceOutcome.FAILED and paid.reason == NO_USABLE_INSTRUMENT
    )
    blocked = paid.outcome is InvoiceOutcome.DENIED and (paid.reason or "").startswith(
        ("blocklisted_", "customer_blocklisted")
    )
    if not (definitive or blocked):
        if paid.outcome is InvoiceOutcome.FAILED:
            return base(
                outcome=CollectOutcome.FAILED,
                reason=paid.reason,
                explanation=f"{paid.explanation} Tried again with key {key} on the next run.",
            )
        return None  # paid meanwhile, being paid by another worker: nothing to do
    step = dunning_rules.next_attempt(attempt, today, policy)
    counted = dunning.record_failure(ctx, invoice.id, attempt, step, actor=actor)
    if counted is None:
        return None  # another worker counted this attempt
    dunning.past_due(ctx, counted, paid.explanation, actor=actor)
    return base(
        outcome=CollectOutcome.GAVE_UP if step.give_up else CollectOutcome.DECLINED,
        reason=paid.reason,
        transaction_id=paid.transaction_id,
        next_collection_on=step.on,
        explanation=f"{paid.explanation} {step.explanation}",
    )


def _delinquent(
    ctx: EngineContext, invoice: Invoice, unpaid: collection.UnpaidAssessment, *, actor: str
) -> CollectionResult | None:
    """Step 2: write the invoice off and cancel its subscription (None: another worker did)."""
    left = f"{invoice.amount_remaining} unpaid, written off as uncollectible (a late payment is "
    live = False
    if invoice.subscription_id is not None:
        with ctx.store.session() as s:
            sub = s.get_subscription(invoice.subscription_id)
        live = sub is not None and sub.state not in _ENDED
    if live:
        text = f"Invoice {invoice.number}: {unpaid.explanation} {left}still taken)."
    else:
        assert unpaid.cancel_on is not None
        text = (
            f"Invoice {invoice.number}: due on {unpaid.due_on.isoformat()} and unpaid "
            f"{(unpaid.today - unpaid.due_on).days} days later, past the end of its delinquency "
            f"period on {unpaid.cancel_on.isoformat()}: {left}still taken)."
        )
    done = dunning.cancel_for_delinquency(ctx, invoice, text, actor=actor)
    if done is None:
        return None  # another worker wrote it off first
    _, cancelled = done
    return CollectionResult(
        invoice_id=invoice.id,
        outcome=CollectOutcome.CANCELLED if cancelled else CollectOutcome.UNCOLLECTIBLE,
        reason="delinquent",
        explanation=text,
        attempt=invoice.collection_attempts,
        subscription_id=invoice.subscription_id,
    )


# -- outside payments ------------------------------------------------------------------------
def record_outside_payment(
    ctx: EngineContext,
    invoice_id: str,
    *,
    amount: Money | None,
    reference: str,
    actor: str,
) -> InvoiceResult:
    """Record ``amount`` (default: what is left) received outside the gateway under
    ``reference``: no gateway call; audited; the invoice's figures add up."""

    def run() -> tuple[Invoice, InvoiceResult | None, str, Money]:
        with ctx.store.session() as s:
            current = _get(s, invoice_id, lock=True)
            if any(ref == reference for ref, _ in current.outside_payments):
                return current, _duplicate(current, reference), "", Money.zero(current.currency)
            pay, decision = invoice_payments._payment_decision(current, amount)
            if not decision.allowed:
                return current, _denied(current, decision), "", pay
            assert decision.becomes is not None
            stored = attrs.evolve(
                current,
                status=decision.becomes,
                amount_paid=current.amount_paid + pay,
                outside_payments=(*current.outside_payments, (reference, pay)),
            )
            s.update_invoice(stored)
            ctx.audit(
                s,
                action="invoice.outside_payment",
                subject_id=invoice_id,
                actor=actor,
                detail={"amount": unstructure(pay), "reference": reference},
            )
            return stored, None, decision.explanation, pay

    stored, refused, why, pay = retrying(run)
    if refused is not None:
        return refused
    ctx.emit(OutsidePaymentRecorded(at=ctx.now(), invoice=stored, amount=pay, reference=reference))
    dunning.reactivate(ctx, stored, actor=actor)
    full = stored.status is InvoiceStatus.PAID
    return InvoiceResult(
        outcome=InvoiceOutcome.PAID if full else InvoiceOutcome.PARTIALLY_PAID,
        invoice_id=stored.id,
        invoice=read_invoice(ctx, invoice_id),
        amount=pay,
        explanation=f"Recorded {pay} received outside the gateway ({reference}) on invoice "
        f"{stored.number}; {stored.amount_remaining} left to pay "
        f"({why.split(': ', 1)[-1].rstrip('.')}).",
    )


def _duplicate(invoice: Invoice, reference: str) -> InvoiceResult:
    return InvoiceResult(
        outcome=InvoiceOutcome.DENIED,
        reason="duplicate_reference",
        invoice_id=invoice.id,
        invoice=invoice,
        explanation=f"Invoice {invoice.number} already records a payment with reference "
        f"{reference}: it is not recorded twice.",
    )
