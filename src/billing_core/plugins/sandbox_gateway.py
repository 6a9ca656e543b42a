"""The sandbox payment gateway: a gateway that behaves like a real one, in memory, with faults.

``SandboxGateway`` keeps its own ledger, as a payment processor does, and follows the rules real
processors follow, so the engine meets in tests what it will meet in production:

* **Idempotency.** Calls are keyed by their idempotency key. A call whose key already succeeded
  returns the stored outcome again, verbatim, and moves no money. The same key with other
  parameters (operation, transaction id, amount, parent) is declined with
  ``DECLINE_IDEMPOTENCY_MISMATCH``. A declined call stores nothing: nothing happened, so the same
  key may be tried again (the refund retry queue relies on this).
* **Settlement.** Sales and captures settle ``settle_after`` after they were made, measured on the
  ``clock`` the sandbox is given (the engine's clock, so tests move time). Authorizations never
  settle: they are captured or voided. ``settle(reference)`` settles a charge at once.
* **Void or refund.** A void cancels a whole unsettled charge or releases an authorization; after
  settlement it is declined with ``DECLINE_ALREADY_SETTLED``. A refund needs a settled sale or
  capture and never exceeds what is left of it (``DECLINE_EXCEEDS_REMAINING``); refunds may be
  partial. Payouts need the ``payouts`` capability, which the sandbox has by default.
* **Lookup.** ``lookup(transaction_id, key)`` tells the truth about any call that reached the
  sandbox, including one whose answer was lost to a fault, and ``not_sent`` for one it never got.

**Faults** are scripted per operation, one step per call, in order::

    gateway.script("refund", [Fault.DECLINE, Fault.TIMEOUT_AFTER_SEND, None])

answers the next refund with a decline, performs the one after but answers ``unknown``, and
answers the third normally (``None``). ``Decline(code=..., message=...)`` declines with a given
code. The faults: ``DECLINE`` (nothing happens), ``NOT_SENT`` (the request never left; nothing
recorded), ``TIMEOUT_BEFORE_SEND`` (answers ``unknown``; nothing happened; lookup says
``not_sent``), ``TIMEOUT_AFTER_SEND`` (answers ``unknown``; it did happen; lookup says
``succeeded``), ``DUPLICATE_RESPONSE`` (the request arrives twice; the second delivery is
answered from the stored outcome, money moves once), ``SLOW`` (advances the clock by ``slow``
when it has an ``advance`` method, otherwise sleeps ``slow_sleep`` seconds, then answers) and
``PENDING`` (performed, answered ``pending``; lookup says ``succeeded``). For soak tests,
``fault_rates("refund", {Fault.TIMEOUT_AFTER_SEND: 0.1})`` draws faults at random from a
``random.Random(seed)``; scripted steps come first.

``calls`` counts every call per operation (``gateway.calls["refund"]``, lookups under
``"lookup"``); ``received`` counts the deliveries that reached the sandbox's ledger (not the
``NOT_SENT`` and ``TIMEOUT_BEFORE_SEND`` ones; a ``DUPLICATE_RESPONSE`` counts twice).

The processor's rules live in ``sandbox_ledger`` (``SandboxLedger``); this module puts the
network in front of them: idempotency keys, faults, counting and the lock. Its decline codes,
``ChargeState`` and ``LedgerEntry`` are re-exported here.

One lock guards everything, so many worker threads may share one sandbox. The ledger lives in
the memory of one process: tests that run workers in several processes need a gateway of their
own (or one sandbox per process and assertions per process).
"""

from __future__ import annotations

import enum
import random
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta

import attrs

from ..errors import InvalidValueError
from .protocols import (
    GatewayCapabilities,
    GatewayOperation,
    GatewayOutcome,
    GatewayRequest,
    OutcomeStatus,
)
from .sandbox_ledger import (
    DECLINE_ALREADY_CAPTURED,
    DECLINE_ALREADY_VOIDED,
    DECLINE_CURRENCY,
    DECLINE_EXCEEDS_REMAINING,
    DECLINE_IDEMPOTENCY_MISMATCH,
    DECLINE_INSTRUMENT_EXPIRED,
    DECLINE_INSTRUMENT_INACTIVE,
    DECLINE_INVALID_AMOUNT,
    DECLINE_NO_SUCH_CHARGE,
    DECLINE_NOT_REFUNDABLE,
    DECLINE_NOT_SETTLED,
    DECLINE_SCRIPTED,
    DECLINE_UNSUPPORTED,
    DECLINE_VOID_AMOUNT,
    ChargeState,
    LedgerEntry,
    SandboxLedger,
    declined,
)

