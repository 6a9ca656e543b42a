"""``SharedGateway``: a sandbox payment gateway whose ledger lives in a SQL database, so worker
*processes* can share it.

``SandboxGateway`` keeps its books in one process's memory: a refund asked in process B of a
charge made in process A would be declined there. ``SharedGateway`` keeps the same books in
tables of a SQLite file or a PostgreSQL database (SQLAlchemy Core), so every process that opens
it with the same URL sees one processor::

    gateway = SharedGateway("sqlite:////tmp/gateway.sqlite3", clock=clock)   # in every process
    engine = BillingEngine(store=store_url, gateway=gateway, clock=clock,
                           plugins=Plugins(clock=clock, entry_points=False))
    ...
    assert gateway.calls["refund"] == 14          # counted across all processes

It follows ``SandboxGateway``'s rules (see ``billing_core.plugins.sandbox_gateway``):

* **Idempotency per key.** A key that succeeded answers its stored outcome again and moves no
  money; the same key with other parameters is declined with ``DECLINE_IDEMPOTENCY_MISMATCH``; a
  declined call stores nothing that blocks a retry with the same key.
* **Settlement** ``settle_after`` after a sale or capture, on this instance's ``clock``;
  ``settle(reference)`` settles at once. Voids need an unsettled charge (else
  ``DECLINE_ALREADY_SETTLED``) and are whole; refunds need a settled charge and never exceed
  what is left (``DECLINE_EXCEEDS_REMAINING``).
* **Lookup** tells the truth about every call that reached it, ``not_sent`` for one it never got.
* **Faults**: ``script(operation, steps)`` stores the steps *in the database*, so a test process
  can script faults that worker processes then meet, one step per call, whoever makes it.
  ``fault_rates`` draws faults at random, per instance (each process its own ``seed``).
  One difference from ``SandboxGateway``: a scripted or random ``DECLINE`` of a key that already
  succeeded answers the stored success (a processor never declines the replay of a call it
  carried out; the in-memory sandbox declines it, which a retry queue could misread as "nothing
  happened").
* **Counts** are rows, so the parent process can assert what all workers did:
  ``calls[op]`` (every call, lookups under ``"lookup"``) and ``received[op]`` (deliveries that
  reached the ledger).

**Concurrency.** Each call is one database transaction (two when a fault step is drawn first).
On SQLite the store's engine settings apply (``BEGIN IMMEDIATE``: calls serialize); on PostgreSQL
a call takes a transaction-scoped advisory lock on its idempotency key, and a refund, void or
capture locks its charge row (``SELECT ... FOR UPDATE``), so two refunds of one charge never both
see the same remaining amount. ``SharedGateway(url)`` creates its tables (``create=False``
leaves them alone); it also accepts a SQLAlchemy ``Engine`` (e.g. ``store.engine``) to share a
connection pool.
"""

from __future__ import annotations

import json
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from ..errors import InvalidValueError, NotFoundError
from ..money import Money
from ..plugins.protocols import (
    GatewayCapabilities,
    GatewayOperation,
    GatewayOutcome,
    GatewayRequest,
    OutcomeStatus,
)
from ..plugins.sandbox_gateway import Decline, Fault, Step, parse_rates, parse_step
from ..plugins.sandbox_ledger import (
    DECLINE_IDEMPOTENCY_MISMATCH,
    ChargeRecord,
    ChargeState,
    LedgerEntry,
    declined,
    needs_parent,
    refuse_capture,
    refuse_parent,
    refuse_refund,
    refuse_request,
    refuse_void,
)
from ..plugins.sql_schema import UtcDateTime, is_memory_sqlite, make_engine
from ..serialization import structure, unstructure
from ..timeutil import require_aware

__all__ = ["SharedGateway", "gateway_metadata"]

gateway_metadata = sa.MetaData()

