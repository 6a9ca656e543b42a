"""Decisions: how a rule says yes or no.

A business "no" is not an exception: a refund outside the window, a backdate too far, a support
agent asking to blocklist are ordinary answers a host shows to a person. Every rule answers with
a ``Decision``:

* ``allowed``: yes or no;
* ``reason``: a stable, machine-readable code (a ``str``-valued enum such as
  ``RefundReason.WINDOW_EXPIRED == "window_expired"``) when the answer is no, else ``None``;
* ``explanation``: one or two sentences with the figures (dates, amounts, days) that a support
  agent can read out to a customer;

plus the typed payload of each rule (the charge, the earliest allowed date, ...), added by the
rule's own subclass. Decisions are frozen attrs classes and serialise to JSON with
``billing_core.serialization``.
"""

from __future__ import annotations

import enum

import attrs

__all__ = ["Decision", "Reason"]


class Reason(enum.StrEnum):
    """Base class of every rule's reason codes; values are stable lowercase strings."""


@attrs.frozen(kw_only=True)
class Decision:
    """The common shape of a rule's answer. Rules subclass it to add their payload."""

    allowed: bool
    reason: Reason | None = None
    explanation: str = ""

    def __attrs_post_init__(self) -> None:
        if self.allowed and self.reason is not None:
            raise ValueError("an allowed decision carries no denial reason")
        if not self.allowed and self.reason is None:
            raise ValueError("a denial must carry a reason code")

    @property
    def denied(self) -> bool:
        """True when the answer is no."""
        return not self.allowed
