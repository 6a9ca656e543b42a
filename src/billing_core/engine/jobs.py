"""The host's jobs on a ``BillingEngine``: renewals, the refund retry queue, reconciliation and
usage recording. Each takes an optional ``actor`` (default ``SYSTEM_ACTOR``, the host itself)
except ``renew_due``, which charges and so names who runs it.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from ..errors import InvalidValueError
from ..model import UsageEvent
from ..periods import Period
from ..rules.dunning import DunningPolicy
from ..rules.permissions import SYSTEM_ACTOR, Actor
from ..timeutil import require_aware
from . import certificate_followups, invoice_payments, refund_queue, renewal_dunning, subscriptions
from . import reconcile as reconciliation
from .base import EngineBase
from .collect import DEFAULT_DELINQUENCY_PERIOD
from .guards import actor as _actor
from .idempotency import recover_keys
from .results import (
    CertificateFollowUpResult,
    DeliveryResult,
    JobOutcome,
    QueueRunResult,
    ReconcileResult,
    RenewalRunResult,
    UsageOutcome,
    UsageResult,
)

__all__ = ["EngineJobs"]


class EngineJobs(EngineBase):
    """The jobs a host runs on a schedule (or as records arrive)."""

    def renew_due(
        self,
        *,
        actor: Actor,
        dunning: DunningPolicy | None = None,
        delinquency_period: Period | timedelta | None = DEFAULT_DELINQUENCY_PERIOD,
    ) -> RenewalRunResult:
        """Renew every subscription whose term has ended (charged once per term: the renewal's
        idempotency key is derived from the subscription and the new term's start); a
        blocklisted customer's subscriptions are refused (``customer_blocklisted``). A trial
        whose end has come is charged its first term. An unpaid renewal (``past_due``) is tried
        again per ``dunning`` (default ``DunningPolicy()``: 8, 8, 8 days) and cancelled
        ``delinquency_period`` after its term end (default 30 days; ``None``: never), as
        ``collect_due`` does for invoices (docs/collection.md, "Unpaid renewals")."""
        who = _actor(actor)
        policy, period = renewal_dunning.check_policy(dunning, delinquency_period)
        return self._guarded(
            "renew_due",
            who,
            lambda d: RenewalRunResult(
                outcome=JobOutcome.DENIED, reason=str(d.reason), explanation=d.explanation
            ),
            lambda: RenewalRunResult(
                renewals=tuple(
                    subscriptions.renew_due(
                        self.ctx, actor=who.id, policy=policy, delinquency_period=period
                    )
                )
            ),
        )

    def process_refund_queue(
        self, *, now: datetime | None = None, limit: int = 100, actor: Actor | None = None
    ) -> QueueRunResult:
        """Retry the failed refunds due at ``now`` (default: the clock)."""
        who = SYSTEM_ACTOR if actor is None else _actor(actor)
        if now is not None:
            require_aware(now, "now")
        return self._guarded(
            "process_refund_queue",
            who,
            lambda d: QueueRunResult(
                outcome=JobOutcome.DENIED, reason=str(d.reason), explanation=d.explanation
            ),
            lambda: refund_queue.process_refund_queue(self.ctx, now=now, limit=limit),
        )

    def reconcile(self, *, actor: Actor | None = None) -> ReconcileResult:
        """Ask the gateway about every transaction whose outcome is unknown, and record it (an
        invoice payment among them is then recorded on its invoice, or released)."""
        who = SYSTEM_ACTOR if actor is None else _actor(actor)
        return self._guarded(
            "reconcile",
            who,
            lambda d: ReconcileResult(
                outcome=JobOutcome.DENIED, reason=str(d.reason), explanation=d.explanation
            ),
            self._reconcile_and_recover_keys,
        )

    def _reconcile_and_recover_keys(self) -> ReconcileResult:
        result = reconciliation.reconcile(self.ctx)
        # invoice payments whose answer was lost: recorded or released now their sale is known
        invoice_payments.settle_payments_in_flight(self.ctx, actor=SYSTEM_ACTOR.id)
        recover_keys(
            self.store,
            now=self.ctx.now(),
            owner=self.ctx.worker_id,
            lease_seconds=self.ctx.lease_seconds,
        )
        return result

    def deliver_events(self, *, limit: int = 100, actor: Actor | None = None) -> DeliveryResult:
        """Deliver up to ``limit`` due events from the outbox to the listeners, oldest first:
        events whose listener failed (after their backoff) and events whose deliverer died
        (after its lease). Events are delivered after each engine call anyway; a worker runs
        this to retry (``billing-core worker``'s ``events`` step)."""
        who = SYSTEM_ACTOR if actor is None else _actor(actor)
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
            raise InvalidValueError("must be an int of at least 0", field="limit", value=limit)

        def body() -> DeliveryResult:
            done = self._deliver(limit)
            return DeliveryResult(
                claimed=done.claimed, delivered=done.delivered, failed=done.failed
            )

        return self._guarded(
            "deliver_events",
            who,
            lambda d: DeliveryResult(
                outcome=JobOutcome.DENIED, reason=str(d.reason), explanation=d.explanation
            ),
            body,
        )

    def order_pending_certificates(
        self, *, limit: int | None = None, actor: Actor | None = None
    ) -> CertificateFollowUpResult:
        """Order again, at the provider, the certificates kept ``pending`` because it failed
        after the money moved (audit ``certificate.order_pending``), up to ``limit``, under the
        same provider key (a provider that did order one answers with it, never a second):
        each is stored and audited ``certificate.ordered``, or audited
        ``certificate.order_retry_failed`` and left for the next run."""
        who = SYSTEM_ACTOR if actor is None else _actor(actor)
        if limit is not None and (
            isinstance(limit, bool) or not isinstance(limit, int) or limit < 0
        ):
            raise InvalidValueError(
                "must be None or an int of at least 0", field="limit", value=limit
            )
        return self._guarded(
            "order_pending_certificates",
            who,
            lambda d: CertificateFollowUpResult(
                outcome=JobOutcome.DENIED, reason=str(d.reason), explanation=d.explanation
            ),
            lambda: certificate_followups.order_pending_certificates(
                self.ctx, limit=limit, actor=who.id
            ),
        )

    # -- usage -------------------------------------------------------------------------------------
    def record_usage(
        self, events: Iterable[UsageEvent], *, actor: Actor | None = None
    ) -> UsageResult:
        """Store usage events; a duplicate id is ignored (``recorded`` counts the new ones)."""
        who = SYSTEM_ACTOR if actor is None else _actor(actor)
        batch = list(events) if isinstance(events, Iterable) else events

        def body() -> UsageResult:
            new = subscriptions.record_usage(self.ctx, batch)
            seen = len(batch) if isinstance(batch, list) else new
            return UsageResult(
                outcome=UsageOutcome.RECORDED,
                recorded=new,
                duplicates=seen - new,
                explanation=f"Recorded {new} new usage event{'' if new == 1 else 's'}"
                f" ({seen - new} already recorded, ignored).",
            )

        return self._guarded(
            "record_usage",
            who,
            lambda d: UsageResult(
                outcome=UsageOutcome.DENIED, reason=str(d.reason), explanation=d.explanation
            ),
            body,
        )
