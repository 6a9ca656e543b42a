"""The sandbox gateway's ledger: the payment processor behind ``SandboxGateway``.

It holds the charges (sales, captures), authorizations, refunds, voids and payouts the sandbox
made, and applies the rules a processor applies: a sale or capture settles ``settle_after`` after
it was made, on the given clock; a void needs an unsettled charge (else ``DECLINE_ALREADY_SETTLED``)
and is for its whole amount; a refund needs a settled sale or capture and never exceeds what is
left of it; an authorization is captured once, for at most its amount, and never settles.

It knows nothing of idempotency keys, faults or threads: ``SandboxGateway`` adds those in front
of it and holds its lock while it calls in. References are numbered in order: ``ch_000001``
(a sale or capture), ``au_`` (an authorization), ``re_`` (a refund), ``vo_`` (a void), ``po_``
(a payout).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import attrs

from ..errors import InvalidValueError, NotFoundError
from ..money import Money
from ..timeutil import require_aware
from .protocols import (
    DECLINE_ALREADY_SETTLED,
    GatewayCapabilities,
    GatewayOperation,
    GatewayOutcome,
    GatewayRequest,
    OutcomeStatus,
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
    "ChargeRecord",
    "ChargeState",
    "LedgerEntry",
    "SandboxLedger",
    "declined",
]

DECLINE_SCRIPTED = "sandbox_declined"
DECLINE_NO_SUCH_CHARGE = "no_such_charge"
DECLINE_NOT_SETTLED = "not_settled"
DECLINE_EXCEEDS_REMAINING = "exceeds_remaining"
DECLINE_NOT_REFUNDABLE = "not_refundable"
DECLINE_ALREADY_VOIDED = "already_voided"
DECLINE_ALREADY_CAPTURED = "already_captured"
DECLINE_VOID_AMOUNT = "void_amount_mismatch"
DECLINE_IDEMPOTENCY_MISMATCH = "idempotency_key_reused"
DECLINE_UNSUPPORTED = "unsupported"
DECLINE_CURRENCY = "currency_not_supported"
DECLINE_INVALID_AMOUNT = "invalid_amount"
DECLINE_INSTRUMENT_EXPIRED = "instrument_expired"
DECLINE_INSTRUMENT_INACTIVE = "instrument_inactive"

_PREFIX = {
    GatewayOperation.AUTHORIZE: "au",
    GatewayOperation.CAPTURE: "ch",
    GatewayOperation.SALE: "ch",
    GatewayOperation.VOID: "vo",
    GatewayOperation.REFUND: "re",
    GatewayOperation.PAYOUT: "po",
}


@attrs.frozen(kw_only=True)
class LedgerEntry:
    """One movement of money the sandbox made, in the order it made them."""

    reference: str
    operation: GatewayOperation
    transaction_id: str
    idempotency_key: str
    amount: Money
    at: datetime
    parent_reference: str | None = None
    instrument_id: str | None = None  # the instrument a sale or authorization was charged on


@attrs.frozen(kw_only=True)
class ChargeState:
    """The sandbox's view of one charge (a sale, a capture) or authorization, at ``clock()``."""

    reference: str
    operation: GatewayOperation
    transaction_id: str
    amount: Money
    refunded: Money
    created_at: datetime
    settles_at: datetime | None
    settled: bool
    voided: bool
    captured_by: str | None = None

    @property
    def remaining(self) -> Money:
        """What may still be refunded."""
        return self.amount - self.refunded


@attrs.define
class ChargeRecord:
    """A charge as a processor keeps it (the sandbox in memory, the shared gateway in SQL)."""

    reference: str
    operation: GatewayOperation
    transaction_id: str
    amount: Money
    created_at: datetime
    settles_at: datetime | None
    refunded: Money
    voided: bool = False
    captured_by: str | None = None

    def settled(self, now: datetime) -> bool:
        return self.settles_at is not None and now >= self.settles_at and not self.voided

    def state(self, now: datetime) -> ChargeState:
        """What a test may inspect of the charge at ``now``."""
        return ChargeState(
            reference=self.reference,
            operation=self.operation,
            transaction_id=self.transaction_id,
            amount=self.amount,
            refunded=self.refunded,
            created_at=self.created_at,
            settles_at=self.settles_at,
            settled=self.settled(now),
            voided=self.voided,
            captured_by=self.captured_by,
        )


