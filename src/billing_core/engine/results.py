"""What the engine's flows answer. Each result is a frozen attrs value with an exact JSON form,
because the idempotency record stores it and every replay returns it unchanged.

Every engine call answers with one of these (one result family): ``outcome`` (a ``StrEnum``)
says what happened, ``reason`` the stable code when the call was refused (``None`` otherwise),
``explanation`` the sentence a support agent can read out; each also carries the ids of the
records it wrote. Every outcome enum has ``DENIED``: a guard or a rule said no (the permission
policy, a blocklisted customer, a backdate too far, ...), and nothing was stored. Fields added
later have defaults, so older stored results (idempotency records) still load.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from datetime import date

import attrs

from ..model import Certificate, Customer, InvoiceLine, Subscription
from ..money import Money
from ..plugins.protocols import CancellationState

__all__ = [
    "CancellationOutcome",
    "CancellationResult",
    "CertificateFollowUpResult",
    "ChargeOutcome",
    "ChargeResult",
    "CloseOutcome",
    "CloseResult",
    "CustomerOutcome",
    "CustomerResult",
    "DeliveryResult",
    "InventoryOutcome",
    "InventoryResult",
    "JobOutcome",
    "QueueRunResult",
    "ReconcileResult",
    "RefundOutcome",
    "RefundResult",
    "RenewalOutcome",
    "RenewalResult",
    "RenewalRunResult",
    "StateOutcome",
    "StateResult",
    "SubscriptionResult",
    "UsageOutcome",
    "UsageResult",
]


class RefundOutcome(enum.StrEnum):
    """How a refund request ended."""

    REFUNDED = "refunded"  # the gateway refunded it
    VOIDED = "voided"  # the gateway voided the unsettled charge
    DENIED = "denied"  # the rules said no; ``reason`` says why
    QUEUED = "queued"  # the gateway declined or was unreachable: queued for daily retries
    GAVE_UP = "gave_up"  # failed and no retry is allowed: the merchant was notified
    FAILED = "failed"  # a void that was declined or never sent: nothing moved, ask again
    UNKNOWN = "unknown"  # the gateway's answer was lost: reconcile before anything else


@attrs.frozen(kw_only=True)
class RefundResult:
    transaction_id: str
    outcome: RefundOutcome
    explanation: str
    amount: Money | None = None
    reason: str | None = None
    refund_transaction_id: str | None = None
    queue_entry_id: str | None = None


class ChargeOutcome(enum.StrEnum):
    """How a charge ended."""

    CHARGED = "charged"
    DENIED = "denied"  # the rules said no (a backdate too far, a domain with a live certificate)
    DECLINED = "declined"  # the gateway declined the card
    FAILED = "failed"  # not sent: nothing happened, safe to try again with a new key
    UNKNOWN = "unknown"  # the gateway's answer was lost: reconcile
    PENDING = "pending"  # a pending order: stored, nothing charged until it is activated
    TRIALING = "trialing"  # a trial: stored, nothing charged until the trial ends (renew_due)


@attrs.frozen(kw_only=True)
class ChargeResult:
    outcome: ChargeOutcome
    explanation: str
    amount: Money | None = None
    transaction_id: str | None = None
    reason: str | None = None
    instrument_id: str | None = None  # the instrument of the last attempt (None: none named)
    attempts: int = 0  # gateway attempts made, one per instrument tried


@attrs.frozen(kw_only=True)
class SubscriptionResult:
    outcome: ChargeOutcome
    explanation: str
    subscription_id: str | None = None
    charge: ChargeResult | None = None
    term_start: date | None = None
    term_end: date | None = None
    certificate_ids: tuple[str, ...] = ()
    reason: str | None = None
    trial_end: date | None = None  # a trial: the day its first paid term starts (``term_start``)


class InventoryOutcome(enum.StrEnum):
    CHANGED = "changed"  # the inventory (or the renewal inventory) changed
    DENIED = "denied"


def _inventory_outcome(result: InventoryResult) -> InventoryOutcome:
    return InventoryOutcome.CHANGED if result.allowed else InventoryOutcome.DENIED


@attrs.frozen(kw_only=True)
class InventoryResult:
    subscription_id: str
    explanation: str
    lines: tuple[InvoiceLine, ...] = ()
    allowed: bool = True
    reason: str | None = None
    certificate_ids: tuple[str, ...] = ()  # the certificates ordered for the named units
    outcome: InventoryOutcome = attrs.field(
        default=attrs.Factory(_inventory_outcome, takes_self=True)
    )


class RenewalOutcome(enum.StrEnum):
    RENEWED = "renewed"  # a new term began (and was charged)
    EXPIRED = "expired"  # auto-renewal was off: the subscription ended
    DENIED = "denied"  # not renewed: ``reason`` says why (a blocklisted customer)
    PAST_DUE = "past_due"  # the renewal charge was not paid: past due, tried again on a date
    GAVE_UP = "gave_up"  # the dunning schedule's last try was not paid: past due until cancelled
    CANCELLED = "cancelled"  # still unpaid at its cancel date: cancelled for delinquency


def _renewal_outcome(result: RenewalResult) -> RenewalOutcome:
    if result.renewed:
        return RenewalOutcome.RENEWED
    return RenewalOutcome.DENIED if result.reason else RenewalOutcome.EXPIRED


@attrs.frozen(kw_only=True)
class RenewalResult:
    subscription_id: str
    explanation: str
    renewed: bool
    charge: ChargeResult | None = None
    term_start: date | None = None
    term_end: date | None = None
    reason: str | None = None
    outcome: RenewalOutcome = attrs.field(default=attrs.Factory(_renewal_outcome, takes_self=True))
    attempt: int = 0  # an unpaid renewal's attempts so far (1: the renewal itself, 2: retry 1...)
    next_attempt_on: date | None = None  # past due: the dunning schedule's next try


class CloseOutcome(enum.StrEnum):
    CLOSED = "closed"  # the period's usage became invoice lines
    DENIED = "denied"


@attrs.frozen(kw_only=True)
class CloseResult:
    subscription_id: str
    explanation: str
    lines: tuple[InvoiceLine, ...] = ()
    already_closed: bool = False  # the period was closed before: the first close's lines
    outcome: CloseOutcome = CloseOutcome.CLOSED
    reason: str | None = None


class JobOutcome(enum.StrEnum):
    """How a job (a pass over the refund queue, a reconciliation) ended."""

    DONE = "done"  # the pass ran; its counts say what it did
    DENIED = "denied"  # the actor may not run it


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _failures(failed: tuple[tuple[str, str], ...]) -> str:
    return "; ".join(f"{subject}: {error}" for subject, error in failed)


def _queue_explanation(r: QueueRunResult) -> str:
    if r.outcome is JobOutcome.DENIED:
        return "The refund retry queue was not run."
    return (
        f"Claimed {_plural(r.claimed, 'due refund')}: {r.succeeded} succeeded, "
        f"{r.retry_later} will be tried again, {r.gave_up} gave up, {r.unknown} unknown"
        + (f", {r.lease_lost} taken over by another worker" if r.lease_lost else "")
        + (f", {len(r.failed)} failed ({_failures(r.failed)})." if r.failed else ".")
    )


@attrs.frozen(kw_only=True)
class QueueRunResult:
    """One pass over the refund retry queue."""

    claimed: int = 0
    succeeded: int = 0
    retry_later: int = 0
    gave_up: int = 0
    unknown: int = 0
    lease_lost: int = 0  # taken over by another worker meanwhile: nothing recorded twice
    failed: tuple[tuple[str, str], ...] = ()
    """(entry id, error) of each entry whose retry raised; the other entries went on."""
    outcome: JobOutcome = JobOutcome.DONE
    reason: str | None = None
    explanation: str = attrs.field(default=attrs.Factory(_queue_explanation, takes_self=True))


def _delivery_explanation(r: DeliveryResult) -> str:
    if r.outcome is JobOutcome.DENIED:
        return "No event was delivered."
    return f"Claimed {_plural(r.claimed, 'due event')}: {r.delivered} delivered" + (
        f", {len(r.failed)} failed and will be tried again ({_failures(r.failed)})."
        if r.failed
        else "."
    )


@attrs.frozen(kw_only=True)
class DeliveryResult:
    """One pass of ``deliver_events``: the due events claimed from the outbox, how many the
    listeners took, and the (event id, error) of each that a listener refused (due again after
    a backoff)."""

    claimed: int = 0
    delivered: int = 0
    failed: tuple[tuple[str, str], ...] = ()
    outcome: JobOutcome = JobOutcome.DONE
    reason: str | None = None
    explanation: str = attrs.field(default=attrs.Factory(_delivery_explanation, takes_self=True))


def _reconcile_explanation(r: ReconcileResult) -> str:
    if r.outcome is JobOutcome.DENIED:
        return "Nothing was reconciled."
    return (
        f"Asked the gateway about {_plural(r.checked, 'unknown outcome')}: {r.resolved} resolved, "
        f"{len(r.still_unknown)} still unknown"
        + (f", {len(r.failed)} failed ({_failures(r.failed)})." if r.failed else ".")
    )


@attrs.frozen(kw_only=True)
class ReconcileResult:
    """One pass of reconciliation over transactions whose outcome was unknown."""

    checked: int = 0
    resolved: int = 0
    still_unknown: tuple[str, ...] = ()
    failed: tuple[tuple[str, str], ...] = ()
    """(transaction id, error) of each record whose reconciliation raised; the rest went on."""
    outcome: JobOutcome = JobOutcome.DONE
    reason: str | None = None
    explanation: str = attrs.field(default=attrs.Factory(_reconcile_explanation, takes_self=True))


def _renewal_run_explanation(r: RenewalRunResult) -> str:
    if r.outcome is JobOutcome.DENIED:
        return "Nothing was renewed."
    by = {o: sum(1 for x in r.renewals if x.outcome is o) for o in RenewalOutcome}
    chased = "".join(
        f", {by[o]} {label}"
        for o, label in (
            (RenewalOutcome.PAST_DUE, "past due"),
            (RenewalOutcome.GAVE_UP, "gave up"),
            (RenewalOutcome.CANCELLED, "cancelled for delinquency"),
        )
        if by[o]
    )
    return (
        f"{_plural(by[RenewalOutcome.RENEWED], 'subscription')} renewed, "
        f"{by[RenewalOutcome.EXPIRED]} expired, {by[RenewalOutcome.DENIED]} refused{chased}."
    )


@attrs.frozen(kw_only=True)
class RenewalRunResult:
    """One pass of ``renew_due``: a ``RenewalResult`` per subscription it renewed, expired or
    refused (``renewals``; iterating the run iterates them)."""

    renewals: tuple[RenewalResult, ...] = ()
    outcome: JobOutcome = JobOutcome.DONE
    reason: str | None = None
    explanation: str = attrs.field(default=attrs.Factory(_renewal_run_explanation, takes_self=True))

    def __iter__(self) -> Iterator[RenewalResult]:
        return iter(self.renewals)

    def __len__(self) -> int:
        return len(self.renewals)

    def __getitem__(self, index: int) -> RenewalResult:
        return self.renewals[index]


class CustomerOutcome(enum.StrEnum):
    ADDED = "added"
    UPDATED = "updated"
    BLOCKLISTED = "blocklisted"
    UNBLOCKLISTED = "unblocklisted"
    UNCHANGED = "unchanged"  # already so: nothing was written
    DENIED = "denied"


@attrs.frozen(kw_only=True)
class CustomerResult:
    """What a customer call did; ``customer`` is the stored record after it (``None`` when a
    denial left nothing to show)."""

    customer_id: str
    outcome: CustomerOutcome
    explanation: str
    customer: Customer | None = None
    reason: str | None = None

    @property
    def allowed(self) -> bool:
        """False when the call was refused (``reason`` says why)."""
        return self.outcome is not CustomerOutcome.DENIED


class StateOutcome(enum.StrEnum):
    """How a suspend / reenable / cancel ended."""

    SUSPENDED = "suspended"
    REENABLED = "reenabled"
    CANCELLED = "cancelled"
    UNCHANGED = "unchanged"  # it was already in that state
    DENIED = "denied"  # not allowed (a cancelled subscription re-enabled, a denied actor)


@attrs.frozen(kw_only=True)
class StateResult:
    """What ``suspend``, ``reenable`` or ``cancel`` did; ``subscription`` is the subscription
    after it (unchanged on a denial, ``None`` when the actor was refused before it was read)."""

    subscription_id: str
    outcome: StateOutcome
    explanation: str
    subscription: Subscription | None = None
    reason: str | None = None
    paused_days: int = 0

    @property
    def allowed(self) -> bool:
        return self.outcome is not StateOutcome.DENIED


class UsageOutcome(enum.StrEnum):
    RECORDED = "recorded"  # ``recorded`` new events stored (duplicates ignored)
    DENIED = "denied"


@attrs.frozen(kw_only=True)
class UsageResult:
    outcome: UsageOutcome
    explanation: str
    recorded: int = 0
    duplicates: int = 0
    reason: str | None = None


class CancellationOutcome(enum.StrEnum):
    CANCELLED = "cancelled"  # a pending certificate: cancelled at once
    REQUESTED = "requested"  # an issued one: waiting for the customer in the provider's portal
    DENIED = "denied"


@attrs.frozen(kw_only=True)
class CancellationResult:
    """What ``request_certificate_cancellation`` did; ``certificate`` as stored after it."""

    certificate_id: str
    outcome: CancellationOutcome
    explanation: str
    certificate: Certificate | None = None
    state: CancellationState | None = None
    reason: str | None = None


def _certificate_followup_explanation(r: CertificateFollowUpResult) -> str:
    if r.outcome is JobOutcome.DENIED:
        return "No pending certificate was ordered."
    if r.checked == 0:
        return "No certificate was waiting to be ordered again."
    return f"Ordered {len(r.ordered)} of {_plural(r.checked, 'pending certificate')} again" + (
        f"; {len(r.still_pending)} still pending, tried again next run "
        f"({_failures(r.still_pending)})."
        if r.still_pending
        else "."
    )


@attrs.frozen(kw_only=True)
class CertificateFollowUpResult:
    """One pass of ``order_pending_certificates``: the certificates kept ``pending`` after a
    provider failed (audit ``certificate.order_pending``) ordered again. ``ordered``: the ids
    the provider ordered now; ``still_pending``: (certificate id, error) of those it failed
    again (audited ``certificate.order_retry_failed``, left for the next run)."""

    checked: int = 0
    ordered: tuple[str, ...] = ()
    still_pending: tuple[tuple[str, str], ...] = ()
    outcome: JobOutcome = JobOutcome.DONE
    reason: str | None = None
    explanation: str = attrs.field(
        default=attrs.Factory(_certificate_followup_explanation, takes_self=True)
    )
