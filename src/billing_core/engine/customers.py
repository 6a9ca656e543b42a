"""Customers: adding, updating, blocklisting and lifting a blocklisting, each audited.

* ``add_customer`` stores a new customer. An id that already exists is refused
  (``customer_exists``): a record is never replaced silently, and never unblocklisted by a save.
* ``update_customer`` replaces the details of an existing customer and keeps its stored
  ``blocklisted`` flag whatever the new record says: only ``blocklist_customer`` and
  ``unblocklist_customer`` (admins only, by default) change it.

The permission checks are the engine's guard path (``engine.guards``); these flows only read and
write the store. Each answers with a ``CustomerResult``.
"""

from __future__ import annotations

import attrs

from ..decisions import Decision
from ..errors import ConflictError
from ..model import Customer
from .context import EngineContext
from .guards import CustomerDecision, CustomerReason, customer
from .results import CustomerOutcome, CustomerResult

__all__ = ["add_customer", "set_blocklisted", "update_customer"]


def add_customer(ctx: EngineContext, new: Customer, *, actor: str) -> CustomerResult:
    """Store ``new`` unless its id exists (then a ``customer_exists`` denial, nothing written)."""
    with ctx.store.session() as s:
        stored = s.get_customer(new.id)
        if stored is None:
            try:
                s.insert_customer(new)  # one statement: a concurrent add of the same id loses here
            except ConflictError:
                stored = s.get_customer(new.id)
                assert stored is not None, "the conflicting customer is committed"
        if stored is None:
            ctx.audit(s, action="customer.added", subject_id=new.id, actor=actor)
        else:
            detail = {"reason": str(CustomerReason.CUSTOMER_EXISTS)}
            ctx.audit(
                s, action="add_customer.denied", subject_id=new.id, actor=actor, detail=detail
            )
    if stored is not None:
        denial = CustomerDecision(
            allowed=False,
            reason=CustomerReason.CUSTOMER_EXISTS,
            customer_id=new.id,
            explanation=(
                f"Customer {new.id} already exists ({stored.company}); nothing was changed. "
                "Use update_customer to change its details (it keeps the blocklisting)."
            ),
        )
        return denied(new.id, denial, stored)
    blocked = " It is blocklisted from the start." if new.blocklisted else ""
    return CustomerResult(
        customer_id=new.id,
        outcome=CustomerOutcome.ADDED,
        customer=new,
        explanation=f"Customer {new.id} ({new.company}) was added.{blocked}",
    )


def update_customer(ctx: EngineContext, new: Customer, *, actor: str) -> CustomerResult:
    """Replace an existing customer's details, keeping its stored ``blocklisted`` flag."""
    with ctx.store.session() as s:
        stored = customer(s, new.id)
        kept = attrs.evolve(new, blocklisted=stored.blocklisted)
        if kept != stored:
            s.put_customer(kept)
            ctx.audit(s, action="customer.updated", subject_id=new.id, actor=actor)
    note = ""
    if new.blocklisted != stored.blocklisted:
        call = "unblocklist_customer" if stored.blocklisted else "blocklist_customer"
        state = "stays blocklisted" if stored.blocklisted else "stays not blocklisted"
        note = f" It {state}: only {call} changes that."
    if kept == stored:
        return CustomerResult(
            customer_id=new.id,
            outcome=CustomerOutcome.UNCHANGED,
            customer=stored,
            explanation=f"Customer {new.id} already has these details; nothing changed.{note}",
        )
    return CustomerResult(
        customer_id=new.id,
        outcome=CustomerOutcome.UPDATED,
        customer=kept,
        explanation=f"Customer {new.id} ({kept.company}) was updated.{note}",
    )


def set_blocklisted(
    ctx: EngineContext, customer_id: str, flag: bool, *, actor: str, role: str
) -> CustomerResult:
    """Blocklist (``flag=True``) or lift the blocklisting of a customer."""
    with ctx.store.session() as s:
        stored = customer(s, customer_id)
        changed = attrs.evolve(stored, blocklisted=flag)
        if stored.blocklisted != flag:
            s.put_customer(changed)
            ctx.audit(
                s,
                action="customer.blocklist" if flag else "customer.unblocklist",
                subject_id=customer_id,
                actor=actor,
                detail={"role": role},
            )
    if stored.blocklisted == flag:
        state = "already blocklisted" if flag else "not blocklisted"
        return CustomerResult(
            customer_id=customer_id,
            outcome=CustomerOutcome.UNCHANGED,
            customer=stored,
            explanation=f"Customer {customer_id} is {state}; nothing changed.",
        )
    if flag:
        text = (
            f"Customer {customer_id} is blocklisted: charges, new subscriptions, inventory, "
            "renewals and re-enabling are refused until an admin lifts it."
        )
    else:
        text = f"Customer {customer_id}'s blocklisting is lifted: it may be charged again."
    return CustomerResult(
        customer_id=customer_id,
        outcome=CustomerOutcome.BLOCKLISTED if flag else CustomerOutcome.UNBLOCKLISTED,
        customer=changed,
        explanation=text,
    )


def denied(customer_id: str, denial: Decision, stored: Customer | None = None) -> CustomerResult:
    """The ``CustomerResult`` of a denial."""
    return CustomerResult(
        customer_id=customer_id,
        outcome=CustomerOutcome.DENIED,
        reason=str(denial.reason),
        explanation=denial.explanation,
        customer=stored,
    )
