"""billing_core's pytest plugin, registered through the ``pytest11`` entry point.

Installing billing_core makes these fixtures available to any test suite:

* ``billing_clock``: a controllable clock (``clock()`` returns an aware UTC datetime;
  ``clock.advance(days=1)`` moves it), for engines, sandboxes and stores under test.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

__all__ = ["ManualClock", "billing_clock"]


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


@pytest.fixture
def billing_clock() -> ManualClock:
    """A ``ManualClock`` at 2026-11-21 12:00 UTC."""
    return ManualClock()
