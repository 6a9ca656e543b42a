"""Payment instruments and blocklist entries: the flows behind the engine's collection calls.

Each flow reads and writes in one store session and leaves one audit entry per change; the
guard path (``engine.guards``: the actor's permission, the customer's existence) has run before.
Bad input raises naming the field, before anything is written: a backup naming the primary
(``backups[i]``), an expired or inactive instrument chosen as an order's default
(``order_default``) or as the primary (``primary_id``), an instrument id the wallet lacks.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import attrs

from ..blocklists import BlocklistEntry, BlocklistKind, normalise
from ..errors import InvalidValueError, NotFoundError
from ..instruments import PaymentInstrument
from ..model import Customer, TransactionKind, TransactionStatus
from ..plugins.protocols import StoreSession
from ..rules import collection
from ..timeutil import local_date, timezone
from ..wallets import Wallet
from .collection_results import (
    BlocklistOutcome,
    BlocklistResult,
    InstrumentOutcome,
    InstrumentResult,
)
from .context import EngineContext
from .guards import customer as _customer
from .guards import subscription as _subscription

__all__ = [
    "LEAD",
    "PAYING",
    "add_blocklist_entry",
    "is_lead",
    "lift_blocklist_entry",
    "put_instrument",
    "set_default",
    "set_payment_order",
]

LEAD = "lead"
"""A customer with no approved payment yet."""
PAYING = "customer"
"""A customer with at least one approved (completed) sale."""


def _wallet(s: StoreSession, customer_id: str, *, lock: bool = True) -> Wallet:
    return s.get_wallet(customer_id, lock=lock) or Wallet(customer_id=customer_id)


def _save(
    ctx: EngineContext,
    s: StoreSession,
    before: Wallet,
    after: Wallet,
    *,
    action: str,
    subject: str,
    actor: str,
) -> bool:
    if after == before:
        return False
    s.put_wallet(after)
    ctx.audit(
        s, action=action, subject_id=subject, actor=actor, detail={"customer": after.customer_id}
    )
    return True


def put_instrument(
    ctx: EngineContext,
    customer_id: str,
    instrument: PaymentInstrument,
    *,
    actor: str,
    primary: bool = False,
    backup: bool = False,
    replace: bool,
) -> InstrumentResult:
    """Add (``replace=False``) or update an instrument; ``primary``/``backup`` place it."""
    with ctx.store.session() as s:
        customer = _customer(s, customer_id)
        before = _wallet(s, customer_id)
        exists = before.get(instrument.id) is not None
        if exists and not replace:
            raise InvalidValueError(
                f"customer {customer_id} already has instrument {instrument.id}: update it",
                field="instrument.id",
                value=instrument.id,
            )
        if replace and not exists:
            raise NotFoundError(
                f"customer {customer_id} has no instrument {instrument.id!r}",
                field="instrument.id",
                value=instrument.id,
            )
        after = before.with_instrument(instrument)
        if primary:
            _usable(instrument, ctx, customer, "primary_id")
            backups = tuple(b for b in after.backup_ids if b != instrument.id)
            after = attrs.evolve(after, primary_id=instrument.id, backup_ids=backups)
        if backup and instrument.id not in after.backup_ids:
            after = attrs.evolve(after, backup_ids=(*after.backup_ids, instrument.id))
        verb = "updated" if exists else "added"
        changed = _save(
            ctx, s, before, after, action=f"instrument.{verb}", subject=instrument.id, actor=actor
        )
    role = " as the primary" if primary else " as a backup" if backup else ""
    return InstrumentResult(
        customer_id=customer_id,
        outcome=(InstrumentOutcome.UPDATED if exists else InstrumentOutcome.ADDED)
        if changed
        else InstrumentOutcome.UNCHANGED,
        wallet=after,
        explanation=f"Instrument {instrument.id} of customer {customer_id} was {verb}{role}."
        if changed
        else f"Customer {customer_id} already has instrument {instrument.id} so; nothing changed.",
    )


def _usable(
    instrument: PaymentInstrument, ctx: EngineContext, customer: Customer, field: str
) -> None:
    today = local_date(ctx.now(), timezone(customer.timezone))
    if not instrument.usable_on(today):
        state = "inactive" if not instrument.active else f"expired on {instrument.expires_on}"
        raise InvalidValueError(
            f"instrument {instrument.id} is {state}: choose a usable one",
            field=field,
            value=instrument.id,
        )


def deactivate(
    ctx: EngineContext, customer_id: str, instrument_id: str, *, actor: str
) -> InstrumentResult:
    """Deactivate an instrument: kept for the record, in its place, never charged again (the
    payment order leaves it out and says so)."""
    with ctx.store.session() as s:
        _customer(s, customer_id)
        before = _wallet(s, customer_id)
        found = before.get(instrument_id)
        if found is None:
            raise NotFoundError(
                f"customer {customer_id} has no instrument {instrument_id!r}",
                field="instrument_id",
                value=instrument_id,
            )
        after = before.with_instrument(attrs.evolve(found, active=False))
        changed = _save(
            ctx,
            s,
            before,
            after,
            action="instrument.deactivated",
            subject=instrument_id,
            actor=actor,
        )
    return InstrumentResult(
        customer_id=customer_id,
        outcome=InstrumentOutcome.DEACTIVATED if changed else InstrumentOutcome.UNCHANGED,
        wallet=after,
        explanation=f"Instrument {instrument_id} of customer {customer_id} is deactivated: it is "
        "never charged again."
        if changed
        else f"Instrument {instrument_id} is already inactive; nothing changed.",
    )


def set_payment_order(
    ctx: EngineContext,
    customer_id: str,
    *,
    primary_id: str | None,
    backup_ids: Sequence[str],
    actor: str,
) -> InstrumentResult:
    """Choose the primary instrument and the backups, in the order they are tried."""
    with ctx.store.session() as s:
        customer = _customer(s, customer_id)
        before = _wallet(s, customer_id)
        if primary_id is not None:
            chosen = before.get(primary_id)
            if chosen is None:
                raise NotFoundError(
                    f"customer {customer_id} has no instrument {primary_id!r}",
                    field="primary_id",
                    value=primary_id,
                )
            _usable(chosen, ctx, customer, "primary_id")
        after = attrs.evolve(before, primary_id=primary_id, backup_ids=tuple(backup_ids))
        changed = _save(
            ctx, s, before, after, action="instrument.order", subject=customer_id, actor=actor
        )
    order = ", then ".join([p for p in [primary_id] if p] + list(backup_ids)) or "none"
    return InstrumentResult(
        customer_id=customer_id,
        outcome=InstrumentOutcome.ORDER_SET if changed else InstrumentOutcome.UNCHANGED,
        wallet=after,
        explanation=f"Customer {customer_id} is charged on {order}.",
    )


def set_default(
    ctx: EngineContext, subscription_id: str, instrument_id: str | None, *, actor: str
) -> InstrumentResult:
    """Choose (or clear, with None) the default instrument of one order (a subscription): it
    takes precedence over the customer's primary. An inactive or expired one is bad input."""
    with ctx.store.session() as s:
        sub = _subscription(s, subscription_id)
        customer = _customer(s, sub.customer_id)
        before = _wallet(s, sub.customer_id)
        defaults = dict(before.order_defaults)
        if instrument_id is None:
            defaults.pop(subscription_id, None)
        else:
            chosen = before.get(instrument_id)
            if chosen is None:
                raise NotFoundError(
                    f"customer {sub.customer_id} has no instrument {instrument_id!r}",
                    field="order_default",
                    value=instrument_id,
                )
            today = local_date(ctx.now(), timezone(customer.timezone))
            collection.check_default(chosen, today=today)  # raises naming order_default
            defaults[subscription_id] = instrument_id
        after = attrs.evolve(before, order_defaults=defaults)
        changed = _save(
            ctx, s, before, after, action="instrument.default", subject=subscription_id, actor=actor
        )
    what = f"instrument {instrument_id}" if instrument_id else "the customer's payment order"
    return InstrumentResult(
        customer_id=sub.customer_id,
        outcome=InstrumentOutcome.ORDER_SET if changed else InstrumentOutcome.UNCHANGED,
        wallet=after,
        explanation=f"Subscription {subscription_id} is charged on {what} first.",
    )


