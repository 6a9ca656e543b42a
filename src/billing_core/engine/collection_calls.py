"""The engine's collection calls: charges, payment instruments, blocklist entries, segments,
pending orders. A mixin of ``BillingEngine``; every call takes the guard path of ``engine.guards``.

* ``charge``: a one-off sale, on the customer's instruments in payment order with fallback on a
  decline, blocked by blocklist entries (``engine.charging``).

* Instruments (support agents and admins: ``manage_instruments``): ``add_instrument``,
  ``update_instrument``, ``deactivate_instrument``, ``set_payment_order`` (primary and backups),
  ``set_default_instrument`` (one subscription's default); ``wallet`` reads them.
* Blocklist entries (admins only: ``manage_blocklist``): ``add_blocklist_entry`` and
  ``lift_blocklist_entry``; ``blocklist`` reads them all (lifted ones too).
* Segments: ``segment(customer_id)`` is ``"lead"`` until the customer's first approved payment,
  ``"customer"`` after; ``leads()`` and ``customers(segment=...)`` list them.
* ``abandon_pending_orders(now)`` (a job): every ``pending`` subscription whose ``abandon_on``
  has come is cancelled as abandoned (``rules.collection.assess_pending``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from functools import partial
from typing import Any

from ..blocklists import BlocklistEntry, BlocklistKind
from ..errors import InvalidTypeError, InvalidValueError
from ..instruments import PaymentInstrument
from ..model import Customer
from ..money import Money
from ..periods import Period
from ..rules import limits
from ..rules.permissions import SYSTEM_ACTOR, Actor
from ..rules.subscription_states import StateEvent, next_state
from ..timeutil import require_aware
from ..wallets import Wallet
from . import activation, charging, pending_orders, subscriptions, wallet_flows
from .base import EngineBase
from .collection_results import (
    AbandonResult,
    BlocklistOutcome,
    BlocklistResult,
    InstrumentOutcome,
    InstrumentResult,
)
from .guards import actor as _actor
from .guards import customer as _customer
from .guards import ident, paying_from
from .guards import subscription as _subscription
from .results import ChargeOutcome, ChargeResult, SubscriptionResult

__all__ = ["EngineCollection"]

SEGMENTS = (wallet_flows.LEAD, wallet_flows.PAYING)
DEFAULT_ABANDON_AFTER = Period.days(30)
NOT_PENDING = "not_pending"
"""How long a pending order waits for activation before ``abandon_pending_orders`` abandons it."""


def _instrument(value: object) -> PaymentInstrument:
    if not isinstance(value, PaymentInstrument):
        raise InvalidTypeError(
            f"must be a PaymentInstrument, not {type(value).__name__}",
            field="instrument",
            value=value,
        )
    return value


class EngineCollection(EngineBase):
    """Instruments, blocklist entries, segments and pending orders (see the module docstring)."""

    # -- money -------------------------------------------------------------------------------------
    def charge(
        self,
        customer_id: str,
        amount: Money,
        *,
        idempotency_key: str,
        actor: Actor,
        description: str = "",
        instrument_id: str | None = None,
        ip: str | None = None,
    ) -> ChargeResult:
        """A one-off sale of a positive ``amount`` (at most ``rules.limits.MAX_AMOUNT``), on the
        customer's instruments in payment order (``instrument_id`` first, when given), moving to
        the next one on a decline only; blocked by a blocklist entry matching the customer,
        its cards or ``ip`` (see ``engine.charging``)."""
        who = _actor(actor)
        limits.amount(amount, "amount")  # bad input: refused before anything is written
        ident(customer_id, "customer_id")
        if instrument_id is not None:
            ident(instrument_id, "instrument_id")
        params: dict[str, Any] = {
            "customer_id": customer_id,
            "amount": amount,
            "description": description,
        }
        if instrument_id is not None or ip is not None:
            params |= {"instrument_id": instrument_id, "ip": ip}
        with paying_from(ip):
            return self._charge(
                who, customer_id, amount, idempotency_key, params, description, instrument_id, ip
            )

    def _charge(
        self,
        who: Actor,
        customer_id: str,
        amount: Money,
        idempotency_key: str,
        params: Mapping[str, Any],
        description: str,
        instrument_id: str | None,
        ip: str | None,
    ) -> ChargeResult:
        return self._guarded(
            "charge",
            who,
            lambda d: ChargeResult(
                outcome=ChargeOutcome.DENIED, reason=str(d.reason), explanation=d.explanation
            ),
            lambda: charging.charge(
                self.ctx,
                amount=amount,
                key=idempotency_key,
                actor=who.id,
                customer_id=customer_id,
                description=description,
                instrument_id=instrument_id,
                ip=ip,
            )[0],
            customer_id=customer_id,
            keyed_by=(idempotency_key, params, ChargeResult),
        )

    # -- instruments -------------------------------------------------------------------------------
    def add_instrument(
        self,
        customer_id: str,
        instrument: PaymentInstrument,
        *,
        actor: Actor,
        primary: bool = False,
        backup: bool = False,
    ) -> InstrumentResult:
        """Add a payment instrument to a customer's wallet, as its primary or a backup if asked
        (a primary must be usable today; a backup is never the primary)."""
        return self._instrument_call(
            "add_instrument", customer_id, instrument, actor, primary, backup, replace=False
        )

    def update_instrument(
        self, customer_id: str, instrument: PaymentInstrument, *, actor: Actor
    ) -> InstrumentResult:
        """Replace an instrument's details (a new expiry, say), keeping its place."""
        return self._instrument_call(
            "update_instrument", customer_id, instrument, actor, False, False, replace=True
        )

    def _instrument_call(
        self,
        method: str,
        customer_id: str,
        instrument: PaymentInstrument,
        actor: Actor,
        primary: bool,
        backup: bool,
        *,
        replace: bool,
    ) -> InstrumentResult:
        who = _actor(actor)
        ident(customer_id, "customer_id")
        _instrument(instrument)
        if primary and backup:
            raise InvalidValueError(
                "an instrument is the primary or a backup, not both", field="backup", value=backup
            )
        return self._guarded(
            method,
            who,
            lambda d: _denied(customer_id, d.reason, d.explanation),
            lambda: wallet_flows.put_instrument(
                self.ctx,
                customer_id,
                instrument,
                actor=who.id,
                primary=primary,
                backup=backup,
                replace=replace,
            ),
            subject=customer_id,
            customer_id=customer_id,
        )

    def deactivate_instrument(
        self, customer_id: str, instrument_id: str, *, actor: Actor
    ) -> InstrumentResult:
        """Deactivate an instrument: kept for the record, never charged again."""
        who = _actor(actor)
        ident(customer_id, "customer_id")
        ident(instrument_id, "instrument_id")
        return self._guarded(
            "deactivate_instrument",
            who,
            lambda d: _denied(customer_id, d.reason, d.explanation),
            lambda: wallet_flows.deactivate(self.ctx, customer_id, instrument_id, actor=who.id),
            subject=customer_id,
            customer_id=customer_id,
        )

    def set_payment_order(
        self,
        customer_id: str,
        *,
        primary_id: str | None,
        backup_ids: Sequence[str] = (),
        actor: Actor,
    ) -> InstrumentResult:
        """Choose the customer's primary instrument and its backups, in the order tried."""
        who = _actor(actor)
        ident(customer_id, "customer_id")
        if isinstance(backup_ids, str):
            raise InvalidTypeError(
                "must be a sequence of instrument ids", field="backup_ids", value=backup_ids
            )
        return self._guarded(
            "set_payment_order",
            who,
            lambda d: _denied(customer_id, d.reason, d.explanation),
            lambda: wallet_flows.set_payment_order(
                self.ctx,
                customer_id,
                primary_id=primary_id,
                backup_ids=tuple(backup_ids),
                actor=who.id,
            ),
            subject=customer_id,
            customer_id=customer_id,
        )

    def set_default_instrument(
        self, subscription_id: str, instrument_id: str | None, *, actor: Actor
    ) -> InstrumentResult:
        """Choose the instrument a subscription is charged on first (None: the customer's
        order). An inactive or expired instrument is bad input (``order_default``)."""
        who = _actor(actor)
        ident(subscription_id, "subscription_id")
        if instrument_id is not None:
            ident(instrument_id, "instrument_id")
        return self._guarded(
            "set_default_instrument",
            who,
            lambda d: _denied(subscription_id, d.reason, d.explanation),
            lambda: wallet_flows.set_default(
                self.ctx, subscription_id, instrument_id, actor=who.id
            ),
            subject=subscription_id,
            subscription_id=subscription_id,
        )

    def wallet(self, customer_id: str, *, actor: Actor | None = None) -> Wallet:
        """The customer's wallet (empty when it has no instruments)."""
        self._read("wallet", actor)
        ident(customer_id, "customer_id")
        with self.store.session() as s:
            _customer(s, customer_id)
            return s.get_wallet(customer_id) or Wallet(customer_id=customer_id)

    # -- blocklists ---------------------------------------------------------------------------------
    def add_blocklist_entry(
        self,
        kind: BlocklistKind | str,
        value: str,
        *,
        actor: Actor,
        expires_at: datetime | None = None,
        reason: str = "",
    ) -> BlocklistResult:
        """Block every payment with this value (admins only): ``kind`` is ``customer_id``,
        ``fingerprint``, ``email``, ``email_domain``, ``ip`` or ``country``."""
        who = _actor(actor)
        try:
            kind = BlocklistKind(kind)
        except ValueError:
            raise InvalidValueError(
                f"must be one of {', '.join(k.value for k in BlocklistKind)}",
                field="kind",
                value=kind,
            ) from None
        if expires_at is not None:
            require_aware(expires_at, "expires_at")
        if not isinstance(value, str) or not value.strip():
            raise InvalidValueError("must be a non-empty str", field="value", value=value)
        return self._guarded(
            "add_blocklist_entry",
            who,
            lambda d: BlocklistResult(
                outcome=BlocklistOutcome.DENIED, reason=str(d.reason), explanation=d.explanation
            ),
            lambda: wallet_flows.add_blocklist_entry(
                self.ctx, kind, value, actor=who.id, expires_at=expires_at, reason=reason
            ),
            subject=f"{kind.value}:{value}",
        )

    def lift_blocklist_entry(self, entry_id: str, *, actor: Actor) -> BlocklistResult:
        """Lift a blocklist entry (admins only); it is kept, marked lifted."""
        who = _actor(actor)
        ident(entry_id, "entry_id")
        return self._guarded(
            "lift_blocklist_entry",
            who,
            lambda d: BlocklistResult(
                outcome=BlocklistOutcome.DENIED, reason=str(d.reason), explanation=d.explanation
            ),
            lambda: wallet_flows.lift_blocklist_entry(self.ctx, entry_id, actor=who.id),
            subject=entry_id,
        )

    def blocklist(self, *, actor: Actor | None = None) -> list[BlocklistEntry]:
        """Every blocklist entry, lifted and expired ones too, oldest first."""
        self._read("blocklist", actor)
        with self.store.session() as s:
            return s.list_blocklist()

    # -- segments -----------------------------------------------------------------------------------
    def segment(self, customer_id: str, *, actor: Actor | None = None) -> str:
        """``"lead"`` until the customer's first approved payment, then ``"customer"``."""
        self._read("segment", actor)
        ident(customer_id, "customer_id")
        with self.store.session() as s:
            _customer(s, customer_id)
            lead = wallet_flows.is_lead(s, customer_id)
        return wallet_flows.LEAD if lead else wallet_flows.PAYING

    def customers(
        self, *, segment: str | None = None, actor: Actor | None = None
    ) -> list[Customer]:
        """Every customer, or those of one segment (``"lead"`` or ``"customer"``)."""
        self._read("customers", actor)
        if segment is not None and segment not in SEGMENTS:
            raise InvalidValueError(
                f"must be one of {', '.join(SEGMENTS)} or None", field="segment", value=segment
            )
        with self.store.session() as s:
            every = s.list_customers()
            if segment is None:
                return every
            want_lead = segment == wallet_flows.LEAD
            return [c for c in every if wallet_flows.is_lead(s, c.id) == want_lead]

    def leads(self, *, actor: Actor | None = None) -> list[Customer]:
        """The customers with no approved payment yet."""
        self._read("leads", actor)
        return self.customers(segment=wallet_flows.LEAD, actor=actor)

    # -- pending orders -----------------------------------------------------------------------------
    def activate(
        self, subscription_id: str, *, idempotency_key: str, actor: Actor
    ) -> SubscriptionResult:
        """Activate a pending order: charge its first term from today (on the customer's
        instruments in payment order) and make it active. A declined charge leaves it pending;
        an order that is not pending is refused (``not_pending``)."""
        who = _actor(actor)
        ident(subscription_id, "subscription_id")

        def body() -> SubscriptionResult:
            with self.store.session() as s:
                sub = _subscription(s, subscription_id)
            move = next_state(sub.state, StateEvent.ACTIVATE)
            if move.denied:
                return _not_pending(subscription_id, move.explanation)
            try:
                return subscriptions.add_subscription(
                    self.ctx,
                    sub.customer_id,
                    term=sub.term,
                    inventory=sub.inventory,
                    unit_prices=sub.unit_prices,
                    start=None,
                    auto_renew=sub.auto_renew,
                    domains=(),
                    key=idempotency_key,
                    actor=who.id,
                    sub_id=sub.id,
                    claim=partial(activation.claim_pending, sub=sub),
                )
            except activation.ActivationTaken as taken:
                return _not_pending(subscription_id, f"Subscription {sub.id}: {taken.why}.")

        return self._guarded(
            "activate",
            who,
            lambda d: SubscriptionResult(
                outcome=ChargeOutcome.DENIED, reason=str(d.reason), explanation=d.explanation
            ),
            body,
            subscription_id=subscription_id,
            keyed_by=(idempotency_key, {"subscription_id": subscription_id}, SubscriptionResult),
        )

    def abandon_pending_orders(
        self,
        now: datetime,
        *,
        abandon_after: Period = DEFAULT_ABANDON_AFTER,
        actor: Actor | None = None,
    ) -> AbandonResult:
        """Cancel, as abandoned, every ``pending`` subscription not activated within
        ``abandon_after`` (default 30 days) of its start (``rules.collection.abandon_on``), as
        of ``now``."""
        who = SYSTEM_ACTOR if actor is None else _actor(actor)
        require_aware(now, "now")
        if not isinstance(abandon_after, Period):
            raise InvalidTypeError(
                f"must be a Period, not {type(abandon_after).__name__}",
                field="abandon_after",
                value=abandon_after,
            )
        return self._guarded(
            "abandon_pending_orders",
            who,
            lambda d: AbandonResult(explanations=(d.explanation,)),
            lambda: pending_orders.abandon(self.ctx, now, abandon_after, actor=who.id),
        )


def _not_pending(subscription_id: str, explanation: str) -> SubscriptionResult:
    return SubscriptionResult(
        outcome=ChargeOutcome.DENIED,
        subscription_id=subscription_id,
        reason=NOT_PENDING,
        explanation=explanation,
    )


def _denied(subject: str, reason: object, explanation: str) -> InstrumentResult:
    return InstrumentResult(
        customer_id=subject,
        outcome=InstrumentOutcome.DENIED,
        reason=str(reason),
        explanation=explanation,
    )