__all__ = [
    "DECLINE_ALREADY_CAPTURED",
    "DECLINE_ALREADY_VOIDED",
    "DECLINE_CURRENCY",
    "DECLINE_EXCEEDS_REMAINING",
    "DECLINE_IDEMPOTENCY_MISMATCH",
    "DECLINE_INSTRUMENT_EXPIRED",
    "DECLINE_INSTRUMENT_INACTIVE",
    "DECLINE_INVALID_AMOUNT",
    "DECLINE_NOT_REFUNDABLE",
    "DECLINE_NOT_SETTLED",
    "DECLINE_NO_SUCH_CHARGE",
    "DECLINE_SCRIPTED",
    "DECLINE_UNSUPPORTED",
    "DECLINE_VOID_AMOUNT",
    "ChargeState",
    "Decline",
    "Fault",
    "LedgerEntry",
    "SandboxGateway",
    "Step",
    "parse_rates",
    "parse_step",
]

_MONEY_OPERATIONS = tuple(op.value for op in GatewayOperation)


class Fault(enum.StrEnum):
    """A scripted misbehaviour of one call. See the module docstring for what each one does."""

    DECLINE = "decline"
    NOT_SENT = "not_sent"
    TIMEOUT_BEFORE_SEND = "timeout_before_send"
    TIMEOUT_AFTER_SEND = "timeout_after_send"
    DUPLICATE_RESPONSE = "duplicate_response"
    SLOW = "slow"
    PENDING = "pending"


@attrs.frozen(kw_only=True)
class Decline:
    """A scripted decline with a chosen code and message (``Fault.DECLINE`` uses the defaults)."""

    code: str = DECLINE_SCRIPTED
    message: str = "declined by the sandbox's script"


Step = Fault | Decline | None
"""One scripted step: a fault, a decline with a code, or ``None`` to answer normally."""


@attrs.define
class _Call:
    request: GatewayRequest
    outcome: GatewayOutcome  # the stored answer once done; the last decline before that
    done: bool  # money moved (or the call succeeded): replays return ``outcome``


def _fingerprint(request: GatewayRequest) -> tuple[object, ...]:
    return (
        request.operation,
        request.transaction_id,
        request.amount,
        request.parent_transaction_id,
        request.parent_reference,
        request.instrument.id if request.instrument else None,
    )


def _wall_clock() -> datetime:
    return datetime.now(UTC)


