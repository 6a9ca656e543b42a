"""A subscription's states and the events that move it, as data (issue 14, seed 003).

``TRANSITIONS[(state, event)]`` is the state the event leads to; a pair not in the table is not
allowed (``next_state`` answers a denial naming both). The states: ``pending`` (ordered, not
activated), ``trialing``, ``active``, ``past_due`` (a renewal went unpaid: the subscription keeps
its old term, nothing is renewed for free), ``suspended``, ``cancelled`` and ``expired``
(both final).

* ``activate``: pending -> active; ``start_trial``: pending -> trialing; ``trial_paid``:
  trialing -> active (the first charge went through);
* ``renewal_paid``: active -> active (a new term), past_due -> active (the money came);
* ``renewal_unpaid``: active -> past_due, trialing -> past_due (the charge was declined, blocked
  or had no usable instrument);
* ``abandon``: pending -> cancelled (not activated by ``abandon_on``);
* ``delinquent``: past_due -> cancelled (unpaid at ``cancel_on``);
* ``suspend`` / ``reenable``: active <-> suspended; ``cancel``: any live state -> cancelled;
  ``expire``: active -> expired (a term ends without auto-renewal).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

import attrs

from ..decisions import Decision, Reason
from ..model import SubscriptionState

__all__ = ["TRANSITIONS", "StateEvent", "StateReason", "Transition", "next_state"]

_S = SubscriptionState


class StateEvent(enum.StrEnum):
    ACTIVATE = "activate"
    START_TRIAL = "start_trial"
    TRIAL_PAID = "trial_paid"
    RENEWAL_PAID = "renewal_paid"
    RENEWAL_UNPAID = "renewal_unpaid"
    ABANDON = "abandon"
    DELINQUENT = "delinquent"
    SUSPEND = "suspend"
    REENABLE = "reenable"
    CANCEL = "cancel"
    EXPIRE = "expire"


_E = StateEvent

TRANSITIONS: Final[Mapping[tuple[SubscriptionState, StateEvent], SubscriptionState]] = (
    MappingProxyType(
        {
            (_S.PENDING, _E.ACTIVATE): _S.ACTIVE,
            (_S.PENDING, _E.START_TRIAL): _S.TRIALING,
            (_S.PENDING, _E.ABANDON): _S.CANCELLED,
            (_S.PENDING, _E.CANCEL): _S.CANCELLED,
            (_S.TRIALING, _E.TRIAL_PAID): _S.ACTIVE,
            (_S.TRIALING, _E.RENEWAL_UNPAID): _S.PAST_DUE,
            (_S.TRIALING, _E.CANCEL): _S.CANCELLED,
            (_S.ACTIVE, _E.RENEWAL_PAID): _S.ACTIVE,
            (_S.ACTIVE, _E.RENEWAL_UNPAID): _S.PAST_DUE,
            (_S.ACTIVE, _E.SUSPEND): _S.SUSPENDED,
            (_S.ACTIVE, _E.CANCEL): _S.CANCELLED,
            (_S.ACTIVE, _E.EXPIRE): _S.EXPIRED,
            (_S.PAST_DUE, _E.RENEWAL_PAID): _S.ACTIVE,
            (_S.PAST_DUE, _E.DELINQUENT): _S.CANCELLED,
            (_S.PAST_DUE, _E.CANCEL): _S.CANCELLED,
            (_S.SUSPENDED, _E.REENABLE): _S.ACTIVE,
            (_S.SUSPENDED, _E.CANCEL): _S.CANCELLED,
        }
    )
)
"""(state, event) -> the next state; every pair not listed is refused."""


class StateReason(Reason):
    TRANSITION_NOT_ALLOWED = "transition_not_allowed"


@attrs.frozen(kw_only=True)
class Transition(Decision):
    """``state`` after ``event``, or a denial (``state`` stays the one given)."""

    reason: StateReason | None = None
    state: SubscriptionState


def next_state(state: SubscriptionState, event: StateEvent) -> Transition:
    """Where ``event`` takes a subscription in ``state``; a denial when the table has no cell."""
    state, event = SubscriptionState(state), StateEvent(event)
    after = TRANSITIONS.get((state, event))
    if after is None:
        allowed = sorted(e.value for (s, e) in TRANSITIONS if s is state)
        return Transition(
            allowed=False,
            reason=StateReason.TRANSITION_NOT_ALLOWED,
            state=state,
            explanation=f"{_article(state.value)} {state.value.replace('_', ' ')} subscription "
            f"cannot {event.value.replace('_', ' ')}; "
            f"allowed: {', '.join(allowed) or 'nothing (it is final)'}.",
        )
    return Transition(
        allowed=True,
        state=after,
        explanation=f"{event.value.replace('_', ' ').capitalize()}: {state.value} -> "
        f"{after.value}.",
    )


def _article(word: str) -> str:
    return "An" if word[:1] in "aeiou" else "A"