def declined(code: str, message: str, amount: Money | None = None) -> GatewayOutcome:
    return GatewayOutcome(
        status=OutcomeStatus.DECLINED, decline_code=code, message=message, amount=amount
    )


# -- the processor's rules, shared by every sandbox whatever keeps its books ---------------------
_MOVES_MONEY_FIRST = (GatewayOperation.SALE, GatewayOperation.AUTHORIZE, GatewayOperation.PAYOUT)


def refuse_request(
    request: GatewayRequest,
    capabilities: GatewayCapabilities,
    name: str,
    now: datetime | None = None,
) -> GatewayOutcome | None:
    """The decline for a request no charge could take (currency, amount, capability, an
    instrument that is inactive or expired on ``now``'s UTC date), or None."""
    op = request.operation
    amount = request.amount
    instrument = request.instrument
    if instrument is not None and op in _MOVES_MONEY_FIRST:
        if not instrument.active:
            return declined(
                DECLINE_INSTRUMENT_INACTIVE,
                f"sandbox: instrument {instrument.id} is inactive",
                amount,
            )
        today = (now or datetime.now(UTC)).astimezone(UTC).date()
        if instrument.expires_on is not None and instrument.expires_on < today:
            return declined(
                DECLINE_INSTRUMENT_EXPIRED,
                f"sandbox: instrument {instrument.id} expired on {instrument.expires_on}",
                amount,
            )
    if not capabilities.supports_currency(amount.currency):
        return declined(DECLINE_CURRENCY, f"sandbox: {amount.currency} is not supported", amount)
    if amount.amount <= 0 or not amount.is_rounded:
        return declined(
            DECLINE_INVALID_AMOUNT,
            f"sandbox: {amount} is not a positive amount in whole minor units",
            amount,
        )
    allowed = {
        GatewayOperation.AUTHORIZE: capabilities.authorizations,
        GatewayOperation.CAPTURE: capabilities.authorizations,
        GatewayOperation.SALE: True,
        GatewayOperation.VOID: capabilities.voids,
        GatewayOperation.REFUND: capabilities.refunds,
        GatewayOperation.PAYOUT: capabilities.payouts,
    }[op]
    if not allowed:
        return declined(DECLINE_UNSUPPORTED, f"sandbox {name!r} does not do {op}s", amount)
    return None


def needs_parent(request: GatewayRequest) -> bool:
    """Capture, void and refund act on an earlier charge; the others make a new one."""
    return request.operation not in _MOVES_MONEY_FIRST


def refuse_parent(request: GatewayRequest, parent: ChargeRecord | None) -> GatewayOutcome | None:
    """The decline when the charge acted on is missing or in another currency, or None."""
    amount = request.amount
    if parent is None:
        return declined(
            DECLINE_NO_SUCH_CHARGE,
            f"sandbox: no charge {request.parent_reference or request.parent_transaction_id!r}",
            amount,
        )
    if amount.currency != parent.amount.currency:
        return declined(
            DECLINE_CURRENCY, f"sandbox: the charge is in {parent.amount.currency}", amount
        )
    return None


def refuse_capture(request: GatewayRequest, auth: ChargeRecord) -> GatewayOutcome | None:
    amount = request.amount
    if auth.operation is not GatewayOperation.AUTHORIZE:
        return declined(DECLINE_UNSUPPORTED, "sandbox: only an authorization is captured", amount)
    if auth.voided:
        return declined(DECLINE_ALREADY_VOIDED, "sandbox: the authorization was voided", amount)
    if auth.captured_by is not None:
        return declined(
            DECLINE_ALREADY_CAPTURED, f"sandbox: already captured as {auth.captured_by}", amount
        )
    if amount > auth.amount:
        return declined(
            DECLINE_EXCEEDS_REMAINING,
            f"sandbox: cannot capture {amount} of an authorization for {auth.amount}",
            amount,
        )
    return None


