"""Closing a metered period through the engine: once it has ended, and once per period.

``close_metered_period`` aggregates the stored usage of ``[start, end)`` with the pure
``metering.close_period`` and adds its lines to the next invoice. The period must have ended by
the engine's clock; a period of one subscription and metric is closed once, kept as a
``MeteredClose`` record under the store's unique key ``(subscription, metric, start, end)``,
inserted in the same store transaction as the lines (see docs/metering.md, section 7).
"""

from __future__ import annotations

from datetime import datetime

import attrs

from ..errors import ConflictError, InvalidValueError
from ..model import InvoiceLine
from ..plugins.records import MeteredClose
from ..rules import metering
from ..serialization import structure, unstructure
from .context import EngineContext
from .results import CloseResult
from .subscriptions import _customer, _subscription

__all__ = ["close_metered_period"]


def close_metered_period(
    ctx: EngineContext,
    subscription_id: str,
    *,
    price: metering.MeteredPrice,
    start: datetime,
    end: datetime,
    metric: str | None,
    key: str,
    actor: str,
) -> CloseResult:
    """Aggregate the stored usage of ``[start, end)``, clamp, price: lines for the next invoice.

    The period must have ended by the engine's clock (bad input naming ``end`` otherwise, so the
    idempotency key stays free for the real close). A period of one subscription and metric is
    closed once: the store keeps a record under a unique key, and a second close, whatever its
    key or price, answers the first close's result with ``already_closed=True``.
    """
    now = ctx.now()
    if end > now:
        raise InvalidValueError(
            f"has not come yet: the engine's clock says {now.isoformat()}; a metered period is "
            "closed once it has ended (later usage would never be billed)",
            field="end",
            value=end,
        )
    with ctx.store.session() as s:
        sub = _subscription(s, subscription_id)
        customer = _customer(s, sub.customer_id)
        earlier = s.get_metered_close(subscription_id=sub.id, metric=metric, start=start, end=end)
        if earlier is not None:
            return _already_closed(earlier)
        events = s.usage_events(subscription_id=sub.id, start=start, end=end, metric=metric)
        # streamed straight from the store: memory does not grow with the number of events
        closed = metering.close_period(
            events,
            price=price,
            start=start,
            end=end,
            subscription_id=sub.id,
            timezone=customer.timezone,
        )
    lines: tuple[InvoiceLine, ...] = closed.lines
    result = CloseResult(subscription_id=sub.id, lines=lines, explanation=closed.explanation)
    record = MeteredClose(
        subscription_id=sub.id,
        metric=metric,
        start=start,
        end=end,
        closed_at=now,
        idempotency_key=key,
        result=unstructure(result),
    )
    try:
        with ctx.store.session() as s:
            s.insert_metered_close(record)  # another close won the race: all of this rolls back
            s.add_invoice_lines(sub.id, lines)
            ctx.audit(
                s,
                action="usage.closed",
                subject_id=sub.id,
                actor=actor,
                detail={
                    "start": start.isoformat(),
                    "end": end.isoformat(),
                    "metric": metric,
                    "amount": str(closed.amount),
                    "idempotency_key": key,
                },
            )
    except ConflictError:
        with ctx.store.session() as s:
            earlier = s.get_metered_close(
                subscription_id=sub.id, metric=metric, start=start, end=end
            )
        if earlier is None:  # a conflict of another kind (a serialization failure): retry
            raise
        return _already_closed(earlier)
    return result


def _already_closed(earlier: MeteredClose) -> CloseResult:
    """The first close's result, marked as a repeat: nothing more was billed."""
    first = structure(dict(earlier.result), CloseResult)
    what = f"{earlier.metric} usage" if earlier.metric else "Usage"
    return attrs.evolve(
        first,
        already_closed=True,
        explanation=f"{what} of {earlier.start.isoformat()} to {earlier.end.isoformat()} was "
        f"already closed at {earlier.closed_at.isoformat()} (idempotency key "
        f"{earlier.idempotency_key!r}); nothing more was billed. {first.explanation}",
    )