class SandboxGateway:
    """An in-memory payment gateway with settlement, idempotency and scriptable faults.

    ``clock`` returns the current aware datetime (default: the wall clock in UTC); charges settle
    ``settle_after`` after they are made (``None``: only when ``settle()`` is called).
    """

    def __init__(
        self,
        *,
        clock: Callable[[], datetime] | None = None,
        name: str = "sandbox",
        settle_after: timedelta | None = timedelta(days=1),
        capabilities: GatewayCapabilities | None = None,
        seed: int = 0,
        slow: timedelta = timedelta(seconds=30),
        slow_sleep: float = 0.01,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.name = name
        self.slow = slow
        self.slow_sleep = slow_sleep
        self.calls: Counter[str] = Counter()
        self.received: Counter[str] = Counter()
        self._clock = clock or _wall_clock
        self._sleep = sleep
        self._random = random.Random(seed)
        self._lock = threading.RLock()
        self._books = SandboxLedger(
            self._clock,
            name=name,
            capabilities=capabilities or GatewayCapabilities(payouts=True),
            settle_after=settle_after,
        )
        self._calls: dict[str, _Call] = {}
        self._scripts: dict[str, deque[Step]] = {}
        self._rates: dict[str, list[tuple[Fault | Decline, float]]] = {}

    def __repr__(self) -> str:
        return f"<SandboxGateway {self.name!r}: {len(self._books.entries())} movements>"

    @property
    def capabilities(self) -> GatewayCapabilities:
        """What the sandbox does; by default everything, payouts included. Settable."""
        return self._books.capabilities

    @capabilities.setter
    def capabilities(self, value: GatewayCapabilities) -> None:
        with self._lock:
            self._books.capabilities = value

    @property
    def settle_after(self) -> timedelta | None:
        """How long after a sale or capture it settles (None: only on ``settle()``). Settable;
        applies to charges made afterwards."""
        return self._books.settle_after

    @settle_after.setter
    def settle_after(self, value: timedelta | None) -> None:
        with self._lock:
            self._books.settle_after = value

    # -- the PaymentGateway protocol -----------------------------------------------------------
    def authorize(self, request: GatewayRequest) -> GatewayOutcome:
        return self._call(GatewayOperation.AUTHORIZE, request)

    def capture(self, request: GatewayRequest) -> GatewayOutcome:
        return self._call(GatewayOperation.CAPTURE, request)

    def sale(self, request: GatewayRequest) -> GatewayOutcome:
        return self._call(GatewayOperation.SALE, request)

    def void(self, request: GatewayRequest) -> GatewayOutcome:
        return self._call(GatewayOperation.VOID, request)

    def refund(self, request: GatewayRequest) -> GatewayOutcome:
        return self._call(GatewayOperation.REFUND, request)

    def payout(self, request: GatewayRequest) -> GatewayOutcome:
        return self._call(GatewayOperation.PAYOUT, request)

    def lookup(self, transaction_id: str, idempotency_key: str) -> GatewayOutcome:
        """The true outcome of an earlier call; ``not_sent`` for a call the sandbox never got.

        A scripted fault on ``"lookup"`` answers ``unknown`` (the sandbox could not be asked).
        """
        with self._lock:
            self.calls["lookup"] += 1
            step = self._next_step("lookup")
        if step is Fault.SLOW:
            self._be_slow()
        elif step is not None and step is not Fault.DUPLICATE_RESPONSE:
            return GatewayOutcome(
                status=OutcomeStatus.UNKNOWN, message=f"sandbox: lookup failed ({_name(step)})"
            )
        with self._lock:
            self.received["lookup"] += 1
            call = self._calls.get(idempotency_key)
            if call is None or call.request.transaction_id != transaction_id:
                return GatewayOutcome(
                    status=OutcomeStatus.NOT_SENT,
                    message=f"sandbox: no call for transaction {transaction_id!r} with this key",
                )
            outcome = call.outcome
            if not call.done:
                return outcome
            settled = self._books.settled(outcome.reference or "")
            return attrs.evolve(
                outcome,
                status=OutcomeStatus.SUCCEEDED,
                settled=outcome.settled if settled is None else settled,
            )

    # -- faults --------------------------------------------------------------------------------
    def script(self, operation: str, steps: Iterable[Step | str]) -> None:
        """Queue ``steps`` for the next calls of ``operation`` ("refund", "void", ..., "lookup"),
        one step per call, after any steps still queued. A step may be a ``Fault``'s value
        (``"timeout_after_send"``)."""
        operation = _operation(operation)
        with self._lock:
            self._scripts.setdefault(operation, deque()).extend(parse_step(s) for s in steps)

    def scripted(self, operation: str) -> tuple[Step, ...]:
        """The steps still queued for ``operation``."""
        with self._lock:
            return tuple(self._scripts.get(_operation(operation), ()))

    def fault_rates(self, operation: str, rates: Mapping[Fault | Decline, float]) -> None:
        """Draw faults for ``operation`` at random: each call gets a fault with its probability
        (``{Fault.TIMEOUT_AFTER_SEND: 0.1}``), from ``random.Random(seed)``. Replaces earlier
        rates for the operation; an empty mapping turns random faults off."""
        operation = _operation(operation)
        table = parse_rates(rates)
        with self._lock:
            self._rates[operation] = table

    def clear_faults(self) -> None:
        """Forget every scripted step and fault rate."""
        with self._lock:
            self._scripts.clear()
            self._rates.clear()

    # -- the ledger, for tests -----------------------------------------------------------------
    def settle(self, reference: str) -> None:
        """Settle a sale or capture now, whatever ``settle_after`` says."""
        with self._lock:
            self._books.settle(reference)

    def charge(self, reference: str) -> ChargeState:
        """The state of one charge or authorization, by the sandbox's reference."""
        with self._lock:
            return self._books.state(reference)

    def charges(self) -> list[ChargeState]:
        """Every charge and authorization, oldest first."""
        with self._lock:
            return self._books.charges()

    def ledger(self) -> list[LedgerEntry]:
        """Every movement of money the sandbox made (sales, authorizations, captures, voids,
        refunds, payouts), in order. Replays add nothing."""
        with self._lock:
            return self._books.entries()

    # -- internals -----------------------------------------------------------------------------

    def _next_step(self, operation: str) -> Step:
        queue = self._scripts.get(operation)
        if queue:
            return queue.popleft()
        table = self._rates.get(operation)
        if table:
            draw = self._random.random()
            for step, rate in table:
                if draw < rate:
                    return step
                draw -= rate
        return None

    def _be_slow(self) -> None:
        advance = getattr(self._clock, "advance", None)
        if callable(advance):
            with self._lock:
                advance(self.slow)
        else:
            self._sleep(self.slow_sleep)

    def _call(self, operation: GatewayOperation, request: GatewayRequest) -> GatewayOutcome:
        if request.operation is not operation:
            raise InvalidValueError(
                f"must be {operation} for gateway.{operation}()",
                field="request.operation",
                value=request.operation,
            )
        with self._lock:
            self.calls[operation] += 1
            step = self._next_step(operation)
        if step is Fault.SLOW:
            self._be_slow()
            step = None
        if step is Fault.NOT_SENT:
            return GatewayOutcome(
                status=OutcomeStatus.NOT_SENT, message="sandbox: connection refused (scripted)"
            )
        if step is Fault.TIMEOUT_BEFORE_SEND:
            return GatewayOutcome(
                status=OutcomeStatus.UNKNOWN,
                message="sandbox: timed out connecting (scripted); nothing was sent",
            )
        with self._lock:
            self.received[operation] += 1
            if step is Fault.DECLINE or isinstance(step, Decline):
                decline = step if isinstance(step, Decline) else Decline()
                return self._record_decline(
                    request, declined(decline.code, decline.message, request.amount)
                )
            outcome = self._execute(request)
            if step is Fault.DUPLICATE_RESPONSE:
                self.received[operation] += 1
                outcome = self._execute(request)
        if step is Fault.TIMEOUT_AFTER_SEND:
            return GatewayOutcome(
                status=OutcomeStatus.UNKNOWN,
                message="sandbox: timed out waiting for the answer (scripted); it was sent",
            )
        if step is Fault.PENDING and outcome.status is OutcomeStatus.SUCCEEDED:
            return attrs.evolve(outcome, status=OutcomeStatus.PENDING)
        return outcome

    def _record_decline(self, request: GatewayRequest, outcome: GatewayOutcome) -> GatewayOutcome:
        call = self._calls.get(request.idempotency_key)
        if call is None:
            self._calls[request.idempotency_key] = _Call(request, outcome, done=False)
        elif not call.done and _fingerprint(call.request) == _fingerprint(request):
            call.outcome = outcome
        return outcome

    def _execute(self, request: GatewayRequest) -> GatewayOutcome:
        call = self._calls.get(request.idempotency_key)
        if call is not None and _fingerprint(call.request) != _fingerprint(request):
            return declined(
                DECLINE_IDEMPOTENCY_MISMATCH,
                "sandbox: this idempotency key was used with other parameters "
                f"({call.request.operation} of {call.request.amount} for transaction "
                f"{call.request.transaction_id!r})",
                request.amount,
            )
        if call is not None and call.done:
            return call.outcome
        outcome = self._books.perform(request)
        if outcome.status is OutcomeStatus.DECLINED:
            return self._record_decline(request, outcome)
        self._calls[request.idempotency_key] = _Call(request, outcome, done=True)
        return outcome


def _operation(operation: str) -> str:
    if operation != "lookup" and operation not in _MONEY_OPERATIONS:
        raise InvalidValueError(
            f"must be one of {', '.join((*_MONEY_OPERATIONS, 'lookup'))}",
            field="operation",
            value=operation,
        )
    return str(operation)


def parse_rates(rates: Mapping[Fault | Decline, float]) -> list[tuple[Fault | Decline, float]]:
    """A fault-rate table: each fault with a probability in [0, 1], summing to at most 1."""
    table: list[tuple[Fault | Decline, float]] = []
    for fault, rate in rates.items():
        step = parse_step(fault)
        if step is None or not 0 <= rate <= 1:
            raise InvalidValueError(
                "must map a fault to a probability between 0 and 1",
                field=f"rates.{fault}",
                value=rate,
            )
        table.append((step, rate))
    if sum(rate for _, rate in table) > 1:
        raise InvalidValueError("probabilities must sum to at most 1", field="rates")
    return table


def parse_step(step: object) -> Step:
    """A script step from a ``Fault``, its string value, a ``Decline`` or None."""
    if step is None or isinstance(step, Decline):
        return step
    try:
        return Fault(str(step))
    except ValueError:
        raise InvalidValueError(
            "must be a Fault, a Decline or None", field="step", value=step
        ) from None


def _name(step: Step) -> str:
    return step.code if isinstance(step, Decline) else str(step)
