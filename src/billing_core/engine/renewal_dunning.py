"""Chasing an unpaid renewal: retries on the dunning schedule, giving up, and delinquency.

Which term is unpaid, its keys and the attempts made at it are ``engine.renewal_terms``; this
module runs a subscription's turn (``chase``) and writes what it decided.

A renewal (or a trial's first charge, ``engine.trials``) that was not paid leaves the
subscription ``past_due`` on its old term (``engine.past_due``). Each ``renew_due`` run then
looks at it again, exactly as ``collect_due`` looks at an unpaid invoice:

* **The unpaid term.** A trial's: some attempt of ``trial:<id>:<start>`` was made and the
  trial's first term was not paid (no ``subscription.trial_paid``, no ``subscription.renewed``
  of that start in its audit; the stored ``start`` of a trialing subscription is its trial end,
  the first paid term's start). Else a
  renewal's, once the term has ended on the customer's local date (``today >= term_end``): the
  next term, keyed ``renewal:<id>:<new start>`` as ``renew_due`` keys it. A ``past_due``
  subscription whose term has not ended (an unpaid invoice made it past due) is not chased here.
* **The attempts** are counted from the store, never from a counter of their own (no schema
  change): attempt 1 is the renewal's own charge (key ``<base>``), attempt ``n + 1`` is retry
  ``n`` (key ``<base>:retry-<n>``: a new gateway key, because reusing the first one would replay
  the declined answer). An attempt was made when a sale of its key is stored
  (``<key>:sale``, ``<key>:sale:2``... for the fallback instruments) or, for an attempt that
  wrote no sale (blocked, no usable instrument), when its failure was audited with its key
  (``subscription.past_due`` for attempt 1, ``subscription.renewal_retry_failed`` after).
  An attempt is failed when all its sales failed; its day is the customer's local date of its
  last sale (or of the audit entry).
* **Per run**, in order: an attempt whose sale completed (a run that died between the charge and
  the subscription write) renews the term on that sale, never charging again; an attempt in
  doubt (unknown, pending) leaves it alone until ``reconcile()``. Then, once an attempt has
  failed, **delinquency**: ``rules.collection.assess_unpaid(due_on=<the unpaid term's start>,
  today, delinquency_period)`` says ``cancel_on`` has come: the subscription is cancelled
  (``delinquent``), ``auto_renew`` off, audited ``subscription.cancelled_for_delinquency``.
  Then the **schedule**: ``rules.dunning.next_attempt(failures, last attempt's day, policy)``;
  when it has run out the subscription stays ``past_due`` (audited
  ``subscription.renewal_gave_up`` once); when its date has come, one more attempt.
* **One charge per term.** A retry's sale is written ahead in the session that claims it
  (``claim_attempt``): ``renewal_claims.claim_term`` for its own key (the stored subscription
  still past due on the same term, no sale of this key), and no other attempt of the term that
  may have taken the money. Two runs on the same day compute the same attempt and key: the
  second finds the first's sale and charges nothing.
* A paid retry renews the term like a renewal (``renewal_paid``: past_due -> active, a new term
  from the old term's end; a trial's first term keeps its start), audited
  ``subscription.renewed`` and emitted ``SubscriptionRenewed``. A declined one is audited
  ``subscription.renewal_retry_failed`` and answered ``past_due`` with the next try's date, or
  ``gave_up`` after the schedule's last try.
"""

from __future__ import annotations

from datetime import date, timedelta
from functools import partial

import attrs

from ..model import (
    Customer,
    InvoiceLineKind,
    Subscription,
    SubscriptionState,
    Transaction,
    TransactionStatus,
)
from ..periods import Period
from ..plugins.events import (
    RenewalGaveUp,
    SubscriptionCancelledForDelinquency,
    SubscriptionRenewed,
)
from ..plugins.protocols import StoreSession
from ..rules import collection
from ..rules.dunning import DunningPolicy, DunningStep, next_attempt
from ..rules.subscription_states import StateEvent, next_state
from . import past_due, receipts
from .charging import charge
from .context import EngineContext
from .dunning import failed_invoices
from .guards import blocklisted
from .renewal_claims import TermTaken
from .renewal_terms import (
    CANCELLED,
    GAVE_UP,
    RETRY_FAILED,
    Attempt,
    UnpaidTerm,
    attempt_key,
    attempts,
    check_policy,
    claim_attempt,
    lines_of,
    renewal_key,
    trial_key,
    unpaid_term,
)
from .results import ChargeOutcome, ChargeResult, RenewalOutcome, RenewalResult