_calls = sa.Table(
    "sandbox_gateway_calls",
    gateway_metadata,
    sa.Column("key", sa.String, primary_key=True),
    sa.Column("transaction_id", sa.String, nullable=False),
    sa.Column("fingerprint", sa.Text, nullable=False),
    sa.Column("outcome", sa.Text, nullable=False),
    sa.Column("done", sa.Boolean, nullable=False),
)
_charges = sa.Table(
    "sandbox_gateway_charges",
    gateway_metadata,
    sa.Column("reference", sa.String, primary_key=True),
    sa.Column("operation", sa.String, nullable=False),
    sa.Column("transaction_id", sa.String, nullable=False, index=True),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("amount", sa.String, nullable=False),
    sa.Column("refunded", sa.String, nullable=False),
    sa.Column("created_utc", UtcDateTime, nullable=False),
    sa.Column("settles_utc", UtcDateTime, nullable=True),
    sa.Column("voided", sa.Boolean, nullable=False),
    sa.Column("captured_by", sa.String, nullable=True),
)
_ledger = sa.Table(
    "sandbox_gateway_ledger",
    gateway_metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("reference", sa.String, nullable=False),
    sa.Column("operation", sa.String, nullable=False),
    sa.Column("transaction_id", sa.String, nullable=False),
    sa.Column("idempotency_key", sa.String, nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("amount", sa.String, nullable=False),
    sa.Column("at_utc", UtcDateTime, nullable=False),
    sa.Column("parent_reference", sa.String, nullable=True),
    sa.Column("instrument_id", sa.String, nullable=True),
)
_counts = sa.Table(
    "sandbox_gateway_counts",
    gateway_metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("operation", sa.String, nullable=False),
    sa.Column("kind", sa.String, nullable=False),  # "call" or "received"
)
_script = sa.Table(
    "sandbox_gateway_script",
    gateway_metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("operation", sa.String, nullable=False, index=True),
    sa.Column("step", sa.String, nullable=True),  # a Fault value, "decline:<code>:<msg>", NULL
)

_PREFIX = {
    GatewayOperation.AUTHORIZE: "au",
    GatewayOperation.CAPTURE: "ch",
    GatewayOperation.SALE: "ch",
    GatewayOperation.VOID: "vo",
    GatewayOperation.REFUND: "re",
    GatewayOperation.PAYOUT: "po",
}
_OPERATIONS = (*(op.value for op in GatewayOperation), "lookup")
_CREATE_LOCK = 0x73686172656467  # pg_advisory_xact_lock key while creating the tables


def _wall_clock() -> datetime:
    return datetime.now(UTC)


def _fingerprint(request: GatewayRequest) -> str:
    return json.dumps(
        [
            request.operation.value,
            request.transaction_id,
            str(request.amount.amount),
            request.amount.currency,
            request.parent_transaction_id,
            request.parent_reference,
            request.instrument.id if request.instrument else None,
        ]
    )


def _encode_step(step: Step) -> str | None:
    if step is None:
        return None
    if isinstance(step, Decline):
        return json.dumps(["decline", step.code, step.message])
    return step.value


def _decode_step(text: str | None) -> Step:
    if text is None:
        return None
    if text.startswith("["):
        _, code, message = json.loads(text)
        return Decline(code=code, message=message)
    return Fault(text)


def _operation(operation: str) -> str:
    if operation not in _OPERATIONS:
        raise InvalidValueError(
            f"must be one of {', '.join(_OPERATIONS)}", field="operation", value=operation
        )
    return str(operation)


class SharedGateway:
    """A sandbox gateway with its ledger in a SQL database. See the module docstring."""

    def __init__(
        self,
        url: str | sa.URL | Engine,
        *,
        clock: Callable[[], datetime] | None = None,
        name: str = "shared",
        settle_after: timedelta | None = timedelta(days=1),
        capabilities: GatewayCapabilities | None = None,
        seed: int = 0,
        slow: timedelta = timedelta(seconds=30),
        slow_sleep: float = 0.01,
        create: bool = True,
    ) -> None:
        self.name = name
        self.capabilities = capabilities or GatewayCapabilities(payouts=True)
        self.settle_after = settle_after
        self.slow = slow
        self.slow_sleep = slow_sleep
        self._clock = clock or _wall_clock
        self._random = random.Random(seed)
        self._rates: dict[str, list[tuple[Fault | Decline, float]]] = {}
        self.faults_drawn: Counter[str] = Counter()
        """The faults this instance met, scripted or drawn, as ``"<operation>:<fault>"``."""
        self._own_engine = not isinstance(url, Engine)
        self._engine = url if isinstance(url, Engine) else make_engine(url)
        self._pg = self._engine.dialect.name == "postgresql"
        memory = is_memory_sqlite(self._engine.url)
        self._serial: AbstractContextManager[Any] = threading.RLock() if memory else nullcontext()
        if create:
            with self._tx() as conn:
                if self._pg:
                    conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_CREATE_LOCK)))
                gateway_metadata.create_all(conn, checkfirst=True)

    def __repr__(self) -> str:
        return f"<SharedGateway {self.name!r} at {self._engine.url.render_as_string()!r}>"

    def close(self) -> None:
        """Release the connection pool (when this gateway made the engine)."""
        if self._own_engine:
            self._engine.dispose()

    @contextmanager
    def _tx(self) -> Iterator[Connection]:
        with self._serial, self._engine.begin() as conn:
            yield conn

    def _now(self) -> datetime:
        return require_aware(self._clock(), "clock()")

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
        """The true outcome of an earlier call; ``not_sent`` for a call never received. A
        scripted fault on ``"lookup"`` answers ``unknown`` (the gateway could not be asked)."""
        step = self._start("lookup")
        if step is Fault.SLOW:
            self._be_slow()
        elif step is not None and step is not Fault.DUPLICATE_RESPONSE:
            return GatewayOutcome(
                status=OutcomeStatus.UNKNOWN,
                message=f"shared sandbox: lookup failed ({_step_name(step)})",
            )
        with self._tx() as conn:
            self._count(conn, "lookup", "received")
            row = conn.execute(
                sa.select(_calls.c.transaction_id, _calls.c.outcome, _calls.c.done).where(
                    _calls.c.key == idempotency_key
                )
            ).first()
            if row is None or row.transaction_id != transaction_id:
                return GatewayOutcome(
                    status=OutcomeStatus.NOT_SENT,
                    message=f"shared sandbox: no call for transaction {transaction_id!r} "
                    "with this key",
                )
            outcome = structure(json.loads(row.outcome), GatewayOutcome)
            if not row.done:
                return outcome
            charge = self._charge(conn, outcome.reference or "", lock=False)
            settled = outcome.settled if charge is None else charge.settled(self._now())
        return attrs.evolve(outcome, status=OutcomeStatus.SUCCEEDED, settled=settled)

    # -- faults --------------------------------------------------------------------------------
    def script(self, operation: str, steps: Iterable[Step | str]) -> None:
        """Queue ``steps`` (in the database) for the next calls of ``operation``, whichever
        process makes them."""
        op = _operation(operation)
        rows = [{"operation": op, "step": _encode_step(parse_step(s))} for s in steps]
        if rows:
            with self._tx() as conn:
                conn.execute(sa.insert(_script), rows)

    def scripted(self, operation: str) -> tuple[Step, ...]:
        """The steps still queued for ``operation``."""
        op = _operation(operation)
        with self._tx() as conn:
            rows = conn.execute(
                sa.select(_script.c.step).where(_script.c.operation == op).order_by(_script.c.seq)
            ).scalars()
            return tuple(_decode_step(r) for r in rows)

    def fault_rates(self, operation: str, rates: Mapping[Fault | Decline, float]) -> None:
        """Draw faults for ``operation`` at random in *this instance* (not shared)."""
        op = _operation(operation)
        table = parse_rates(rates)
        self._rates[op] = table

    def clear_faults(self) -> None:
        """Forget every scripted step (for every process) and this instance's fault rates."""
        with self._tx() as conn:
            conn.execute(sa.delete(_script))
        self._rates.clear()

    # -- the ledger, for tests -----------------------------------------------------------------
    @property
    def calls(self) -> Counter[str]:
        """Every call per operation, by every process (lookups under ``"lookup"``)."""
        return self._counted("call")

    @property
    def received(self) -> Counter[str]:
        """Deliveries that reached the ledger, per operation."""
        return self._counted("received")

    def settle(self, reference: str) -> None:
        """Settle a sale or capture now, whatever ``settle_after`` says."""
        with self._tx() as conn:
            charge = self._charge(conn, reference, lock=True)
            if charge is None:
                raise NotFoundError(
                    "no charge with this reference", field="reference", value=reference
                )
            if charge.operation is GatewayOperation.AUTHORIZE:
                raise InvalidValueError(
                    "an authorization never settles: capture it", field="reference", value=reference
                )
            now = self._now()
            if charge.settles_at is None or charge.settles_at > now:
                conn.execute(
                    sa.update(_charges)
                    .where(_charges.c.reference == reference)
                    .values(settles_utc=now)
                )

    def charge(self, reference: str) -> ChargeState:
        """The state of one charge or authorization, by reference."""
        with self._tx() as conn:
            charge = self._charge(conn, reference, lock=False)
        if charge is None:
            raise NotFoundError("no charge with this reference", field="reference", value=reference)
        return self._state(charge)

    def charges(self) -> list[ChargeState]:
        """Every charge and authorization."""
        with self._tx() as conn:
            rows = conn.execute(sa.select(_charges)).all()
        return [self._state(_row_charge(r)) for r in rows]

    def ledger(self) -> list[LedgerEntry]:
        """Every movement of money, in order. Replays add nothing."""
        with self._tx() as conn:
            rows = conn.execute(sa.select(_ledger).order_by(_ledger.c.seq)).all()
        return [
            LedgerEntry(
                reference=r.reference,
                operation=GatewayOperation(r.operation),
                transaction_id=r.transaction_id,
                idempotency_key=r.idempotency_key,
                amount=Money(r.amount, r.currency),
                at=r.at_utc,
                parent_reference=r.parent_reference,
                instrument_id=r.instrument_id,
            )
            for r in rows
        ]

    # -- internals -----------------------------------------------------------------------------
    def _state(self, charge: ChargeRecord) -> ChargeState:
        return charge.state(self._now())

    def _counted(self, kind: str) -> Counter[str]:
        with self._tx() as conn:
            rows = conn.execute(
                sa.select(_counts.c.operation, sa.func.count())
                .where(_counts.c.kind == kind)
                .group_by(_counts.c.operation)
            ).all()
        return Counter({str(op): int(n) for op, n in rows})

    @staticmethod
    def _count(conn: Connection, operation: str, kind: str) -> None:
        conn.execute(sa.insert(_counts).values(operation=operation, kind=kind))

    def _start(self, operation: str) -> Step:
        """Count the call and draw its step: the next scripted one, else a random one."""
        with self._tx() as conn:
            self._count(conn, operation, "call")
            pick = sa.select(_script.c.seq, _script.c.step).where(_script.c.operation == operation)
            pick = pick.order_by(_script.c.seq).limit(1)
            if self._pg:
                pick = pick.with_for_update(skip_locked=True)
            row = conn.execute(pick).first()
            if row is not None:
                conn.execute(sa.delete(_script).where(_script.c.seq == row.seq))
                return self._met(operation, _decode_step(row.step))
        table = self._rates.get(operation)
        if table:
            draw = self._random.random()
            for step, rate in table:
                if draw < rate:
                    return self._met(operation, step)
                draw -= rate
        return None

    def _met(self, operation: str, step: Step) -> Step:
        if step is not None:
            self.faults_drawn[f"{operation}:{_step_name(step)}"] += 1
        return step

    def _be_slow(self) -> None:
        advance = getattr(self._clock, "advance", None)
        if callable(advance):
            advance(self.slow)
        else:
            time.sleep(self.slow_sleep)

    def _call(self, operation: GatewayOperation, request: GatewayRequest) -> GatewayOutcome:
        if request.operation is not operation:
            raise InvalidValueError(
                f"must be {operation} for gateway.{operation}()",
                field="request.operation",
                value=request.operation,
            )
        step = self._start(operation.value)
        if step is Fault.SLOW:
            self._be_slow()
            step = None
        if step is Fault.NOT_SENT:
            return GatewayOutcome(
                status=OutcomeStatus.NOT_SENT,
                message="shared sandbox: connection refused (scripted)",
            )
        if step is Fault.TIMEOUT_BEFORE_SEND:
            return GatewayOutcome(
                status=OutcomeStatus.UNKNOWN,
                message="shared sandbox: timed out connecting (scripted); nothing was sent",
            )
        with self._tx() as conn:
            self._count(conn, operation.value, "received")
            if self._pg:  # one call per key at a time, in every process
                conn.execute(
                    sa.select(
                        sa.func.pg_advisory_xact_lock(sa.func.hashtext(request.idempotency_key))
                    )
                )
            if step is Fault.DECLINE or isinstance(step, Decline):
                decline = step if isinstance(step, Decline) else Decline()
                outcome = self._decline(
                    conn, request, declined(decline.code, decline.message, request.amount)
                )
            else:
                outcome = self._execute(conn, request)
                if step is Fault.DUPLICATE_RESPONSE:
                    self._count(conn, operation.value, "received")
                    outcome = self._execute(conn, request)
        if step is Fault.TIMEOUT_AFTER_SEND:
            return GatewayOutcome(
                status=OutcomeStatus.UNKNOWN,
                message="shared sandbox: timed out waiting for the answer (scripted); it was sent",
            )
        if step is Fault.PENDING and outcome.status is OutcomeStatus.SUCCEEDED:
            return attrs.evolve(outcome, status=OutcomeStatus.PENDING)
        return outcome

    def _decline(
        self, conn: Connection, request: GatewayRequest, outcome: GatewayOutcome
    ) -> GatewayOutcome:
        """Record a decline (it blocks nothing); the replay of a key that succeeded answers the
        stored success instead."""
        row = conn.execute(
            sa.select(_calls.c.fingerprint, _calls.c.outcome, _calls.c.done).where(
                _calls.c.key == request.idempotency_key
            )
        ).first()
        text = json.dumps(unstructure(outcome))
        if row is None:
            conn.execute(
                sa.insert(_calls).values(
                    key=request.idempotency_key,
                    transaction_id=request.transaction_id,
                    fingerprint=_fingerprint(request),
                    outcome=text,
                    done=False,
                )
            )
        elif row.fingerprint == _fingerprint(request):
            if row.done:
                return structure(json.loads(row.outcome), GatewayOutcome)
            conn.execute(
                sa.update(_calls)
                .where(_calls.c.key == request.idempotency_key)
                .values(outcome=text)
            )
        return outcome

    def _execute(self, conn: Connection, request: GatewayRequest) -> GatewayOutcome:
        row = conn.execute(
            sa.select(_calls.c.fingerprint, _calls.c.outcome, _calls.c.done).where(
                _calls.c.key == request.idempotency_key
            )
        ).first()
        if row is not None and row.fingerprint != _fingerprint(request):
            return declined(
                DECLINE_IDEMPOTENCY_MISMATCH,
                "shared sandbox: this idempotency key was used with other parameters",
                request.amount,
            )
        if row is not None and row.done:
            return structure(json.loads(row.outcome), GatewayOutcome)
        outcome = self._perform(conn, request)
        if outcome.status is OutcomeStatus.DECLINED:
            return self._decline(conn, request, outcome)
        values = {
            "transaction_id": request.transaction_id,
            "fingerprint": _fingerprint(request),
            "outcome": json.dumps(unstructure(outcome)),
            "done": True,
        }
        if row is None:
            conn.execute(sa.insert(_calls).values(key=request.idempotency_key, **values))
        else:
            conn.execute(
                sa.update(_calls).where(_calls.c.key == request.idempotency_key).values(values)
            )
        return outcome

    # -- the processor's rules (as ``SandboxLedger``) ------------------------------------------
    def _charge(self, conn: Connection, reference: str, *, lock: bool) -> ChargeRecord | None:
        stmt = sa.select(_charges).where(_charges.c.reference == reference)
        if lock and self._pg:
            stmt = stmt.with_for_update()
        row = conn.execute(stmt).first()
        return None if row is None else _row_charge(row)

    def _parent(self, conn: Connection, request: GatewayRequest) -> ChargeRecord | None:
        reference = request.parent_reference
        if reference is None and request.parent_transaction_id is not None:
            reference = conn.execute(
                sa.select(_charges.c.reference).where(
                    _charges.c.transaction_id == request.parent_transaction_id
                )
            ).scalar()
        return None if reference is None else self._charge(conn, reference, lock=True)

    def _perform(self, conn: Connection, request: GatewayRequest) -> GatewayOutcome:
        refusal = refuse_request(request, self.capabilities, self.name, self._now())
        if refusal is not None:
            return refusal
        if not needs_parent(request):
            return self._new_charge(conn, request)
        parent = self._parent(conn, request)
        refusal = refuse_parent(request, parent)
        if refusal is not None:
            return refusal
        assert parent is not None
        if request.operation is GatewayOperation.CAPTURE:
            return self._capture(conn, request, parent)
        if request.operation is GatewayOperation.VOID:
            return self._void(conn, request, parent)
        return self._refund(conn, request, parent)

    def _succeed(
        self, conn: Connection, request: GatewayRequest, parent: ChargeRecord | None = None
    ) -> GatewayOutcome:
        reference = f"{_PREFIX[request.operation]}_{uuid.uuid4().hex[:16]}"
        conn.execute(
            sa.insert(_ledger).values(
                reference=reference,
                operation=request.operation.value,
                transaction_id=request.transaction_id,
                idempotency_key=request.idempotency_key,
                currency=request.amount.currency,
                amount=str(request.amount.amount),
                at_utc=self._now(),
                parent_reference=parent.reference if parent else None,
                instrument_id=request.instrument.id if request.instrument else None,
            )
        )
        return GatewayOutcome(
            status=OutcomeStatus.SUCCEEDED,
            reference=reference,
            amount=request.amount,
            message=f"shared sandbox: {request.operation} of {request.amount} succeeded",
        )

    def _new_charge(
        self, conn: Connection, request: GatewayRequest, parent: ChargeRecord | None = None
    ) -> GatewayOutcome:
        outcome = self._succeed(conn, request, parent)
        if request.operation is GatewayOperation.PAYOUT:
            return outcome
        assert outcome.reference is not None
        now = self._now()
        settles = request.operation is not GatewayOperation.AUTHORIZE
        settles_at = now + self.settle_after if settles and self.settle_after is not None else None
        conn.execute(
            sa.insert(_charges).values(
                reference=outcome.reference,
                operation=request.operation.value,
                transaction_id=request.transaction_id,
                currency=request.amount.currency,
                amount=str(request.amount.amount),
                refunded=str(Money.zero(request.amount.currency).amount),
                created_utc=now,
                settles_utc=settles_at,
                voided=False,
                captured_by=None,
            )
        )
        settled = settles_at is not None and now >= settles_at
        return attrs.evolve(outcome, settled=settled)

    def _capture(
        self, conn: Connection, request: GatewayRequest, auth: ChargeRecord
    ) -> GatewayOutcome:
        refusal = refuse_capture(request, auth)
        if refusal is not None:
            return refusal
        outcome = self._new_charge(conn, request, parent=auth)
        conn.execute(
            sa.update(_charges)
            .where(_charges.c.reference == auth.reference)
            .values(captured_by=outcome.reference)
        )
        return outcome

    def _void(
        self, conn: Connection, request: GatewayRequest, charge: ChargeRecord
    ) -> GatewayOutcome:
        refusal = refuse_void(request, charge, self._now())
        if refusal is not None:
            return refusal
        conn.execute(
            sa.update(_charges).where(_charges.c.reference == charge.reference).values(voided=True)
        )
        return self._succeed(conn, request, parent=charge)

    def _refund(
        self, conn: Connection, request: GatewayRequest, charge: ChargeRecord
    ) -> GatewayOutcome:
        refusal = refuse_refund(request, charge, self._now(), self.capabilities, self.name)
        if refusal is not None:
            return refusal
        conn.execute(
            sa.update(_charges)
            .where(_charges.c.reference == charge.reference)
            .values(refunded=str((charge.refunded + request.amount).amount))
        )
        return self._succeed(conn, request, parent=charge)


def _row_charge(row: Any) -> ChargeRecord:
    return ChargeRecord(
        reference=row.reference,
        operation=GatewayOperation(row.operation),
        transaction_id=row.transaction_id,
        amount=Money(row.amount, row.currency),
        refunded=Money(row.refunded, row.currency),
        created_at=row.created_utc,
        settles_at=row.settles_utc,
        voided=bool(row.voided),
        captured_by=row.captured_by,
    )


def _step_name(step: Step) -> str:
    return step.code if isinstance(step, Decline) else str(step)
