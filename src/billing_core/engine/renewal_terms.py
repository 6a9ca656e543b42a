"""Which renewal term is unpaid, and what was tried for it (``engine.renewal_dunning``).

* ``renewal_key`` / ``trial_key`` / ``attempt_key``: the idempotency keys of a term's charge
  and of its retries (``<base>``, ``<base>:retry-<n>``);
* ``attempts``: the attempts made at a term, counted from the stored sales of their keys and
  from the audit entries of attempts that wrote no sale (blocked, no usable instrument), never
  from a counter of their own;
* ``unpaid_term``: the term a ``past_due`` (or ``trialing``) subscription still owes, if any;
* ``claim_attempt``: the claim run in the session that writes a retry's sale ahead, so a term
  is never charged twice;
* ``check_policy`` and ``lines_of``: the dunning policy's check and a term's sale lines.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date

import attrs

from ..model import (
    CertificateLine,
    Customer,
    Subscription,
    SubscriptionState,
    Transaction,
    TransactionKind,
    TransactionStatus,
)
from ..money import Money
from ..plugins.protocols import StoreSession
from ..rules import dunning as dunning_rules
from ..rules import renewal
from ..timeutil import local_date, timezone
from .charging import sale_key
from .context import EngineContext
from .renewal_claims import TermTaken, claim_term

__all__ = [
    "CANCELLED",
    "GAVE_UP",
    "RETRY_FAILED",
    "Attempt",
    "UnpaidTerm",
    "attempt_key",
    "attempts",
    "check_policy",
    "claim_attempt",
    "lines_of",
    "renewal_key",
    "term_sales",
    "trial_key",
    "unpaid_term",
]

RETRY_FAILED = "subscription.renewal_retry_failed"
GAVE_UP = "subscription.renewal_gave_up"
CANCELLED = "subscription.cancelled_for_delinquency"
_FAILED_ACTIONS = frozenset({"subscription.past_due", RETRY_FAILED})


def renewal_key(subscription_id: str, start: date) -> str:
    """The idempotency key of the renewal to the term starting ``start``."""
    return f"renewal:{subscription_id}:{start.isoformat()}"


def trial_key(subscription_id: str, start: date) -> str:
    """The idempotency key of the first charge after a trial ending on ``start``."""
    return f"trial:{subscription_id}:{start.isoformat()}"


def attempt_key(base: str, attempt: int) -> str:
    """The idempotency key of attempt ``attempt`` (from 1) at charging the term keyed ``base``."""
    return base if attempt == 1 else f"{base}:retry-{attempt - 1}"


check_policy = dunning_rules.check_settings
"""The dunning policy and delinquency period of a call (``rules.dunning.check_settings``)."""


def lines_of(
    inventory: Mapping[str, int], unit_prices: Mapping[str, Money]
) -> list[CertificateLine]:
    """One sale line per certificate type of ``inventory`` (zero quantities left out)."""
    return [
        CertificateLine(certificate_type=t, quantity=q, unit_price=unit_prices[t])
        for t, q in sorted(inventory.items())
        if q
    ]


# -- the attempts, from the store -----------------------------------------------------------------
@attrs.frozen(kw_only=True)
class Attempt:
    """One attempt at charging an unpaid term: ``status`` is ``FAILED`` (all its sales failed,
    or it wrote none), ``COMPLETED`` (``sale`` took the money) or in doubt (unknown, pending)."""

    number: int
    key: str
    on: date
    status: TransactionStatus
    sale: Transaction | None = None


def _sales_of(sales: list[Transaction], key: str) -> list[Transaction]:
    first = sale_key(key, 1)
    return [
        t
        for t in sales
        if t.idempotency_key is not None
        and (t.idempotency_key == first or t.idempotency_key.startswith(f"{first}:"))
    ]


def term_sales(s: StoreSession, sub: Subscription, base: str) -> list[Transaction]:
    return [
        t
        for t in s.list_transactions(customer_id=sub.customer_id)
        if t.kind is TransactionKind.SALE
        and t.idempotency_key is not None
        and t.idempotency_key.startswith(f"{base}:")
    ]


def attempts(s: StoreSession, sub: Subscription, base: str, customer: Customer) -> list[Attempt]:
    """The attempts made at charging the term keyed ``base``, in order (see the module
    docstring): they stop at the first one not made."""
    tz = timezone(customer.timezone)
    sales = term_sales(s, sub, base)
    failed_audits = [
        e
        for e in s.audit_log(subject_id=sub.id)
        if e.action in _FAILED_ACTIONS and isinstance(e.detail.get("key"), str)
    ]
    found: list[Attempt] = []
    for number in range(1, 1000):
        key = attempt_key(base, number)
        own = sorted(_sales_of(sales, key), key=lambda t: t.created_at)
        if own:
            done = next((t for t in own if t.status is TransactionStatus.COMPLETED), None)
            doubt = next((t for t in own if t.status is not TransactionStatus.FAILED), None)
            sale = done or doubt or own[-1]
            found.append(
                Attempt(
                    number=number,
                    key=key,
                    on=local_date(own[-1].created_at, tz),
                    status=sale.status,
                    sale=sale,
                )
            )
            if sale.status is not TransactionStatus.FAILED:
                break
            continue
        audited = [e for e in failed_audits if e.detail.get("key") == key]
        if not audited:
            break
        found.append(
            Attempt(
                number=number,
                key=key,
                on=local_date(audited[-1].at, tz),
                status=TransactionStatus.FAILED,
            )
        )
    return found


# -- the unpaid term -------------------------------------------------------------------------------
@attrs.frozen(kw_only=True)
class UnpaidTerm:
    """What a past due subscription owes: the term keyed ``base``, due on ``due_on``, for
    ``total`` (``None``: nothing to charge); ``paid`` is the subscription once it is paid."""

    trial: bool
    base: str
    due_on: date
    paid: Subscription
    total: Money | None
    lines: tuple[CertificateLine, ...]
    description: str


def unpaid_term(s: StoreSession, sub: Subscription, today: date) -> UnpaidTerm | None:
    base = trial_key(sub.id, sub.start)
    log = s.audit_log(subject_id=sub.id)
    tried = bool(term_sales(s, sub, base)) or any(
        e.action in _FAILED_ACTIONS and str(e.detail.get("key", "")).startswith(base) for e in log
    )
    paid = any(  # the trial's first term was paid: a later past due is its renewal's
        e.action == "subscription.trial_paid"
        or (e.action == "subscription.renewed" and e.detail.get("start") == sub.start.isoformat())
        for e in log
    )
    if tried and not paid:
        lines = lines_of(sub.inventory, sub.unit_prices)
        total = _sum(lines, sub)
        return UnpaidTerm(
            trial=True,
            base=base,
            due_on=sub.start,
            paid=attrs.evolve(sub, state=SubscriptionState.ACTIVE),
            total=total,
            lines=tuple(lines),
            description=f"{sub.term.describe()} subscription from {sub.start.isoformat()}, "
            f"after its trial",
        )
    if today < sub.term_end:
        return None  # past due on an unpaid invoice, mid-term: collect_due chases that
    verdict = renewal.renew(attrs.evolve(sub, state=SubscriptionState.ACTIVE), today=today)
    if not verdict.renewed:
        return None  # it no longer renews (auto-renewal off, the plan's last term)
    new = verdict.subscription
    return UnpaidTerm(
        trial=False,
        base=renewal_key(sub.id, new.start),
        due_on=sub.term_end,
        paid=new,
        total=verdict.total,
        lines=tuple(lines_of(new.inventory, new.unit_prices)),
        description=verdict.explanation,
    )


def _sum(lines: list[CertificateLine], sub: Subscription) -> Money | None:
    if not lines:
        return None
    return sum((line.total for line in lines[1:]), lines[0].total)


def claim_attempt(
    ctx: EngineContext, s: StoreSession, sub: Subscription, base: str, key: str
) -> None:
    """Claim attempt ``key`` at the term keyed ``base`` in the session writing its sale ahead:
    ``claim_term`` for its own sale key, and no other attempt of the term may have taken the
    money; raises ``TermTaken`` otherwise."""
    claim_term(ctx, s, sub, sale_key(key, 1))
    if any(t.status is not TransactionStatus.FAILED for t in term_sales(s, sub, base)):
        raise TermTaken(sub.id, None)