__all__ = [
    "CANCELLED",
    "GAVE_UP",
    "RETRY_FAILED",
    "Attempt",
    "UnpaidTerm",
    "attempt_key",
    "attempts",
    "chase",
    "check_policy",
    "claim_attempt",
    "first_failure",
    "lines_of",
    "renewal_key",
    "trial_key",
]


# -- one past due subscription's turn ---------------------------------------------------------------
def chase(
    ctx: EngineContext,
    sub: Subscription,
    customer: Customer,
    *,
    today: date,
    policy: DunningPolicy,
    delinquency_period: Period | timedelta | None,
    actor: str,
) -> RenewalResult | None:
    """``renew_due``'s turn for the past due ``sub`` (see the module docstring); None when it
    is left alone this run."""
    with ctx.store.session() as s:
        term = unpaid_term(s, sub, today)
        if term is None:
            return None
        tries = attempts(s, sub, term.base, customer)
    last = tries[-1] if tries else None
    if last is not None and last.status is TransactionStatus.COMPLETED:
        return _renew(
            ctx, sub, term, last.sale, None, actor=actor, attempt=last.number, today=today
        )
    if last is not None and last.status is not TransactionStatus.FAILED:
        return None  # in doubt: reconcile() settles its sale first
    failures = len(tries)
    what = _what(sub, term)
    if failures and delinquency_period is not None:
        unpaid = collection.assess_unpaid(
            due_on=term.due_on, today=today, delinquency_period=delinquency_period
        )
        if unpaid.state is collection.UnpaidState.DELINQUENT:
            return _cancel(ctx, sub, term, what, unpaid.explanation, failures, actor=actor)
    if last is not None:
        step = next_attempt(failures, last.on, policy)
        if step.give_up:
            return _give_up(
                ctx, sub, term, step, what, delinquency_period, today=today, actor=actor
            )
        if step.on is not None and today < step.on:
            return None
    number = failures + 1
    key = attempt_key(term.base, number)
    result: ChargeResult
    sale: Transaction | None = None
    if term.total is None:
        return _renew(ctx, sub, term, None, None, actor=actor, attempt=number, today=today)
    if customer.blocklisted:  # the guard path's own check: a blocked attempt, counted
        denial = blocklisted(customer, "renew_due")
        result = ChargeResult(
            outcome=ChargeOutcome.DENIED,
            amount=term.total,
            reason=str(denial.reason),
            explanation=denial.explanation,
        )
    else:
        try:
            result, sale = charge(
                ctx,
                amount=term.total,
                key=key,
                actor=actor,
                customer_id=sub.customer_id,
                subscription_id=sub.id,
                lines=term.lines,
                description=f"{term.description} ({_which(number)})",
                claim=partial(claim_attempt, ctx, sub=sub, base=term.base, key=key),
            )
        except TermTaken:  # another run makes (or made) this attempt: its answer stands
            return None
    if result.outcome is ChargeOutcome.CHARGED:
        return _renew(ctx, sub, term, sale, result, actor=actor, attempt=number, today=today)
    if not past_due.unpaid(result, sale):
        return None  # in doubt: reconcile() settles its sale first
    step = next_attempt(number, today, policy)
    recorded = _record_failure(ctx, sub, key, number, result, sale, step, term, actor=actor)
    if not recorded:
        return None  # another run counted this attempt
    text = (
        f"Subscription {sub.id}: {_which(number)} of {what} was not paid on "
        f"{today.isoformat()}: {result.explanation}"
    )
    if step.give_up:
        return _give_up(
            ctx,
            sub,
            term,
            step,
            what,
            delinquency_period,
            today=today,
            actor=actor,
            lead=text,
            charge=result,
        )
    return RenewalResult(
        subscription_id=sub.id,
        renewed=False,
        charge=result,
        reason=result.reason or "renewal_unpaid",
        outcome=RenewalOutcome.PAST_DUE,
        attempt=number,
        next_attempt_on=step.on,
        term_start=term.paid.start,
        term_end=term.paid.term_end,
        explanation=f"{_sentence(text)} {step.explanation}",
    )


