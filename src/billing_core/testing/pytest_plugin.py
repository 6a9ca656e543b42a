"""billing_core's pytest plugin, registered through the ``pytest11`` entry point.

Installing billing_core makes these fixtures available to any test suite:

* ``billing_clock``: a controllable clock (``clock()`` returns an aware UTC datetime;
  ``clock.advance(days=1)`` moves it), for engines, sandboxes and stores under test.
"""

from __future__ import annotations

import pytest

from .clock import ManualClock

__all__ = ["ManualClock", "billing_clock"]


@pytest.fixture
def billing_clock() -> ManualClock:
    """A ``ManualClock`` at 2026-11-21 12:00 UTC."""
    return ManualClock()
