"""The collection calls of ``BillingEngine`` (a mixin, like ``engine.jobs``): ``collect_due``
(a job), ``record_outside_payment``, ``set_autopay`` and the ``past_due_invoices`` read. The flows are ``engine.collect`` and
``engine.dunning``; see docs/collection.md, "Collecting due invoices".
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import attrs

from ..errors import InvalidTypeError
from ..money import Money
from ..periods import Period
from ..rules.dunning import DunningPolicy, check_settings
from ..rules.permissions import SYSTEM_ACTOR, Actor
from ..timeutil import require_aware
from . import collect, invoice_flows, overdue
from .base import EngineBase
from .collect import (
    DEFAULT_DELINQUENCY_PERIOD,
    AutopayOutcome,
    AutopayResult,
    CollectRunOutcome,
    CollectRunResult,
)
from .guards import actor as _actor
from .guards import ident
from .invoice_results import InvoiceResult, denied_on
from .overdue import PastDueInvoice

__all__ = ["EngineCollect"]


class EngineCollect(EngineBase):
    """AutoPay collection with dunning and delinquency, and payments made outside the gateway."""

    def collect_due(
        self,
        now: datetime | None = None,
        *,
        actor: Actor | None = None,
        dunning: DunningPolicy | None = None,
        delinquency_period: Period | timedelta | None = DEFAULT_DELINQUENCY_PERIOD,
        invoice_ids: Sequence[str] | None = None,
    ) -> CollectRunResult:
        """Collect every open invoice due on its customer's local date at ``now`` (default: the
        clock) whose subscription has autopay on; a failure is retried per ``dunning`` (default
        ``DunningPolicy()``: 8, 8, 8 days) and an invoice unpaid ``delinquency_period`` after
        its due date (default 30 days; ``None``: never) cancels its subscription."""
        who = SYSTEM_ACTOR if actor is None else _actor(actor)
        at = self.ctx.now() if now is None else require_aware(now, "now")
        policy, period = check_settings(dunning, delinquency_period)
        ids = None
        if invoice_ids is not None:
            if isinstance(invoice_ids, str) or not isinstance(invoice_ids, Sequence):
                raise InvalidTypeError("must be a sequence of invoice ids", field="invoice_ids")
            ids = [ident(i, f"invoice_ids[{n}]") for n, i in enumerate(invoice_ids)]
        return self._guarded(
            "collect_due",
            who,
            lambda d: CollectRunResult(
                outcome=CollectRunOutcome.DENIED, reason=str(d.reason), explanation=d.explanation
            ),
            lambda: collect.collect_due(
                self.ctx,
                at,
                policy=policy,
                delinquency_period=period,
                invoice_ids=ids,
                actor=who.id,
            ),
        )

    def record_outside_payment(
        self,
        invoice_id: str,
        *,
        reference: str,
        idempotency_key: str,
        actor: Actor,
        amount: Money | None = None,
    ) -> InvoiceResult:
        """Record ``amount`` (default: what is left to pay) received outside the gateway (a
        cheque, a wire) under ``reference`` on an open invoice: no gateway call, audited."""
        who = _actor(actor)
        ident(invoice_id, "invoice_id")
        ident(reference, "reference")
        invoice = invoice_flows.payment_target(self.ctx, invoice_id, amount)  # bad input raises
        params = {"invoice_id": invoice_id, "amount": amount, "reference": reference}
        return self._guarded(
            "record_outside_payment",
            who,
            denied_on(invoice_id),
            lambda: collect.record_outside_payment(
                self.ctx, invoice_id, amount=amount, reference=reference, actor=who.id
            ),
            customer_id=invoice.customer_id,
            keyed_by=(idempotency_key, params, InvoiceResult),
        )

    def past_due_invoices(
        self,
        now: datetime | None = None,
        *,
        customer_id: str | None = None,
        delinquency_period: Period | timedelta | None = DEFAULT_DELINQUENCY_PERIOD,
        actor: Actor | None = None,
    ) -> list[PastDueInvoice]:
        """Every open invoice (of ``customer_id``, or of everyone) past its due date on its
        customer's local date at ``now`` (default: the clock), oldest due first: days overdue,
        ``past_due`` or ``delinquent``, the day ``collect_due`` writes it off, and a sentence.
        Past due is a reading, not a stored status (``engine.overdue``)."""
        self._read("past_due_invoices", actor)
        at = self.ctx.now() if now is None else require_aware(now, "now")
        if customer_id is not None:
            ident(customer_id, "customer_id")
        _, period = check_settings(None, delinquency_period)
        return overdue.past_due_invoices(
            self.ctx, at, delinquency_period=period, customer_id=customer_id
        )

    def set_autopay(self, subscription_id: str, enabled: bool, *, actor: Actor) -> AutopayResult:
        """Turn AutoPay on or off for a subscription (``collect_due`` skips it when off)."""
        who = _actor(actor)
        ident(subscription_id, "subscription_id")
        if not isinstance(enabled, bool):
            raise InvalidTypeError(
                f"must be a bool, not {type(enabled).__name__}", field="enabled", value=enabled
            )

        def body() -> AutopayResult:
            with self.store.session() as s:
                sub = s.get_subscription(subscription_id, lock=True)
                assert sub is not None  # the guard checked it
                s.put_subscription(attrs.evolve(sub, autopay=enabled))
                self.ctx.audit(
                    s,
                    action="subscription.autopay",
                    subject_id=subscription_id,
                    actor=who.id,
                    detail={"autopay": enabled},
                )
            return AutopayResult(
                subscription_id=subscription_id,
                outcome=AutopayOutcome.UNCHANGED if sub.autopay == enabled else AutopayOutcome.SET,
                autopay=enabled,
                explanation=f"AutoPay is {'on' if enabled else 'off'} for subscription "
                f"{subscription_id}.",
            )

        return self._guarded(
            "set_autopay",
            who,
            lambda d: AutopayResult(
                subscription_id=subscription_id,
                outcome=AutopayOutcome.DENIED,
                reason=str(d.reason),
                explanation=d.explanation,
            ),
            body,
            subscription_id=subscription_id,
        )