def first_failure(
    ctx: EngineContext,
    sub: Subscription,
    unpaid: RenewalResult,
    *,
    today: date,
    policy: DunningPolicy,
    delinquency_period: Period | timedelta | None,
    base: str,
    actor: str,
) -> RenewalResult:
    """``unpaid`` (a renewal or trial charge that just made ``sub`` past due) with the dunning
    schedule's next try, or ``gave_up`` when the schedule has no retries."""
    step = next_attempt(1, today, policy)
    if step.give_up:
        with ctx.store.session() as s:
            current = s.get_subscription(sub.id, lock=True)
            if current is not None:
                _audit_gave_up(ctx, s, sub, base, step, actor=actor)
        return attrs.evolve(
            unpaid,
            outcome=RenewalOutcome.GAVE_UP,
            explanation=f"{_sentence(unpaid.explanation)} {step.explanation}"
            f"{_until(sub, base, delinquency_period)}",
        )
    return attrs.evolve(
        unpaid,
        next_attempt_on=step.on,
        explanation=f"{_sentence(unpaid.explanation)} {step.explanation}",
    )


def _sentence(text: str) -> str:
    text = text.rstrip()
    return text if text.endswith((".", "!", "?", ")")) else f"{text}."


def _which(attempt: int) -> str:
    return "the first attempt" if attempt == 1 else f"retry {attempt - 1}"


# -- the records --------------------------------------------------------------------------------
def _what(sub: Subscription, term: UnpaidTerm) -> str:
    amount = f"{term.total}" if term.total is not None else "nothing"
    if term.trial:
        return (
            f"the first term after its trial ({amount}, {term.paid.start.isoformat()} to "
            f"{term.paid.term_end.isoformat()})"
        )
    return (
        f"the renewal of {amount} for {term.paid.start.isoformat()} to "
        f"{term.paid.term_end.isoformat()}"
    )


def _until(sub: Subscription, base: str, delinquency_period: Period | timedelta | None) -> str:
    due_on = sub.start if base.startswith("trial:") else sub.term_end
    if delinquency_period is None:
        return " It stays past due (no delinquency period: never cancelled for it)."
    cancel_on = collection.assess_unpaid(
        due_on=due_on, today=due_on, delinquency_period=delinquency_period
    ).cancel_on
    assert cancel_on is not None
    return (
        f" It stays past due and is cancelled for delinquency on {cancel_on.isoformat()} unless "
        "it is paid."
    )


def _audit_gave_up(
    ctx: EngineContext,
    s: StoreSession,
    sub: Subscription,
    base: str,
    step: DunningStep,
    *,
    actor: str,
) -> bool:
    """Audit ``subscription.renewal_gave_up`` for the term keyed ``base`` once (the caller holds
    the subscription's row lock); whether this call wrote it."""
    if any(
        e.action == GAVE_UP and e.detail.get("key") == base for e in s.audit_log(subject_id=sub.id)
    ):
        return False
    ctx.audit(
        s,
        action=GAVE_UP,
        subject_id=sub.id,
        actor=actor,
        detail={"key": base, "failures": step.failures, "explanation": step.explanation},
    )
    return True


def _give_up(
    ctx: EngineContext,
    sub: Subscription,
    term: UnpaidTerm,
    step: DunningStep,
    what: str,
    delinquency_period: Period | timedelta | None,
    *,
    today: date,
    actor: str,
    lead: str | None = None,
    charge: ChargeResult | None = None,
) -> RenewalResult | None:
    with ctx.store.session() as s:
        current = s.get_subscription(sub.id, lock=True)
        if current is None or current.state is not sub.state or current.start != sub.start:
            return None
        if not _audit_gave_up(ctx, s, sub, term.base, step, actor=actor):
            return None  # said once already
    text = lead or f"Subscription {sub.id}: {what} is still unpaid on {today.isoformat()}."
    said = f"{_sentence(text)} {step.explanation}{_until(sub, term.base, delinquency_period)}"
    ctx.emit(
        RenewalGaveUp(
            at=ctx.now(),
            subscription=current,
            attempts=step.failures,
            notify_emails=ctx.notify_emails,
            explanation=said,
        )
    )
    return RenewalResult(
        subscription_id=sub.id,
        renewed=False,
        charge=charge,
        reason="renewal_gave_up",
        outcome=RenewalOutcome.GAVE_UP,
        attempt=step.failures,
        term_start=term.paid.start,
        term_end=term.paid.term_end,
        explanation=said,
    )