def refuse_void(
    request: GatewayRequest, charge: ChargeRecord, now: datetime
) -> GatewayOutcome | None:
    amount = request.amount
    if charge.voided:
        return declined(DECLINE_ALREADY_VOIDED, "sandbox: already voided", amount)
    if charge.captured_by is not None:
        return declined(
            DECLINE_ALREADY_CAPTURED,
            f"sandbox: the authorization was captured as {charge.captured_by}: void that",
            amount,
        )
    if charge.settled(now):
        return declined(
            DECLINE_ALREADY_SETTLED,
            f"sandbox: {charge.reference} settled at {charge.settles_at}: refund it instead",
            amount,
        )
    if amount != charge.amount:
        return declined(
            DECLINE_VOID_AMOUNT,
            f"sandbox: a void is for the whole {charge.amount}, not {amount}",
            amount,
        )
    return None


def refuse_refund(
    request: GatewayRequest,
    charge: ChargeRecord,
    now: datetime,
    capabilities: GatewayCapabilities,
    name: str,
) -> GatewayOutcome | None:
    amount = request.amount
    if charge.operation is GatewayOperation.AUTHORIZE or charge.voided:
        return declined(
            DECLINE_NOT_REFUNDABLE,
            "sandbox: a voided charge or an authorization cannot be refunded",
            amount,
        )
    if not charge.settled(now):
        return declined(
            DECLINE_NOT_SETTLED,
            f"sandbox: {charge.reference} has not settled yet: void it instead",
            amount,
        )
    remaining = charge.amount - charge.refunded
    if amount > remaining:
        return declined(
            DECLINE_EXCEEDS_REMAINING,
            f"sandbox: cannot refund {amount}: {remaining} is left of {charge.amount}",
            amount,
        )
    if not capabilities.partial_refunds and amount != charge.amount:
        return declined(DECLINE_UNSUPPORTED, f"sandbox {name!r} refunds whole charges only", amount)
    return None


