"""The ``BillingEngine``: the seed flows, end to end, against the configured plugins.

    from billing_core import BillingEngine
    from billing_core.rules.permissions import Actor

    engine = BillingEngine(store="sqlite:///billing.sqlite3", clock=clock,
                           notify_emails=["billing@example.com"])
    agent = Actor(id="agent-7", role="support_agent")
    engine.refund_transaction("tx-...", amount=Money("10.00", "USD"),
                              idempotency_key="ticket-4711", actor=agent)

Every public call goes through one guard path (``engine.guards``): bad input raises, then the
actor is checked against the permission policy, a recorded idempotency key replays its answer,
and the customer must exist and, for a paying call, not be blocklisted. A denial is the call's
result with ``outcome=DENIED``, a reason code and a sentence; it stores nothing but an audit
entry. Every call answers with a result from ``engine.results`` (``outcome``, ``reason``,
``explanation``); only the reads return the records themselves.

Every money-moving call takes an ``idempotency_key`` and an ``actor``: a replay with the same key
returns the stored result without calling the gateway again; the same key with other parameters
raises ``IdempotencyError``. Jobs and reads take an optional ``actor`` (default: the host itself,
``SYSTEM_ACTOR``). The engine reads time only from ``clock`` (a callable returning an aware
datetime), so tests and replays control it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any

from ..decisions import Decision
from ..errors import InvalidTypeError, InvalidValueError
from ..model import Customer, SubscriptionState
from ..money import Money
from ..periods import Period
from ..plugins.protocols import CancellationState
from ..rules import limits, metering
from ..rules.permissions import Action, Actor
from ..timeutil import require_aware
from . import customers, metered_closes, refunding, subscriptions, trials
from .collect_calls import EngineCollect
from .collection_calls import EngineCollection
from .guards import actor as _actor
from .guards import certificate_counts, ident, keyed
from .idempotency import check_key
from .invoices import EngineInvoices
from .jobs import EngineJobs
from .results import (
    CancellationOutcome,
    CancellationResult,
    ChargeOutcome,
    CloseOutcome,
    CloseResult,
    CustomerResult,
    InventoryResult,
    RefundOutcome,
    RefundResult,
    StateOutcome,
    StateResult,
    SubscriptionResult,
)

__all__ = ["BillingEngine"]


class BillingEngine(EngineInvoices, EngineJobs, EngineCollection, EngineCollect):
    """Runs the billing flows against a store, a payment gateway and a certificate provider.

    ``store`` is a ``Store`` or a URL opened through the plugins (``"memory://"``,
    ``"sqlite:///billing.sqlite3"``, ``"postgresql+psycopg://..."``). ``gateway`` and
    ``certificate_provider`` are provider objects or names (``gateway="sandbox"`` for fake
    payments); without them the plugins' defaults are used (the built-in sandboxes unless
    ``settings={"sandbox": False}``). A missing gateway fails here, not at the first payment;
    ``gateway_mode`` says whether money is real, and falling back on the sandbox unasked is
    logged at INFO (see docs/engine.md, "Gateway modes").
    """

    # -- customers -------------------------------------------------------------------------------
    def add_customer(self, customer: Customer, *, actor: Actor) -> CustomerResult:
        """Store a new customer. An existing id is refused (``customer_exists``): use
        ``update_customer``. A customer added already blocklisted needs the blocklisting action."""
        if not isinstance(customer, Customer):
            raise InvalidTypeError("must be a Customer", field="customer", value=customer)
        who = _actor(actor)
        return self._guarded(
            "add_customer",
            who,
            lambda d: customers.denied(customer.id, d),
            lambda: customers.add_customer(self.ctx, customer, actor=who.id),
            subject=customer.id,
            also=Action.BLOCKLIST_CUSTOMER if customer.blocklisted else None,
        )

    def update_customer(self, customer: Customer, *, actor: Actor) -> CustomerResult:
        """Change an existing customer's details; its blocklisting stays as stored."""
        if not isinstance(customer, Customer):
            raise InvalidTypeError("must be a Customer", field="customer", value=customer)
        who = _actor(actor)
        return self._guarded(
            "update_customer",
            who,
            lambda d: customers.denied(customer.id, d),
            lambda: customers.update_customer(self.ctx, customer, actor=who.id),
            subject=customer.id,
        )

    def blocklist_customer(self, customer_id: str, *, actor: Actor) -> CustomerResult:
        """Blocklist a customer: admins only. A support agent gets a denial, not an exception."""
        return self._blocklisting("blocklist_customer", customer_id, actor, flag=True)

    def unblocklist_customer(self, customer_id: str, *, actor: Actor) -> CustomerResult:
        """Lift a customer's blocklisting: admins only, and the only way to lift it."""
        return self._blocklisting("unblocklist_customer", customer_id, actor, flag=False)

    def _blocklisting(
        self, method: str, customer_id: str, actor: Actor, *, flag: bool
    ) -> CustomerResult:
        who = _actor(actor)
        ident(customer_id, "customer_id")
        return self._guarded(
            method,
            who,
            lambda d: customers.denied(customer_id, d),
            lambda: customers.set_blocklisted(
                self.ctx, customer_id, flag, actor=who.id, role=who.role
            ),
            subject=customer_id,
        )

    # -- subscriptions ---------------------------------------------------------------------------
    def add_subscription(
        self,
        customer_id: str,
        *,
        term: Period,
        inventory: Mapping[str, int],
        unit_prices: Mapping[str, Money],
        idempotency_key: str,
        actor: Actor,
        start: date | None = None,
        auto_renew: bool = True,
        domains: Sequence[str] = (),
        pending: bool = False,
        trial: Period | None = None,
    ) -> SubscriptionResult:
        """Add a subscription (optionally backdated), charge it and order its certificates;
        ``pending=True`` stores a pending order instead, charged when ``activate`` is called;
        ``trial`` stores it ``trialing``, charged nothing until ``renew_due`` converts it at the
        trial's end (its ``term_start``; docs/collection.md, "Trials")."""
        who = _actor(actor)
        ident(customer_id, "customer_id")
        if start is not None and not isinstance(start, date):
            raise InvalidTypeError(
                f"must be a date or None, not {type(start).__name__}", field="start", value=start
            )
        limits.inventory(inventory, "inventory")
        for certificate_type, price in keyed(unit_prices, "unit_prices").items():
            limits.amount(price, f"unit_prices.{certificate_type}", allow_zero=True, price=True)
        limits.order(inventory, unit_prices, "inventory")
        params = {
            "customer_id": customer_id,
            "term": term,
            "inventory": dict(inventory),
            "unit_prices": dict(unit_prices),
            "start": start,
            "auto_renew": auto_renew,
            "domains": list(domains),
        }
        if trials.check_trial(trial, pending=pending, domains=domains) is not None:
            params["trial"] = trial
        if pending:
            if domains:
                raise InvalidValueError(
                    "a pending order names no domains (its certificates are ordered later)",
                    field="domains",
                    value=list(domains),
                )
            params["pending"] = True
        return self._guarded(
            "add_subscription",
            who,
            lambda d: SubscriptionResult(
                outcome=ChargeOutcome.DENIED, reason=str(d.reason), explanation=d.explanation
            ),
            lambda: subscriptions.add_subscription(
                self.ctx,
                customer_id,
                term=term,
                inventory=inventory,
                unit_prices=unit_prices,
                start=start,
                auto_renew=auto_renew,
                domains=domains,
                key=idempotency_key,
                actor=who.id,
                pending=pending,
                trial=trial,
            ),
            customer_id=customer_id,
            keyed_by=(idempotency_key, params, SubscriptionResult),
        )

    def add_inventory(
        self,
        subscription_id: str,
        *,
        certificate_type: str,
        quantity: int,
        idempotency_key: str,
        actor: Actor,
        domains: Sequence[str] = (),
    ) -> InventoryResult:
        """Add inventory mid-term: a prorated line on the next invoice; the certificates of the
        named ``domains`` (one per unit, or none) are ordered now."""
        who = _actor(actor)
        ident(subscription_id, "subscription_id")
        limits.quantity(quantity, "quantity", minimum=1)
        self._inventory_limits(subscription_id, {certificate_type: quantity}, "quantity", add=True)
        params = {
            "subscription_id": subscription_id,
            "certificate_type": certificate_type,
            "quantity": quantity,
            "domains": list(domains),
        }
        return self._guarded(
            "add_inventory",
            who,
            lambda d: _inventory_denied(subscription_id, d),
            lambda: subscriptions.add_inventory(
                self.ctx,
                subscription_id,
                certificate_type=certificate_type,
                quantity=quantity,
                domains=domains,
                key=idempotency_key,
                actor=who.id,
            ),
            subscription_id=subscription_id,
            keyed_by=(idempotency_key, params, InventoryResult),
        )

    def change_renewal_inventory(
        self,
        subscription_id: str,
        *,
        inventory: Mapping[str, int],
        actor: Actor,
    ) -> InventoryResult:
        """Change the inventory that renews next term (no charge now)."""
        who = _actor(actor)
        ident(subscription_id, "subscription_id")
        self._inventory_limits(subscription_id, inventory, "inventory", add=False)
        return self._guarded(
            "change_renewal_inventory",
            who,
            lambda d: _inventory_denied(subscription_id, d),
            lambda: subscriptions.change_renewal_inventory(
                self.ctx, subscription_id, inventory=inventory, actor=who.id
            ),
            subscription_id=subscription_id,
        )

    def _inventory_limits(
        self, subscription_id: str, change: Mapping[str, int], field: str, *, add: bool
    ) -> None:
        """Step 1 for inventory: the inventory a change leads to, within ``rules.limits``."""
        limits.inventory(change, field)
        with self.store.session() as s:
            sub = s.get_subscription(subscription_id)
        if sub is None:  # step 4 names it, after the actor's check
            return
        if add:
            after = {t: sub.inventory.get(t, 0) + q for t, q in change.items()}
            limits.order(after, sub.unit_prices, field)
        else:
            limits.order(change, sub.unit_prices, field)

    def suspend(self, subscription_id: str, *, actor: Actor) -> StateResult:
        """Pause a subscription: nothing renews or is billed until it is re-enabled."""
        return self._state("suspend", subscription_id, SubscriptionState.SUSPENDED, actor)

    def reenable(self, subscription_id: str, *, actor: Actor) -> StateResult:
        """Resume a suspended subscription; its term end moves by the days suspended."""
        return self._state("reenable", subscription_id, SubscriptionState.ACTIVE, actor)

    def cancel(self, subscription_id: str, *, actor: Actor) -> StateResult:
        """Cancel a subscription for good (active, suspended, trialing, past due or pending):
        nothing more is charged or chased for it."""
        return self._state("cancel", subscription_id, SubscriptionState.CANCELLED, actor)

    def _state(
        self, method: str, subscription_id: str, state: SubscriptionState, actor: Actor
    ) -> StateResult:
        who = _actor(actor)
        ident(subscription_id, "subscription_id")
        return self._guarded(
            method,
            who,
            lambda d: StateResult(
                subscription_id=subscription_id,
                outcome=StateOutcome.DENIED,
                reason=str(d.reason),
                explanation=d.explanation,
            ),
            lambda: subscriptions.set_state(self.ctx, subscription_id, state, actor=who.id),
            subscription_id=subscription_id,
        )

    # -- money ------------------------------------------------------------------------------------
    def refund_transaction(
        self,
        transaction_id: str,
        *,
        idempotency_key: str,
        actor: Actor,
        amount: Money | None = None,
        certificates: Mapping[int | str, int] | None = None,
    ) -> RefundResult:
        """Refund (or void, while unsettled) a transaction: all that is left, an amount, or a
        number of certificates per line. The rules decide; a failed refund enters the queue.
        A blocklisted customer may still be refunded."""
        who = _actor(actor)
        check_key(idempotency_key)
        ident(transaction_id, "transaction_id")
        certificates = certificate_counts(certificates)
        params = {
            "transaction_id": transaction_id,
            "amount": amount,
            "certificates": dict(certificates) if certificates else None,
        }
        return self._refund(
            "refund_transaction",
            transaction_id,
            who,
            idempotency_key,
            params,
            amount=amount,
            certificates=certificates,
        )

    def refund_order(
        self, transaction_id: str, *, idempotency_key: str, actor: Actor
    ) -> RefundResult:
        """Refund a whole order: void first, refund if it settled meanwhile."""
        who = _actor(actor)
        ident(transaction_id, "transaction_id")
        params = {"transaction_id": transaction_id}
        return self._refund(
            "refund_order",
            transaction_id,
            who,
            idempotency_key,
            params,
            amount=None,
            certificates=None,
        )

    def _refund(
        self,
        method: str,
        transaction_id: str,
        who: Actor,
        key: str,
        params: Mapping[str, Any],
        *,
        amount: Money | None,
        certificates: Mapping[int | str, int] | None,
    ) -> RefundResult:
        return self._guarded(
            method,
            who,
            lambda d: _refund_denied(transaction_id, d),
            lambda: refunding.refund(
                self.ctx,
                transaction_id,
                amount=amount,
                certificates=certificates,
                key=key,
                actor=who.id,
            ),
            subject=transaction_id,
            keyed_by=(key, params, RefundResult),
        )

    # -- certificates ------------------------------------------------------------------------------
    def request_certificate_cancellation(
        self, certificate_id: str, *, actor: Actor
    ) -> CancellationResult:
        """Ask the provider to cancel a certificate; an issued one waits for the customer."""
        who = _actor(actor)
        ident(certificate_id, "certificate_id")

        def body() -> CancellationResult:
            event = subscriptions.request_certificate_cancellation(
                self.ctx, certificate_id, actor=who.id
            )
            cert = event.certificate
            if event.state is CancellationState.COMPLETED:
                outcome, text = CancellationOutcome.CANCELLED, "was cancelled at once"
            else:
                outcome = CancellationOutcome.REQUESTED
                text = (
                    "is issued: the customer must confirm its cancellation in the provider's "
                    "portal before it can be refunded"
                )
            return CancellationResult(
                certificate_id=certificate_id,
                outcome=outcome,
                certificate=cert,
                state=event.state,
                explanation=f"Certificate {certificate_id} for {cert.domain} {text}.",
            )

        return self._guarded(
            "request_certificate_cancellation",
            who,
            lambda d: CancellationResult(
                certificate_id=certificate_id,
                outcome=CancellationOutcome.DENIED,
                reason=str(d.reason),
                explanation=d.explanation,
            ),
            body,
            subject=certificate_id,
        )

    def close_metered_period(
        self,
        subscription_id: str,
        *,
        price: metering.MeteredPrice,
        start: datetime,
        end: datetime,
        idempotency_key: str,
        actor: Actor,
        metric: str | None = None,
    ) -> CloseResult:
        """Close ``[start, end)`` of a metered price into invoice lines (once per key)."""
        who = _actor(actor)
        ident(subscription_id, "subscription_id")
        require_aware(start, "start")
        require_aware(end, "end")
        params = {
            "subscription_id": subscription_id,
            "start": start,
            "end": end,
            "metric": metric,
            "price": repr(price),
        }
        return self._guarded(
            "close_metered_period",
            who,
            lambda d: CloseResult(
                subscription_id=subscription_id,
                outcome=CloseOutcome.DENIED,
                reason=str(d.reason),
                explanation=d.explanation,
            ),
            lambda: metered_closes.close_metered_period(
                self.ctx,
                subscription_id,
                price=price,
                start=start,
                end=end,
                metric=metric,
                key=idempotency_key,
                actor=who.id,
            ),
            subscription_id=subscription_id,
            keyed_by=(idempotency_key, params, CloseResult),
        )


def _inventory_denied(subscription_id: str, denial: Decision) -> InventoryResult:
    return InventoryResult(
        subscription_id=subscription_id,
        allowed=False,
        reason=str(denial.reason),
        explanation=denial.explanation,
    )


def _refund_denied(transaction_id: str, denial: Decision) -> RefundResult:
    return RefundResult(
        transaction_id=transaction_id,
        outcome=RefundOutcome.DENIED,
        reason=str(denial.reason),
        explanation=denial.explanation,
    )