def _record_failure(
    ctx: EngineContext,
    sub: Subscription,
    key: str,
    number: int,
    result: ChargeResult,
    sale: Transaction | None,
    step: DunningStep,
    term: UnpaidTerm,
    *,
    actor: str,
) -> bool:
    """Audit the failed attempt ``number`` (once: two runs that both saw it fail count it
    once); whether this call recorded it."""
    with ctx.store.session() as s:
        current = s.get_subscription(sub.id, lock=True)
        if current is None or current.state is not sub.state or current.start != sub.start:
            return False
        if any(
            e.action == RETRY_FAILED and e.detail.get("key") == key
            for e in s.audit_log(subject_id=sub.id)
        ):
            return False
        ctx.audit(
            s,
            action=RETRY_FAILED,
            subject_id=sub.id,
            actor=actor,
            detail={
                "key": key,
                "attempt": number,
                "term_start": term.paid.start.isoformat(),
                "charge": sale.id if sale else None,
                "reason": result.reason,
                "next_attempt_on": step.on.isoformat() if step.on else None,
            },
        )
    return True


def _renew(
    ctx: EngineContext,
    sub: Subscription,
    term: UnpaidTerm,
    sale: Transaction | None,
    result: ChargeResult | None,
    *,
    actor: str,
    attempt: int,
    today: date,
) -> RenewalResult | None:
    """The unpaid term was paid (by ``sale``): ``renewal_paid``, the new term stored."""
    with ctx.store.session() as s:
        current = s.get_subscription(sub.id, lock=True)
        if current is None or current.start != sub.start:
            return None  # another run renewed it meanwhile
        stored = attrs.evolve(
            current,
            start=term.paid.start,
            anchor=term.paid.anchor,
            inventory=term.paid.inventory,
        )
        move = next_state(current.state, StateEvent.RENEWAL_PAID)
        owing = failed_invoices(s, current)  # past due on an invoice too: it stays past due
        if move.allowed and not owing:
            stored = attrs.evolve(stored, state=move.state)
        s.put_subscription(stored)
        receipts.record_receipt(
            ctx,
            s,
            sale,
            on=today,
            kind=InvoiceLineKind.SUBSCRIPTION if term.trial else InvoiceLineKind.RENEWAL,
            actor=actor,
        )
        ctx.audit(
            s,
            action="subscription.renewed",
            subject_id=sub.id,
            actor=actor,
            detail={
                "start": term.paid.start.isoformat(),
                "attempt": attempt,
                "charge": sale.id if sale else None,
                "from": current.state.value,
                "unpaid_invoices": [i.id for i in owing],
            },
        )
    ctx.emit(SubscriptionRenewed(at=ctx.now(), subscription=stored, charge=sale))
    paid = f"{sale.amount}" if sale is not None else "nothing to charge"
    which = _which(attempt)
    again = "active again" if stored.state is SubscriptionState.ACTIVE else "renewed"
    still = (
        f" It stays past due: invoice{'' if len(owing) == 1 else 's'} "
        f"{', '.join(i.number or i.id for i in owing)} still unpaid."
        if owing
        else ""
    )
    return RenewalResult(
        subscription_id=sub.id,
        renewed=True,
        charge=result,
        attempt=attempt,
        term_start=stored.start,
        term_end=stored.term_end,
        explanation=f"Subscription {sub.id} is {again}: {which} of {_what(sub, term)} "
        f"was paid ({paid}); its term runs {stored.start.isoformat()} to "
        f"{stored.term_end.isoformat()}.{still}",
    )


def _cancel(
    ctx: EngineContext,
    sub: Subscription,
    term: UnpaidTerm,
    what: str,
    why: str,
    failures: int,
    *,
    actor: str,
) -> RenewalResult | None:
    """Cancel ``sub`` for delinquency (``delinquent``), auto-renewal off; None when it moved."""
    text = f"Subscription {sub.id} is cancelled for delinquency: {what} was never paid. {why}"
    with ctx.store.session() as s:
        current = s.get_subscription(sub.id, lock=True)
        if current is None or current.start != sub.start:
            return None
        move = next_state(current.state, StateEvent.DELINQUENT)
        if not move.allowed:
            return None
        stored = attrs.evolve(current, state=move.state, auto_renew=False)
        s.put_subscription(stored)
        ctx.audit(
            s,
            action=CANCELLED,
            subject_id=sub.id,
            actor=actor,
            detail={"key": term.base, "due_on": term.due_on.isoformat(), "explanation": text},
        )
    ctx.emit(
        SubscriptionCancelledForDelinquency(at=ctx.now(), subscription=stored, explanation=text)
    )
    return RenewalResult(
        subscription_id=sub.id,
        renewed=False,
        reason="delinquent",
        outcome=RenewalOutcome.CANCELLED,
        attempt=failures,
        explanation=text,
    )
