"""The subscription and invoice records of collection: past due, back to active, cancelled for
delinquency, and the dunning record kept on the invoice.

Each helper runs in its own store session and re-reads what it changes locked, compare-and-set:
many workers may run ``collect_due`` at once, and a record moves once.

* ``past_due``: a failed collection moves the invoice's subscription to ``past_due``
  (``renewal_unpaid`` in ``rules.subscription_states``), audited and emitted
  (``SubscriptionPastDue``).
* ``reactivate``: a paid invoice moves a ``past_due`` subscription back to ``active``
  (``renewal_paid``), audited (``subscription.reactivated``), once no other invoice of the
  subscription is unpaid after a failed collection (``failed_invoices``) and its term has not
  ended (an ended term's renewal is chased by ``renew_due``).
* ``record_failure``: the failed attempt counted on the invoice with the dunning schedule's next
  date (or ``collection_stopped="gave_up"``), only when the invoice still counts the attempts
  before it (a concurrent worker's failure of the same attempt is counted once).
* ``cancel_for_delinquency``: the invoice is written off (``uncollectible``, its collection
  stopped ``delinquent``; ``InvoiceMarkedUncollectible``) and its subscription cancelled
  (``delinquent``), audited and emitted (``SubscriptionCancelledForDelinquency``).
"""

from __future__ import annotations

import attrs

from ..invoices import Invoice, InvoiceStatus
from ..model import Subscription, SubscriptionState
from ..plugins.events import (
    CollectionGaveUp,
    SubscriptionCancelledForDelinquency,
    SubscriptionPastDue,
)
from ..plugins.protocols import StoreSession
from ..rules.dunning import DunningStep
from ..rules.subscription_states import StateEvent, next_state
from ..timeutil import local_date, timezone
from . import overdue
from .context import EngineContext
from .invoice_flows import _get, retrying

__all__ = [
    "GAVE_UP",
    "STOPPED_DELINQUENT",
    "cancel_for_delinquency",
    "failed_invoices",
    "past_due",
    "reactivate",
    "record_failure",
]

GAVE_UP = "gave_up"
STOPPED_DELINQUENT = "delinquent"


def _move(
    ctx: EngineContext,
    subscription_id: str,
    event: StateEvent,
    action: str,
    actor: str,
    *,
    fallback: StateEvent | None = None,
    **detail: str,
) -> Subscription | None:
    """Move the subscription by ``event`` (else ``fallback``) if its state allows it; the
    stored one, else None."""

    def run() -> Subscription | None:
        with ctx.store.session() as s:
            current = s.get_subscription(subscription_id, lock=True)
            if current is None:
                return None
            move = next_state(current.state, event)
            if not move.allowed and fallback is not None:
                move = next_state(current.state, fallback)
            if not move.allowed or move.state is current.state:
                return None
            stored = attrs.evolve(current, state=move.state)
            if move.state is SubscriptionState.CANCELLED:
                stored = attrs.evolve(stored, auto_renew=False)
            s.put_subscription(stored)
            ctx.audit(s, action=action, subject_id=subscription_id, actor=actor, detail=detail)
            return stored

    return retrying(run)


def past_due(ctx: EngineContext, invoice: Invoice, why: str, *, actor: str) -> Subscription | None:
    """The invoice's subscription goes ``past_due`` (if it can); emitted with ``why``."""
    if invoice.subscription_id is None:
        return None
    stored = _move(
        ctx,
        invoice.subscription_id,
        StateEvent.RENEWAL_UNPAID,
        "subscription.past_due",
        actor,
        invoice=invoice.id,
    )
    if stored is not None:
        text = (
            f"Subscription {stored.id} is past due: invoice {invoice.number} "
            f"({invoice.amount_remaining} due on {overdue.due_date(invoice).isoformat()}) was not collected. "
            f"{why}"
        )
        ctx.emit(SubscriptionPastDue(at=ctx.now(), subscription=stored, explanation=text))
    return stored


def failed_invoices(
    s: StoreSession, subscription: Subscription, *, besides: str | None = None
) -> list[Invoice]:
    """The open invoices of ``subscription`` (other than ``besides``) whose collection failed
    (an attempt counted, or collection stopped): while one is left, it stays past due."""
    return [
        i
        for i in s.list_invoices(
            customer_id=subscription.customer_id, statuses=[InvoiceStatus.OPEN]
        )
        if i.id != besides
        and i.subscription_id == subscription.id
        and (i.collection_attempts > 0 or i.collection_stopped is not None)
    ]


