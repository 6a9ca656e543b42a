"""One guard path for every public ``BillingEngine`` call.

In this order, before a flow runs:

1. **Bad input** raises a ``BillingError`` naming the field (the helpers below and
   ``rules.limits``): nothing is written, no idempotency key is taken.
2. **The actor**: ``METHOD_ACTIONS`` names the permission-policy action of every public method
   (a test fails when one has none); the policy fails closed, so an unknown role or an action
   the policy does not list is denied.
3. **Replays**: a call whose idempotency key is already recorded gets the stored answer (a
   charge that went through stays "charged" even if its customer was blocklisted since).
4. **The customer** must exist (``NotFoundError`` naming ``customer_id`` or
   ``subscription_id`` otherwise, like any reference to nothing) and, for a call in
   ``PAYING_METHODS`` (it charges, subscribes, adds or renews inventory, or re-enables
   service), must not be blocklisted: ``customer_blocklisted`` (the customer's own flag), or
   ``blocklisted_<kind>`` when a blocklist entry in force matches its id, email, email domain,
   country or a card fingerprint of its wallet (``rules.blocklists``; the charge checks again,
   with the payer's IP, right before the gateway is called). Refunds, suspending and
   cancelling stay possible for a blocklisted customer: giving money back and stopping service
   are what a blocklisting is for.

A denial is an answer, not an exception: the call's result with ``outcome=DENIED``, the reason
code and a sentence. It changes nothing but the audit log (one ``<method>.denied`` entry), and
is not stored under the idempotency key, so the same key works once the denial is lifted.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Final

import attrs

from ..decisions import Decision, Reason
from ..errors import InvalidTypeError, NotFoundError
from ..model import Customer, Subscription
from ..plugins.protocols import StoreSession
from ..rules import blocklists, limits
from ..rules.permissions import Action, Actor, PermissionPolicy
from ..rules.permissions import check as check_permission
from .context import EngineContext
from .idempotency import check_key

__all__ = [
    "METHOD_ACTIONS",
    "PAYING_METHODS",
    "PLUMBING",
    "CustomerDecision",
    "CustomerReason",
    "Guard",
    "actor",
    "blocklisted",
    "certificate_counts",
    "customer",
    "ident",
    "keyed",
    "paying_from",
    "subscription",
]

_PAYER_IP: ContextVar[str | None] = ContextVar("billing_core_payer_ip", default=None)


@contextmanager
def paying_from(ip: str | None) -> Iterator[None]:
    """Run a paying call's guard path knowing the payer's IP (checked against the blocklist)."""
    reset = _PAYER_IP.set(ip)
    try:
        yield
    finally:
        _PAYER_IP.reset(reset)


METHOD_ACTIONS: Final[Mapping[str, Action]] = {
    "add_customer": Action.EDIT_CUSTOMER,
    "update_customer": Action.EDIT_CUSTOMER,
    "blocklist_customer": Action.BLOCKLIST_CUSTOMER,
    "unblocklist_customer": Action.UNBLOCKLIST_CUSTOMER,
    "add_subscription": Action.ADD_SUBSCRIPTION,
    "add_inventory": Action.CHANGE_INVENTORY,
    "change_renewal_inventory": Action.CHANGE_INVENTORY,
    "suspend": Action.SUSPEND_SUBSCRIPTION,
    "reenable": Action.REENABLE_SUBSCRIPTION,
    "cancel": Action.CANCEL_SUBSCRIPTION,
    "renew_due": Action.RENEW_SUBSCRIPTIONS,
    "order_pending_certificates": Action.RENEW_SUBSCRIPTIONS,
    "charge": Action.CHARGE,
    "refund_transaction": Action.REFUND_TRANSACTION,
    "refund_order": Action.REFUND_TRANSACTION,
    "process_refund_queue": Action.PROCESS_REFUND_QUEUE,
    "reconcile": Action.RECONCILE,
    "deliver_events": Action.DELIVER_EVENTS,
    "request_certificate_cancellation": Action.CANCEL_CERTIFICATE,
    "record_usage": Action.RECORD_USAGE,
    "close_metered_period": Action.CLOSE_METERED_PERIOD,
    "customer": Action.VIEW_CUSTOMER,
    "transaction": Action.VIEW_BILLING,
    "subscription": Action.VIEW_BILLING,
    "transactions": Action.VIEW_BILLING,
    "invoice_lines": Action.VIEW_BILLING,
    "refund_queue": Action.VIEW_BILLING,
    "audit_log": Action.VIEW_BILLING,
    "add_instrument": Action.MANAGE_INSTRUMENTS,
    "update_instrument": Action.MANAGE_INSTRUMENTS,
    "deactivate_instrument": Action.MANAGE_INSTRUMENTS,
    "set_payment_order": Action.MANAGE_INSTRUMENTS,
    "set_default_instrument": Action.MANAGE_INSTRUMENTS,
    "wallet": Action.VIEW_CUSTOMER,
    "add_blocklist_entry": Action.MANAGE_BLOCKLIST,
    "lift_blocklist_entry": Action.MANAGE_BLOCKLIST,
    "blocklist": Action.VIEW_BILLING,
    "leads": Action.VIEW_CUSTOMER,
    "customers": Action.VIEW_CUSTOMER,
    "segment": Action.VIEW_CUSTOMER,
    "abandon_pending_orders": Action.RENEW_SUBSCRIPTIONS,
    "activate": Action.ADD_SUBSCRIPTION,
    "issue_due_invoices": Action.ISSUE_INVOICES,
    "finalize": Action.MANAGE_INVOICES,
    "edit_draft": Action.MANAGE_INVOICES,
    "void_invoice": Action.MANAGE_INVOICES,
    "mark_uncollectible": Action.WRITE_OFF_INVOICES,
    "pay_invoice": Action.CHARGE,
    "create_credit_memo": Action.MANAGE_INVOICES,
    "redeem_coupon": Action.MANAGE_INVOICES,
    "set_tax_profile": Action.EDIT_CUSTOMER,
    "invoice": Action.VIEW_BILLING,
    "invoices": Action.VIEW_BILLING,
    "tax_profile": Action.VIEW_BILLING,
    "render_invoice": Action.VIEW_BILLING,
    "outbox_events": Action.VIEW_BILLING,
    "collect_due": Action.COLLECT_PAYMENTS,
    "record_outside_payment": Action.RECORD_PAYMENT,
    "past_due_invoices": Action.VIEW_BILLING,
    "set_autopay": Action.MANAGE_INSTRUMENTS,
}
"""The permission-policy action of every public ``BillingEngine`` method."""

PLUMBING: Final = frozenset({"gateway", "certificate_provider", "invoice_settings"})
"""Public attributes that are configuration, not calls (the providers the engine was given)."""

_BLOCKED: Final = {
    "charge": "it cannot be charged",
    "pay_invoice": "its invoices cannot be charged",
    "add_subscription": "it cannot take a new subscription",
    "activate": "its pending orders cannot be activated",
    "add_inventory": "its subscriptions cannot gain inventory",
    "change_renewal_inventory": "what its subscriptions renew cannot change",
    "reenable": "its subscriptions cannot be re-enabled",
    "renew_due": "its subscriptions do not renew",
}

PAYING_METHODS: Final = frozenset(_BLOCKED)
"""Calls refused for a blocklisted customer (``renew_due`` skips their subscriptions)."""


class CustomerReason(Reason):
    CUSTOMER_BLOCKLISTED = "customer_blocklisted"
    CUSTOMER_EXISTS = "customer_exists"


@attrs.frozen(kw_only=True)
class CustomerDecision(Decision):
    """May this call go ahead for this customer?"""

    reason: CustomerReason | None = None
    customer_id: str


def blocklisted(customer: Customer, method: str) -> CustomerDecision:
    """The denial of ``method`` for a blocklisted ``customer``."""
    return CustomerDecision(
        allowed=False,
        reason=CustomerReason.CUSTOMER_BLOCKLISTED,
        customer_id=customer.id,
        explanation=(
            f"Customer {customer.id} ({customer.company}) is blocklisted: "
            f"{_BLOCKED[method]} until an admin lifts the blocklisting "
            "(unblocklist_customer). Refunds, suspending and cancelling stay possible."
        ),
    )


class Guard:
    """Steps 2 to 4 of the guard path, against one engine's store and permission policy."""

    def __init__(self, ctx: EngineContext, policy: PermissionPolicy) -> None:
        self.ctx = ctx
        self.policy = policy

    def permit(self, who: Actor, method: str, *, action: str | None = None) -> Decision | None:
        """``None`` when ``who`` may call ``method`` (or perform ``action``), else the denial."""
        decision = check_permission(who, action or METHOD_ACTIONS[method], self.policy)
        return None if decision.allowed else decision

    def admit(
        self,
        method: str,
        *,
        key: str | None = None,
        customer_id: str | None = None,
        subscription_id: str | None = None,
    ) -> Decision | bool:
        """Steps 3 and 4 in one store session: ``True`` when ``key`` is already recorded (the
        idempotency layer answers), else the denial for this customer, else ``False`` (go on).
        The customer is the one given or the subscription's; it must exist and, for a paying
        call, not be blocklisted."""
        if key is not None:
            check_key(key)
        with self.ctx.store.session() as s:
            if key is not None and s.get_idempotency(key) is not None:
                return True
            if subscription_id is not None:
                customer_id = subscription(s, subscription_id).customer_id
            if customer_id is None:
                return False
            found = customer(s, customer_id)
            if method not in PAYING_METHODS:
                return False
            if found.blocklisted:
                return blocklisted(found, method)
            wallet = s.get_wallet(customer_id)
            entries = s.list_blocklist()
        payer = blocklists.Payer(
            customer_id=found.id,
            email=found.email,
            country=found.country or None,
            ip=_PAYER_IP.get(),
            fingerprints=wallet.fingerprints() if wallet else (),
        )
        block = blocklists.check(entries, payer, now=self.ctx.now())
        return block if block.denied else False

    def audit_denial(self, who: Actor, method: str, subject: str, denial: Decision) -> None:
        """The one trace a denial leaves."""
        with self.ctx.store.session() as s:
            self.ctx.audit(
                s,
                action=f"{method}.denied",
                subject_id=subject,
                actor=who.id,
                detail={"reason": str(denial.reason), "role": who.role},
            )


