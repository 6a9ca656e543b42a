"""The worker's steps: what one pass of ``billing-core worker`` does, in order.

A step is an object with a ``name``, a ``lease`` and ``run(context)`` returning its counts.
``lease`` names the step lease it runs under (see ``leases``): steps sharing a lease name never
run at the same time anywhere on the database; ``None`` means the step is safe to run in every
worker at once. ``DEFAULT_STEPS`` is the pass: renewals, the refund queue, reconcile, events. Invoicing
and collection, when the engine grows them, are steps of their own inserted between renewals
and the refund queue (invoice what renewed, collect what was invoiced, then retry refunds and
reconcile what is in doubt); ``Worker(steps=...)`` and ``billing-core worker --steps`` take any
sequence.

What each step guarantees when several workers share one database:

* ``renewals`` (lease ``charges``): ``renew_due`` renews every active subscription whose term
  has ended, converts trials that have ended, chases unpaid renewals on the dunning schedule
  (and cancels them at delinquency), and expires the ones that do not auto-renew; its counts
  are per outcome (``renewed`` and ``expired`` always, ``past_due``, ``gave_up``,
  ``cancelled``, ``denied`` when they happen). Each term's charge is claimed in the session
  that writes its sale ahead (``engine.renewal_claims``), so two runs never both charge a term;
  the lease keeps the step to one worker at a time all the same (it shares ``charges`` with
  reconcile, below). A renewal's charge carries a gateway key derived from the subscription and
  the new term's start.
* ``refund-queue`` (no lease): ``process_refund_queue`` in batches until nothing due is left;
  every entry is claimed with its own lease (``FOR UPDATE SKIP LOCKED`` on PostgreSQL), so
  workers split the queue, and a retry reuses the refund's gateway key, so no refund is paid
  twice.
* ``reconcile`` (lease ``charges``): asks the gateway about every transaction whose outcome is
  unknown and records the answer. It shares the renewals' lease because a renewal's charge is
  written ahead as ``unknown`` while its gateway call runs: reconciling it then would race the
  worker that is waiting for the answer.
* ``events`` (no lease): ``deliver_events`` in batches until nothing due is left: the events
  whose listener failed (after their backoff) or whose deliverer died (after its lease). Every
  event is claimed with its own lease, so workers split the outbox; delivery is at least once.

Steps read results only through ``outcome`` (renewals), ``claimed``/``succeeded``/``retry_later``/
``gave_up``/``unknown``, ``checked``/``resolved``/``still_unknown`` and
``claimed``/``delivered``/``failed``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

import attrs

from ..engine import BillingEngine
from ..engine.results import RenewalOutcome
from ..errors import ConfigurationError
from ..rules.permissions import Actor

__all__ = [
    "CHARGES_LEASE",
    "DEFAULT_STEPS",
    "Events",
    "Reconcile",
    "RefundQueue",
    "Renewals",
    "Step",
    "StepContext",
    "choose_steps",
]


CHARGES_LEASE = "charges"
"""The lease of the steps that write charges ahead or resolve them: renewals and reconcile."""


@attrs.frozen(kw_only=True)
class StepContext:
    """What a step gets: the engine, the worker's actor, whether a shutdown was asked (a long
    step checks it between batches and returns early), and ``progress`` for counts so far."""

    engine: BillingEngine
    actor: Actor
    stopping: Callable[[], bool]
    progress: Callable[[Mapping[str, int]], None]


class Step(Protocol):
    """One step of a worker pass."""

    @property
    def name(self) -> str: ...

    @property
    def lease(self) -> str | None:
        """The step lease it runs under (one holder at a time), or ``None``: run everywhere."""
        ...

    def run(self, context: StepContext) -> Mapping[str, int]: ...


@attrs.frozen
class Renewals:
    name: str = "renewals"
    lease: str | None = CHARGES_LEASE

    def run(self, context: StepContext) -> Mapping[str, int]:
        results = context.engine.renew_due(actor=context.actor)
        counts = {o.value: 0 for o in (RenewalOutcome.RENEWED, RenewalOutcome.EXPIRED)}
        for r in results:  # renewed and expired always; past_due, gave_up, ... when they happen
            counts[r.outcome.value] = counts.get(r.outcome.value, 0) + 1
        return counts


@attrs.frozen
class RefundQueue:
    name: str = "refund-queue"
    lease: str | None = None
    batch: int = 100

    def run(self, context: StepContext) -> Mapping[str, int]:
        totals = dict.fromkeys(("claimed", "succeeded", "retry_later", "gave_up", "unknown"), 0)
        while not context.stopping():
            result = context.engine.process_refund_queue(limit=self.batch, actor=context.actor)
            for key in totals:
                totals[key] += getattr(result, key)
            if result.claimed < self.batch:
                break
            context.progress(totals)
        return totals


@attrs.frozen
class Reconcile:
    name: str = "reconcile"
    lease: str | None = CHARGES_LEASE

    def run(self, context: StepContext) -> Mapping[str, int]:
        result = context.engine.reconcile(actor=context.actor)
        return {
            "checked": result.checked,
            "resolved": result.resolved,
            "still_unknown": len(result.still_unknown),
        }


@attrs.frozen
class Events:
    name: str = "events"
    lease: str | None = None
    batch: int = 100

    def run(self, context: StepContext) -> Mapping[str, int]:
        totals = dict.fromkeys(("claimed", "delivered", "failed"), 0)
        while not context.stopping():
            result = context.engine.deliver_events(limit=self.batch, actor=context.actor)
            totals["claimed"] += result.claimed
            totals["delivered"] += result.delivered
            totals["failed"] += len(result.failed)
            if result.claimed < self.batch:
                break
            context.progress(totals)
        return totals


DEFAULT_STEPS: tuple[Step, ...] = (Renewals(), RefundQueue(), Reconcile(), Events())
"""One pass, in order. Invoicing and collection go between renewals and the refund queue."""


def choose_steps(names: Sequence[str] | None, *, batch: int = 100) -> tuple[Step, ...]:
    """The default steps named in ``names`` (all of them for ``None``), in pass order."""
    steps = tuple(
        attrs.evolve(step, batch=batch) if isinstance(step, RefundQueue | Events) else step
        for step in DEFAULT_STEPS
    )
    if names is None:
        return steps
    known = [step.name for step in steps]
    for name in names:
        if name not in known:
            raise ConfigurationError(
                f"no worker step {name!r}; the steps are {', '.join(known)}",
                field="steps",
                value=name,
            )
    return tuple(step for step in steps if step.name in names)
