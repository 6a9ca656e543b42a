"""One renewal per term, however many ``renew_due`` callers run at once.

``renew_due`` reads the due subscriptions without a lock, so two callers (two cron hosts, a
CLI run during the scheduled one) may both decide to renew the same term. The term is claimed in
the store, in the session that writes its sale ahead (``charging.charge(claim=...)``): the
subscription's row is locked and the claim holds only while

* the stored subscription is still as the caller read it (same state, same term start), and
* no sale of that term (its derived gateway key ``renewal:<id>:<new start>:sale``, or
  ``...:sale:<n>`` for the later attempts of a charge that fell back to another instrument) is
  stored.

The second caller waits for the lock, then finds the first caller's sale and renews nothing.
A sale of the term older than the engine's lease is a renewal that died between its charge and
its subscription write: the term is renewed on that sale (of its sales, the newest one not
failed), never charged again (``reconcile`` settles the sale's outcome); when every sale of the
term failed, the subscription goes past due instead (``engine.past_due``). The subscription write itself checks again that the term has not
moved (``renewed_copy``), so a term without a charge is renewed once too.
"""

from __future__ import annotations

from datetime import timedelta

import attrs

from ..model import Subscription, Transaction, TransactionKind, TransactionStatus
from ..plugins.protocols import StoreSession
from .context import EngineContext

__all__ = ["TermTaken", "claim_term", "renewed_copy"]


class TermTaken(Exception):
    """Another caller renews (``sale is None``) or renewed (``sale``: finish on it) this term."""

    def __init__(self, subscription_id: str, sale: Transaction | None) -> None:
        super().__init__(subscription_id)
        self.sale = sale


def renewed_copy(s: StoreSession, sub: Subscription, renewed: Subscription) -> Subscription | None:
    """What to store for the renewal ``renewed`` of ``sub`` (read before the charge): the
    stored subscription (row locked) moved to the new term, or None when the stored one left
    the term the caller read (another caller renewed it). Only the renewal's own fields (the
    term start, the anchor, the inventory charged for) are taken from ``renewed``; whatever
    an agent changed during the charge (suspended, the renewal inventory of the term after) is
    kept. A state change does not stop the renewal: once charged, the term is renewed."""
    current = s.get_subscription(sub.id, lock=True)
    if current is None or current.start != sub.start:
        return None
    return attrs.evolve(
        current, start=renewed.start, anchor=renewed.anchor, inventory=renewed.inventory
    )


def claim_term(ctx: EngineContext, s: StoreSession, sub: Subscription, sale_key: str) -> None:
    """Claim the term of ``sub`` whose sale has the gateway key ``sale_key`` (see the module
    docstring); raises ``TermTaken`` when another caller has it."""
    current = s.get_subscription(sub.id, lock=True)
    if current is None or current.state is not sub.state or current.start != sub.start:
        raise TermTaken(sub.id, None)
    sales = [
        t
        for t in s.list_transactions(customer_id=sub.customer_id)
        if t.kind is TransactionKind.SALE
        and t.idempotency_key is not None
        and (t.idempotency_key == sale_key or t.idempotency_key.startswith(f"{sale_key}:"))
    ]
    if not sales:
        return
    first = min(sales, key=lambda t: t.created_at)
    dead = ctx.now() >= first.created_at + timedelta(seconds=ctx.lease_seconds)
    # a charge that fell back wrote one sale per instrument (``<key>:sale``, ``<key>:sale:2``...):
    # finish on the one that may have taken the money, else on the last decline
    newest = sorted(sales, key=lambda t: t.created_at, reverse=True)
    taken = next((t for t in newest if t.status is not TransactionStatus.FAILED), newest[0])
    raise TermTaken(sub.id, taken if dead else None)