def customer(s: StoreSession, customer_id: str) -> Customer:
    found = s.get_customer(customer_id)
    if found is None:
        raise NotFoundError(f"no customer {customer_id!r}", field="customer_id", value=customer_id)
    return found


def subscription(s: StoreSession, subscription_id: str) -> Subscription:
    found = s.get_subscription(subscription_id)
    if found is None:
        raise NotFoundError(
            f"no subscription {subscription_id!r}", field="subscription_id", value=subscription_id
        )
    return found


# -- step 1: the shape of the arguments ------------------------------------------------------------
def actor(value: object) -> Actor:
    if not isinstance(value, Actor):
        raise InvalidTypeError(
            f"must be an Actor (billing_core.rules.permissions.Actor), not {type(value).__name__}",
            field="actor",
            value=value,
        )
    return value


def ident(value: object, field: str) -> str:
    """An id argument (``rules.limits.identifier``: the one validator of ids and keys)."""
    return limits.identifier(value, field)


def keyed(value: object, field: str) -> Mapping[str, Any]:
    """``value`` if it is a mapping keyed by non-empty ``str`` (certificate types); bad input
    otherwise (checked before the idempotency fingerprint, which needs JSON keys)."""
    if not isinstance(value, Mapping):
        raise InvalidTypeError(
            f"must be a mapping of certificate type to value, not {type(value).__name__}",
            field=field,
            value=value,
        )
    for key in value:
        if not isinstance(key, str) or not key:
            raise InvalidTypeError(
                f"keys must be certificate types (non-empty str), not {key!r}",
                field=field,
                value=key,
            )
    return value


def certificate_counts(value: object) -> Mapping[int | str, int] | None:
    """``certificates=`` of a refund: None, or a mapping keyed by line index or certificate id
    or type (the counts are checked by the rules)."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise InvalidTypeError(
            f"must be a mapping of line to count, not {type(value).__name__}",
            field="certificates",
            value=value,
        )
    for key in value:
        if isinstance(key, bool) or not isinstance(key, int | str):
            raise InvalidTypeError(
                f"keys must be a line index or a certificate id or type, not {key!r}",
                field="certificates",
                value=key,
            )
    return value