class SandboxLedger:
    """The processor's books. Not thread-safe by itself: ``SandboxGateway`` holds a lock."""

    def __init__(
        self,
        clock: Callable[[], datetime],
        *,
        name: str,
        capabilities: GatewayCapabilities,
        settle_after: timedelta | None,
    ) -> None:
        self.name = name
        self.capabilities = capabilities
        self.settle_after = settle_after
        self._clock = clock
        self._numbers = itertools.count(1)
        self._charges: dict[str, ChargeRecord] = {}
        self._charges_by_transaction: dict[str, str] = {}
        self._entries: list[LedgerEntry] = []

    def perform(self, request: GatewayRequest) -> GatewayOutcome:
        """Do what ``request`` asks, or decline it (then nothing happens)."""
        return self._perform(request)

    def entries(self) -> list[LedgerEntry]:
        return list(self._entries)

    def charges(self) -> list[ChargeState]:
        return [self._state(c) for c in self._charges.values()]

    def state(self, reference: str) -> ChargeState:
        return self._state(self._charge(reference))

    def settled(self, reference: str) -> bool | None:
        """Whether the charge with this reference has settled; None if it is not a charge."""
        charge = self._charges.get(reference)
        return charge.settled(self._now()) if charge is not None else None

    def _now(self) -> datetime:
        return require_aware(self._clock(), "clock()")

    def settle(self, reference: str) -> None:
        """Settle a sale or capture now, whatever ``settle_after`` says."""
        charge = self._charge(reference)
        if charge.operation is GatewayOperation.AUTHORIZE:
            raise InvalidValueError(
                "an authorization never settles: capture it", field="reference", value=reference
            )
        now = self._now()
        if charge.settles_at is None or charge.settles_at > now:
            charge.settles_at = now

    def _charge(self, reference: str) -> ChargeRecord:
        try:
            return self._charges[reference]
        except KeyError:
            raise NotFoundError(
                "no charge with this reference", field="reference", value=reference
            ) from None

    def _state(self, charge: ChargeRecord) -> ChargeState:
        return charge.state(self._now())

    def _perform(self, request: GatewayRequest) -> GatewayOutcome:
        refusal = refuse_request(request, self.capabilities, self.name, self._now())
        if refusal is not None:
            return refusal
        if not needs_parent(request):
            return self._new_charge(request)
        parent = self._parent(request)
        refusal = refuse_parent(request, parent)
        if refusal is not None:
            return refusal
        assert parent is not None
        if request.operation is GatewayOperation.CAPTURE:
            return self._capture(request, parent)
        if request.operation is GatewayOperation.VOID:
            return self._void(request, parent)
        return self._refund(request, parent)

    def _parent(self, request: GatewayRequest) -> ChargeRecord | None:
        reference = request.parent_reference
        if reference is None and request.parent_transaction_id is not None:
            reference = self._charges_by_transaction.get(request.parent_transaction_id)
        return self._charges.get(reference) if reference is not None else None

    def _succeed(
        self, request: GatewayRequest, *, parent: ChargeRecord | None = None, settled: bool = False
    ) -> GatewayOutcome:
        now = self._now()
        reference = f"{_PREFIX[request.operation]}_{next(self._numbers):06d}"
        self._entries.append(
            LedgerEntry(
                reference=reference,
                operation=request.operation,
                transaction_id=request.transaction_id,
                idempotency_key=request.idempotency_key,
                amount=request.amount,
                at=now,
                parent_reference=parent.reference if parent else None,
                instrument_id=request.instrument.id if request.instrument else None,
            )
        )
        return GatewayOutcome(
            status=OutcomeStatus.SUCCEEDED,
            reference=reference,
            amount=request.amount,
            settled=settled,
            message=f"sandbox: {request.operation} of {request.amount} succeeded",
        )

    def _new_charge(
        self, request: GatewayRequest, parent: ChargeRecord | None = None
    ) -> GatewayOutcome:
        outcome = self._succeed(request, parent=parent)
        if request.operation is GatewayOperation.PAYOUT:
            return outcome
        assert outcome.reference is not None
        now = self._now()
        settles = (
            request.operation is not GatewayOperation.AUTHORIZE and self.settle_after is not None
        )
        charge = ChargeRecord(
            reference=outcome.reference,
            operation=request.operation,
            transaction_id=request.transaction_id,
            amount=request.amount,
            created_at=now,
            settles_at=now + self.settle_after
            if settles and self.settle_after is not None
            else None,
            refunded=Money.zero(request.amount.currency),
        )
        self._charges[charge.reference] = charge
        self._charges_by_transaction[charge.transaction_id] = charge.reference
        return attrs.evolve(outcome, settled=charge.settled(now))

    def _capture(self, request: GatewayRequest, auth: ChargeRecord) -> GatewayOutcome:
        refusal = refuse_capture(request, auth)
        if refusal is not None:
            return refusal
        outcome = self._new_charge(request, parent=auth)
        auth.captured_by = outcome.reference
        return outcome

    def _void(self, request: GatewayRequest, charge: ChargeRecord) -> GatewayOutcome:
        refusal = refuse_void(request, charge, self._now())
        if refusal is not None:
            return refusal
        charge.voided = True
        return self._succeed(request, parent=charge)

    def _refund(self, request: GatewayRequest, charge: ChargeRecord) -> GatewayOutcome:
        refusal = refuse_refund(request, charge, self._now(), self.capabilities, self.name)
        if refusal is not None:
            return refusal
        charge.refunded = charge.refunded + request.amount
        return self._succeed(request, parent=charge)