def reactivate(ctx: EngineContext, invoice: Invoice, *, actor: str) -> Subscription | None:
    """A paid invoice returns its ``past_due`` subscription to ``active``, unless another of its
    invoices is still unpaid after a failed collection (``failed_invoices``) or its term has
    ended (then its renewal is unpaid: ``renew_due`` chases it, ``engine.renewal_dunning``)."""
    if invoice.subscription_id is None or invoice.status is not InvoiceStatus.PAID:
        return None
    with ctx.store.session() as s:
        sub = s.get_subscription(invoice.subscription_id)
        if sub is None or sub.state is not SubscriptionState.PAST_DUE:
            return None
        customer = s.get_customer(sub.customer_id)
        if failed_invoices(s, sub, besides=invoice.id):
            return None
    today = local_date(ctx.now(), timezone(customer.timezone if customer else "UTC"))
    if today >= sub.term_end:
        return None  # the renewal is unpaid too: renew_due chases it
    return _move(
        ctx,
        invoice.subscription_id,
        StateEvent.RENEWAL_PAID,
        "subscription.reactivated",
        actor,
        invoice=invoice.id,
    )


def record_failure(
    ctx: EngineContext, invoice_id: str, attempt: int, step: DunningStep, *, actor: str
) -> Invoice | None:
    """Count failed attempt ``attempt`` on the invoice (once) with the schedule's next date, or
    stop collecting it (``gave_up``); audited, and the merchant notified on giving up. None
    when another worker counted it first."""

    def run() -> Invoice | None:
        with ctx.store.session() as s:
            current = _get(s, invoice_id, lock=True)
            if current.collection_attempts != attempt - 1 or current.collection_stopped:
                return None
            stored = attrs.evolve(
                current,
                collection_attempts=attempt,
                next_collection_on=step.on,
                collection_stopped=GAVE_UP if step.give_up else None,
            )
            s.update_invoice(stored)
            ctx.audit(
                s,
                action="invoice.collection_gave_up" if step.give_up else "invoice.dunning",
                subject_id=invoice_id,
                actor=actor,
                detail={
                    "attempt": attempt,
                    "next_collection_on": step.on.isoformat() if step.on else None,
                },
            )
            return stored

    stored = retrying(run)
    if stored is not None and step.give_up:
        sub = None
        if stored.subscription_id is not None:
            with ctx.store.session() as s:
                sub = s.get_subscription(stored.subscription_id)
        ctx.emit(
            CollectionGaveUp(
                at=ctx.now(),
                invoice=stored,
                attempts=attempt,
                notify_emails=ctx.notify_emails,
                explanation=f"Invoice {stored.number}: {stored.amount_remaining} due on "
                f"{overdue.due_date(stored).isoformat()} could not be collected. {step.explanation}",
                subscription=sub,
            )
        )
    return stored


def cancel_for_delinquency(
    ctx: EngineContext, invoice: Invoice, explanation: str, *, actor: str
) -> tuple[Invoice, Subscription | None] | None:
    """Write the invoice off (``uncollectible``, ``collection_stopped="delinquent"``) and cancel
    its subscription (if it has one that can be cancelled): the invoice as stored and the
    subscription cancelled now, or None when another worker wrote it off first."""

    def stop() -> Invoice | None:
        with ctx.store.session() as s:
            current = _get(s, invoice.id, lock=True)
            if (
                current.collection_stopped == STOPPED_DELINQUENT
                or current.status is not InvoiceStatus.OPEN
            ):
                return None
            return overdue.write_off(
                ctx, s, current, why=explanation, actor=actor, stopped=STOPPED_DELINQUENT
            )

    stored_invoice = retrying(stop)
    if stored_invoice is None:
        return None
    overdue.written_off(ctx, stored_invoice, explanation)
    if invoice.subscription_id is None:
        return stored_invoice, None
    stored = _move(
        ctx,
        invoice.subscription_id,
        StateEvent.DELINQUENT,
        "subscription.cancelled_for_delinquency",
        actor,
        fallback=StateEvent.CANCEL,  # never collected (autopay off): still active
        invoice=invoice.id,
    )
    if stored is not None:
        ctx.emit(
            SubscriptionCancelledForDelinquency(
                at=ctx.now(), subscription=stored, invoice=stored_invoice, explanation=explanation
            )
        )
    return stored_invoice, stored
