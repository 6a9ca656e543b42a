"""A clock that moves only when told to, for engines, sandboxes and stores under test or in demos.

clock = ManualClock(datetime(2026, 11, 21, 12, tzinfo=UTC))
engine = BillingEngine(store="memory://", clock=clock)
clock.advance(days=1)
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

__all__ = ["ManualClock"]


class ManualClock:
    """A clock that only moves when told to: ``clock()`` -> the current aware datetime."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
        if self.now.tzinfo is None:
            raise ValueError("the clock must start at an aware datetime")

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta | None = None, **kwargs: float) -> datetime:
        self.now = self.now + (delta if delta is not None else timedelta(**kwargs))
        return self.now

    def set(self, moment: datetime) -> None:
        if moment.tzinfo is None:
            raise ValueError("the clock needs an aware datetime")
        self.now = moment
