"""``HookedGateway``: a payment gateway that runs a test's hook around one call of another.

Reliability tests need things to happen *during* a gateway call: the clock moves past a lease
and another worker takes over, or the process dies before or after the request leaves::

    hooked = HookedGateway(SandboxGateway(clock=clock))
    hooked.before["refund"] = lambda: clock.advance(seconds=301)
    hooked.after["sale"] = crash          # def crash(outcome): raise Crash: the answer is lost

Each hook runs once (it is removed before it runs). ``before`` hooks run before the wrapped
gateway is called (``"lookup"`` included), ``after`` hooks once it has answered (with its
outcome). Everything else is
the wrapped gateway's: name, capabilities, ledger. ``Crash`` is a ``BaseException`` a hook may
raise to stop the engine call the way a killed process would: no handler of the engine catches
it, so nothing after that point is written.

``DelegatingGateway`` is the base of such wrappers (this one, and the mixed harness's
``LatentGateway``): every operation goes to ``inner`` through ``_call``, ``lookup`` through
``_lookup``; a wrapper overrides those two.
"""

from __future__ import annotations

from collections.abc import Callable

from ..plugins.protocols import (
    GatewayCapabilities,
    GatewayOutcome,
    GatewayRequest,
    PaymentGateway,
)

__all__ = ["Crash", "DelegatingGateway", "HookedGateway"]


class Crash(BaseException):
    """The process died here (raised by a hook; nothing in the engine catches it)."""


class DelegatingGateway:
    """``inner``'s name, capabilities and operations; each operation runs through ``_call``
    and ``lookup`` through ``_lookup``, which a wrapper overrides (here: plain delegation)."""

    def __init__(self, inner: PaymentGateway) -> None:
        self.inner = inner
        self.name = inner.name
        self.capabilities: GatewayCapabilities = inner.capabilities

    def _call(
        self, request: GatewayRequest, method: Callable[[GatewayRequest], GatewayOutcome]
    ) -> GatewayOutcome:
        return method(request)

    def _lookup(self, transaction_id: str, idempotency_key: str) -> GatewayOutcome:
        return self.inner.lookup(transaction_id, idempotency_key)

    def authorize(self, request: GatewayRequest) -> GatewayOutcome:
        return self._call(request, self.inner.authorize)

    def capture(self, request: GatewayRequest) -> GatewayOutcome:
        return self._call(request, self.inner.capture)

    def sale(self, request: GatewayRequest) -> GatewayOutcome:
        return self._call(request, self.inner.sale)

    def void(self, request: GatewayRequest) -> GatewayOutcome:
        return self._call(request, self.inner.void)

    def refund(self, request: GatewayRequest) -> GatewayOutcome:
        return self._call(request, self.inner.refund)

    def payout(self, request: GatewayRequest) -> GatewayOutcome:
        return self._call(request, self.inner.payout)

    def lookup(self, transaction_id: str, idempotency_key: str) -> GatewayOutcome:
        return self._lookup(transaction_id, idempotency_key)


class HookedGateway(DelegatingGateway):
    """``inner`` with one-shot hooks around its calls (see the module docstring)."""

    def __init__(self, inner: PaymentGateway) -> None:
        super().__init__(inner)
        self.before: dict[str, Callable[[], object]] = {}
        self.after: dict[str, Callable[[GatewayOutcome], object]] = {}

    def _call(
        self, request: GatewayRequest, method: Callable[[GatewayRequest], GatewayOutcome]
    ) -> GatewayOutcome:
        operation = request.operation.value
        self._before(operation)
        outcome = method(request)
        after = self.after.pop(operation, None)
        if after is not None:
            after(outcome)
        return outcome

    def _before(self, operation: str) -> None:
        before = self.before.pop(operation, None)
        if before is not None:
            before()

    def _lookup(self, transaction_id: str, idempotency_key: str) -> GatewayOutcome:
        self._before("lookup")
        return self.inner.lookup(transaction_id, idempotency_key)
