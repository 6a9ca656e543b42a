"""Suspending, re-enabling and cancelling a subscription: a suspension is a pause.

The state changes a subscription allows:

* ``suspend``: an active subscription becomes ``suspended``; the day is kept (``suspended_on``).
* ``reenable``: a suspended subscription becomes ``active`` again and **resumes its current term
  where it stopped**: the term end moves by the days it was suspended, so the days the customer
  had paid for and not yet used are still theirs, and no suspended day is ever billed. Nothing is
  charged on re-enabling; the (moved) term end renews at the full price as usual.
* ``cancel``: an active, suspended or trialing subscription becomes ``cancelled``, for good (a
  trial cancelled before its end is never charged).

Asking for the state a subscription is already in changes nothing (an answer, not an error).
Anything else (re-enabling a cancelled or expired subscription, suspending a cancelled one) is a
denial, ``state_change_not_allowed``, with the way forward in the explanation.

The days suspended are counted on the customer's local dates, from the later of the suspension
day and the term start (a term that had not begun yet loses nothing before it begins) to the
re-enable day. A monthly term Jan 1 to Feb 1 suspended on Jan 20 (12 days left) and re-enabled
95 days later, on Apr 25, now ends on May 7 (Feb 1 + 95 days): 12 days from Apr 25.

The subscription keeps one anchored recurrence (``Subscription.anchor``, see ``rules.renewal``):
re-enabling moves the anchor so that the new term end is one of its boundaries, and ``start``
to the boundary one term before it. The new anchor keeps the new end's day of month, so later
terms end on that day (clamped to short months, never drifting). Pure: the caller passes
``today``.
"""

from __future__ import annotations

from datetime import date, timedelta

import attrs

from ..decisions import Decision, Reason
from ..errors import require_type
from ..model import Subscription, SubscriptionState
from ..periods import Period, PeriodUnit
from ..timeutil import require_date

__all__ = ["StateChange", "StateReason", "change_state", "resume", "term_ending_on"]

_S = SubscriptionState
_ALLOWED_FROM = {
    _S.SUSPENDED: (_S.ACTIVE,),
    _S.ACTIVE: (_S.SUSPENDED,),
    _S.CANCELLED: (_S.ACTIVE, _S.SUSPENDED, _S.TRIALING, _S.PAST_DUE, _S.PENDING),
}
_VERB = {_S.SUSPENDED: "suspended", _S.ACTIVE: "re-enabled", _S.CANCELLED: "cancelled"}
_NEXT_STEP = {
    _S.CANCELLED: "a cancelled subscription stays cancelled: add a new subscription instead",
    _S.EXPIRED: "an expired subscription has ended: add a new subscription instead",
    _S.ACTIVE: "re-enable it only once it is suspended",
    _S.SUSPENDED: "re-enable it first",
    _S.TRIALING: "a trial can only be cancelled; it becomes active when its first term is paid",
    _S.PAST_DUE: "it becomes active again when its unpaid renewal is paid",
    _S.PENDING: "activate it first",
}


class StateReason(Reason):
    STATE_CHANGE_NOT_ALLOWED = "state_change_not_allowed"


@attrs.frozen(kw_only=True)
class StateChange(Decision):
    """The answer of :func:`change_state`: the subscription after the change (the same one when
    nothing changed or the change was denied), whether it ``changed``, and the ``paused_days``
    a re-enable moved the term end by."""

    reason: StateReason | None = None
    subscription: Subscription
    changed: bool = False
    paused_days: int = 0


def change_state(
    subscription: Subscription, state: SubscriptionState, *, today: date
) -> StateChange:
    """``subscription`` moved to ``state`` on the customer's local date ``today``."""
    sub = require_type(subscription, Subscription, "subscription")
    require_type(state, SubscriptionState, "state")
    require_date(today, "today")
    if sub.state is state:
        return StateChange(
            allowed=True,
            subscription=sub,
            explanation=f"Subscription {sub.id} is already {state.value}: nothing changed.",
        )
    if sub.state not in _ALLOWED_FROM.get(state, ()):
        return StateChange(
            allowed=False,
            reason=StateReason.STATE_CHANGE_NOT_ALLOWED,
            subscription=sub,
            explanation=(
                f"Subscription {sub.id} is {sub.state.value} and cannot be "
                f"{_VERB.get(state, state.value)}: {_NEXT_STEP[sub.state]}."
            ),
        )
    if state is _S.ACTIVE:
        return resume(sub, today=today)
    if state is _S.SUSPENDED:
        return StateChange(
            allowed=True,
            changed=True,
            subscription=attrs.evolve(sub, state=state, suspended_on=today),
            explanation=(
                f"Subscription {sub.id} is suspended from {today.isoformat()}: nothing renews or "
                f"is billed while it is; re-enabling moves its term end "
                f"{sub.term_end.isoformat()} by the days it stays suspended."
            ),
        )
    return StateChange(
        allowed=True,
        changed=True,
        subscription=attrs.evolve(sub, state=state),
        explanation=f"Subscription {sub.id} is cancelled from {today.isoformat()}: it never renews.",
    )


def resume(subscription: Subscription, *, today: date) -> StateChange:
    """A suspended ``subscription`` re-enabled on ``today``: its term end moved by the days
    suspended (see the module docstring); ``suspended_on`` cleared."""
    sub = require_type(subscription, Subscription, "subscription")
    require_date(today, "today")
    old_end = sub.term_end
    since = sub.suspended_on or today  # a row suspended before ``suspended_on`` existed: no pause
    paused_from = max(since, sub.start)
    paused = max(0, (today - paused_from).days)
    active = attrs.evolve(sub, state=_S.ACTIVE, suspended_on=None)
    if paused == 0:
        after = active
        text = f"no day of its term was suspended, so it still ends {old_end.isoformat()}."
    else:
        new_end = old_end + timedelta(days=paused)
        anchor, start = term_ending_on(sub.term, new_end)
        after = attrs.evolve(active, anchor=anchor, start=start)
        left = max(0, (old_end - paused_from).days)
        text = (
            f"after {_days(paused)} suspended (from {paused_from.isoformat()}): the suspended "
            f"days are not billed. The term resumes with the {_days(left)} it had left and now "
            f"ends {new_end.isoformat()} instead of {old_end.isoformat()}; it renews then."
        )
    return StateChange(
        allowed=True,
        changed=True,
        paused_days=paused,
        subscription=after,
        explanation=f"Subscription {sub.id} is re-enabled on {today.isoformat()} {text}",
    )


def _days(n: int) -> str:
    return f"{n} day{'' if n == 1 else 's'}"


def term_ending_on(term: Period, end: date) -> tuple[date, date]:
    """``(anchor, start)`` of a recurrence of ``term`` that has ``end`` as a boundary and keeps
    ``end``'s day of month: ``start`` is the boundary one term before ``end``.

    ``term.before(end)`` alone is not enough when it clamps (one month before Mar 31 is Feb 28,
    whose next boundary is Mar 28), so the anchor is taken whole terms further back until the
    round trip lands on ``end`` with the same day of month (at most a few years back).
    """
    require_date(end, "end")
    exact = term.unit in (PeriodUnit.DAY, PeriodUnit.WEEK)
    for times in range(1, 4801):  # 400 years of months: every calendar repeats within it
        anchor = term.before(end, times=times)
        if term.after(anchor, times=times) == end and (exact or anchor.day == end.day):
            return anchor, term.after(anchor, times=times - 1)
    raise AssertionError(f"no anchored recurrence of {term} ends on {end}")  # pragma: no cover
