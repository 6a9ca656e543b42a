"""``EventRecorder``: a plugin that keeps every event the engine emits, in order.

Register it like any plugin (``Plugins(..., plugins=[recorder])``) and read ``recorder.events``
or ``recorder.of(SubscriptionPastDue)``. It implements every event hook of
``billing_core.plugins.hookspecs`` (one per class in ``billing_core.plugins.events``), so a new
event is recorded without changing it.
"""

from __future__ import annotations

from typing import TypeVar

from ..plugins import events as _events
from ..plugins.events import Event
from ..plugins.hookspecs import hookimpl

__all__ = ["EventRecorder"]

E = TypeVar("E", bound=Event)


class EventRecorder:
    """Every event it was given, in the order the engine delivered them."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def of(self, kind: type[E]) -> list[E]:
        """The recorded events of one class."""
        return [e for e in self.events if isinstance(e, kind)]

    def hooks(self) -> list[str]:
        """The hooks it implements (every event hook)."""
        return sorted(_HOOKS)


@hookimpl
def _record(self: EventRecorder, event: Event) -> None:
    self.events.append(event)


_HOOKS = frozenset(
    cls.hook
    for name in _events.__all__
    if isinstance(cls := getattr(_events, name), type) and issubclass(cls, Event) and cls.hook
)
for _hook in _HOOKS:
    setattr(EventRecorder, _hook, _record)