# -- blocklists ------------------------------------------------------------------------------------
def add_blocklist_entry(
    ctx: EngineContext,
    kind: BlocklistKind,
    value: str,
    *,
    actor: str,
    expires_at: datetime | None,
    reason: str,
) -> BlocklistResult:
    """Add an entry (an entry in force with the same kind and value is kept: unchanged)."""
    now = ctx.now()
    kind = BlocklistKind(kind)
    wanted = normalise(kind, value)
    entry = BlocklistEntry(
        id=ctx.ids("bl"),
        kind=kind,
        value=wanted,
        added_at=now,
        added_by=actor,
        reason=reason,
        expires_at=expires_at,
    )
    if expires_at is not None and expires_at <= now:
        raise InvalidValueError(
            f"must be after now ({now.isoformat()})", field="expires_at", value=expires_at
        )
    with ctx.store.session() as s:
        same = next(
            (
                e
                for e in s.list_blocklist()
                if e.kind is kind
                and e.value == wanted
                and e.in_force(now)
                and e.expires_at == expires_at
            ),
            None,
        )
        if same is None:
            s.put_blocklist_entry(entry)
            ctx.audit(
                s,
                action="blocklist.added",
                subject_id=entry.id,
                actor=actor,
                detail={"kind": kind.value, "value": wanted, "reason": reason},
            )
    if same is not None:
        return BlocklistResult(
            outcome=BlocklistOutcome.UNCHANGED,
            entry=same,
            explanation=f"{same.describe()} already blocks it; nothing changed.",
        )
    until = f" until {expires_at.isoformat()}" if expires_at else ""
    return BlocklistResult(
        outcome=BlocklistOutcome.ADDED,
        entry=entry,
        explanation=f"Every payment with {kind.value.replace('_', ' ')} {wanted} is blocked"
        f"{until} ({entry.describe()}).",
    )


def lift_blocklist_entry(ctx: EngineContext, entry_id: str, *, actor: str) -> BlocklistResult:
    """Lift an entry: kept, with ``lifted_at``, and no longer blocking."""
    now = ctx.now()
    with ctx.store.session() as s:
        found = s.get_blocklist_entry(entry_id)
        if found is None:
            raise NotFoundError(
                f"no blocklist entry {entry_id!r}", field="entry_id", value=entry_id
            )
        lifted = found
        if found.in_force(now):
            lifted = attrs.evolve(found, lifted_at=now, lifted_by=actor)
            s.put_blocklist_entry(lifted)
            ctx.audit(s, action="blocklist.lifted", subject_id=entry_id, actor=actor)
    if lifted is found:
        return BlocklistResult(
            outcome=BlocklistOutcome.UNCHANGED,
            entry=found,
            explanation=f"{found.describe()} no longer blocks anything; nothing changed.",
        )
    return BlocklistResult(
        outcome=BlocklistOutcome.LIFTED,
        entry=lifted,
        explanation=f"{found.describe()} is lifted: it blocks nothing from now on.",
    )


# -- segments ----------------------------------------------------------------------------------------
def is_lead(s: StoreSession, customer_id: str) -> bool:
    """A lead until its first approved payment (a completed sale)."""
    return not any(
        t.kind is TransactionKind.SALE
        for t in s.list_transactions(
            customer_id=customer_id, statuses=[TransactionStatus.COMPLETED]
        )
    )
