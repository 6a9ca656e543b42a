"""The mixed harness: every money-path entry point at once, on the same payments.

``mixed_task`` is a task for ``ProcessWorkers`` / ``ThreadWorkers`` (see ``workers``). Each
worker plays the role ``spec["roles"][worker]``:

* ``"charge"``: ``charge`` new payments (their ids go to a shared file the refund workers read);
* ``"refund"``: on the most recent payments, partial ``refund_transaction`` calls, full ones,
  ``refund_order`` (void first, refund if it settled meanwhile) and replays of its own earlier
  calls with the same key;
* ``"reconcile"`` and ``"queue"``: ``reconcile()`` and ``process_refund_queue()`` in a loop until
  every charge and refund worker is done.

Every worker has its own ``BillingEngine`` on one store and its own ``SharedGateway`` on one
ledger, wrapped in a ``LatentGateway`` (every call and lookup answers after ``latency``
seconds, drawn per call, half before and half after the gateway acts) and drawing the sandbox's
faults at ``fault_rates``. The clock is a ``FastClock``: simulated time runs ``speed`` times
faster than the wall clock and is the same in every process, so charges settle, leases run out
and the queue's daily retries come due while the workers run.

After the run, ``converge`` reconciles and drains the queue with a fault-free gateway, day after
simulated day, and ``check_books`` compares the store with the gateway's ledger, payment by
payment (see ``Books``).
"""

from __future__ import annotations

import os
import random
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import attrs

from ..engine.engine import BillingEngine
from ..errors import OperationInProgressError
from ..model import Transaction, TransactionKind, TransactionStatus
from ..money import Money
from ..plugins.manager import Plugins
from ..plugins.protocols import (
    GatewayOutcome,
    GatewayRequest,
    PaymentGateway,
    Store,
)
from ..plugins.records import QueueState
from ..plugins.sandbox_gateway import Fault
from ..plugins.sql_store import SqlStore
from .hooked_gateway import DelegatingGateway
from .shared_gateway import SharedGateway
from .workers import AGENT

__all__ = [
    "CUSTOMER",
    "FAULT_RATES",
    "OPERATIONS",
    "START",
    "Books",
    "FastClock",
    "LatentGateway",
    "check_books",
    "close_rigs",
    "converge",
    "fault_counts",
    "mixed_task",
    "now_of",
]

START = datetime(2026, 11, 21, 12, tzinfo=UTC)
CUSTOMER = "c-mixed"
CURRENCY = "USD"
OPERATIONS = ("charge", "refund_transaction", "refund_order")
"""The engine operations whose idempotency keys the harness uses."""

FAULT_RATES: Mapping[Fault, float] = {
    Fault.DECLINE: 0.05,
    Fault.NOT_SENT: 0.02,
    Fault.TIMEOUT_BEFORE_SEND: 0.03,
    Fault.TIMEOUT_AFTER_SEND: 0.04,
    Fault.PENDING: 0.03,
    Fault.DUPLICATE_RESPONSE: 0.03,
}
"""Per gateway call (sale, refund, void); lookups fail (answer ``unknown``) at 3 %. On top of
these, ``LatentGateway`` stalls a call (``spec["stall_rate"]``) past its lease, before or after
the gateway acts: reconcile, the queue and replays of its key then act while it still runs."""
LOOKUP_FAULT_RATES: Mapping[Fault, float] = {Fault.TIMEOUT_BEFORE_SEND: 0.03}
_EXPECTED_ERRORS = (OperationInProgressError,)
"""What a caller may be told instead of a result: a replay of a key whose call still runs."""


class FastClock:
    """Simulated time ``speed`` times faster than the wall clock, the same in every process:
    ``start + (time.time() - t0) * speed``."""

    def __init__(self, start: datetime, t0: float, speed: float) -> None:
        self.start = start
        self.t0 = t0
        self.speed = speed

    def __call__(self) -> datetime:
        return self.start + timedelta(seconds=(time.time() - self.t0) * self.speed)


class LatentGateway(DelegatingGateway):
    """``inner`` answering after a latency drawn per call between ``low`` and ``high`` seconds
    (half of it before the gateway acts, half after). With probability ``stall_rate`` a call
    (not a lookup) also stalls ``stall`` seconds, before or after the gateway acts (counted in
    ``met`` as ``"<operation>:stall_before"`` / ``"stall_after"``)."""

    def __init__(
        self,
        inner: PaymentGateway,
        *,
        low: float,
        high: float,
        seed: int,
        stall_rate: float = 0.0,
        stall: float = 0.0,
        met: Counter[str] | None = None,
    ) -> None:
        super().__init__(inner)
        self.low = low
        self.high = high
        self.stall_rate = stall_rate
        self.stall = stall
        self.met: Counter[str] = Counter() if met is None else met
        self._random = random.Random(seed)

    def _half(self) -> None:
        time.sleep(self._random.uniform(self.low, self.high) / 2)

    def _call(
        self, request: GatewayRequest, method: Callable[[GatewayRequest], GatewayOutcome]
    ) -> GatewayOutcome:
        stall = ""
        if self._random.random() < self.stall_rate:
            stall = self._random.choice(["stall_before", "stall_after"])
            self.met[f"{request.operation.value}:{stall}"] += 1
        self._half()
        if stall == "stall_before":
            time.sleep(self.stall)
        outcome = method(request)
        if stall == "stall_after":
            time.sleep(self.stall)
        self._half()
        return outcome

    def _lookup(self, transaction_id: str, idempotency_key: str) -> GatewayOutcome:
        self._half()
        outcome = self.inner.lookup(transaction_id, idempotency_key)
        self._half()
        return outcome


# -- one engine per worker -----------------------------------------------------------------------
_rigs: dict[tuple[str, int], tuple[BillingEngine, SharedGateway]] = {}
_rigs_lock = threading.Lock()


def _rig(spec: Mapping[str, Any], worker: int) -> tuple[BillingEngine, SharedGateway]:
    """This worker's engine and gateway, made once per run (``spec["run"]``). In threads,
    ``spec["store_object"]`` is the one store they share (the memory store); in processes each
    opens ``spec["store"]``. The gateway's ledger is in ``spec["gateway"]``."""
    key = (str(spec["run"]), worker)
    with _rigs_lock:
        if key not in _rigs:
            for stale in [k for k in _rigs if k[0] != key[0]]:  # an earlier run's pools
                old_engine, old_gateway = _rigs.pop(stale)
                old_gateway.close()
                if isinstance(old_engine.store, SqlStore) and "store_object" not in spec:
                    old_engine.store.close()
            clock = FastClock(spec["start"], spec["t0"], spec["speed"])
            store: Store | SqlStore = spec.get("store_object") or SqlStore(
                spec["store"], create=False
            )
            shared = SharedGateway(
                spec["gateway"],
                clock=clock,
                create=False,
                settle_after=spec["settle_after"],
                seed=spec["seed"] * 1000 + worker,
            )
            for operation in ("sale", "refund", "void"):
                shared.fault_rates(operation, spec["fault_rates"])
            shared.fault_rates("lookup", spec["lookup_fault_rates"])
            low, high = spec["latency"]
            engine = BillingEngine(
                store=store,
                gateway=LatentGateway(
                    shared,
                    low=low,
                    high=high,
                    seed=spec["seed"] * 1000 + worker,
                    stall_rate=spec["stall_rate"],
                    stall=spec["stall"],
                    met=shared.faults_drawn,
                ),
                clock=clock,
                plugins=Plugins(clock=clock, entry_points=False),
                worker_id=f"mixed-{worker}-{os.getpid()}",
                notify_emails=["billing@example.com"],
                lease_seconds=spec["lease_seconds"],
            )
            _rigs[key] = (engine, shared)
        return _rigs[key]


def close_rigs() -> None:
    """Release every pool this process opened for the harness (threads: call once, at the end)."""
    with _rigs_lock:
        for engine, gateway in _rigs.values():
            gateway.close()
            if isinstance(engine.store, SqlStore):
                engine.store.close()
        _rigs.clear()


# -- the task ------------------------------------------------------------------------------------
def mixed_task(worker: int, wait: Callable[[], None], spec: Mapping[str, Any]) -> dict[str, Any]:
    """Play ``spec["roles"][worker]`` (see the module docstring); answers the counts of what
    happened, the unexpected errors and the faults this worker's gateway met."""
    role = spec["roles"][worker]
    engine, gateway = _rig(spec, worker)
    gateway.faults_drawn.clear()
    rng = random.Random(spec["seed"] * 7919 + worker)
    shared_dir = Path(spec["dir"])
    counts: Counter[str] = Counter()
    errors: list[str] = []
    wait()
    started = time.perf_counter()
    try:
        if role in ("reconcile", "queue"):
            _loop(role, engine, spec, counts, errors)
        else:
            _operate(role, worker, engine, rng, spec, counts, errors)
    except Exception:
        errors.append(traceback.format_exc())
    finally:
        if role not in ("reconcile", "queue"):
            (shared_dir / f"done-{worker}").touch()
    return {
        "role": role,
        "ops": counts.total(),
        "counts": dict(counts),
        "errors": errors[:10],
        "error_count": len(errors),
        "faults": dict(gateway.faults_drawn),
        "seconds": time.perf_counter() - started,
    }


def _loop(
    role: str,
    engine: BillingEngine,
    spec: Mapping[str, Any],
    counts: Counter[str],
    errors: list[str],
) -> None:
    """``reconcile()`` or ``process_refund_queue()`` until every other worker is done."""
    workers = sum(1 for r in spec["roles"] if r not in ("reconcile", "queue"))
    shared_dir = Path(spec["dir"])
    deadline = time.monotonic() + spec["timeout"]
    while time.monotonic() < deadline:
        if len(list(shared_dir.glob("done-*"))) >= workers:
            return
        run = engine.reconcile() if role == "reconcile" else engine.process_refund_queue()
        counts[role] += 1
        errors.extend(f"{role}: {who}: {why}" for who, why in run.failed)
        time.sleep(spec["loop_pause"])
    errors.append(f"{role}: the other workers did not finish in {spec['timeout']} s")


def _operate(
    role: str,
    worker: int,
    engine: BillingEngine,
    rng: random.Random,
    spec: Mapping[str, Any],
    counts: Counter[str],
    errors: list[str],
) -> None:
    payments_file = Path(spec["dir"]) / "payments"
    recent: list[str] = []
    calls: list[tuple[str, str, Money | None, str]] = []  # for replays: op, payment, amount, key
    i = -1
    while counts.total() < spec["ops_per_worker"]:
        i += 1
        call: Callable[[], Any]
        if role == "charge":
            amount = Money(rng.choice(spec["charge_amounts"]), CURRENCY)
            key = f"ch-{spec['run']}-{worker}-{i}"
            name, call = "charge", _charge(engine, amount, key)
            subject = key
        else:
            if i % 5 == 0 or not recent:
                recent = _recent(payments_file, spec["window"])
            if not recent:  # no payment yet: wait for the charge worker
                time.sleep(0.01)
                continue
            draw = rng.random()
            if calls and draw < spec["replay_rate"]:
                op, payment, amount_or_none, key = rng.choice(calls[-20:])
                name = f"replay_{op}"
            else:
                payment = rng.choice(recent)
                key = f"rf-{spec['run']}-{worker}-{i}"
                op, amount_or_none = _refund_call(rng)
                calls.append((op, payment, amount_or_none, key))
                name = op
            call = _refund(engine, op, payment, amount_or_none, key)
            subject = f"{payment} ({key})"
        try:
            result = call()
        except _EXPECTED_ERRORS as exc:
            counts[f"{name}:{type(exc).__name__}"] += 1
            continue
        except Exception as exc:
            counts[f"{name}:{type(exc).__name__}"] += 1
            where = traceback.format_exception(exc)[-4:-1]
            errors.append(f"{name} {subject}: {type(exc).__name__}: {exc}\n{''.join(where)}")
            continue
        reason = getattr(result, "reason", None)
        counts[f"{name}:{result.outcome.value}" + (f":{reason}" if reason else "")] += 1
        if role == "charge" and result.transaction_id is not None:
            with payments_file.open("a") as f:
                f.write(f"{result.transaction_id}\n")


def _refund_call(rng: random.Random) -> tuple[str, Money | None]:
    """80 % partial refunds (1.00 to 30.00), 10 % full refunds, 10 % ``refund_order``."""
    draw = rng.random()
    if draw < 0.8:
        return "refund_transaction", Money(f"{rng.randint(100, 3000) / 100:.2f}", CURRENCY)
    if draw < 0.9:
        return "refund_transaction", None
    return "refund_order", None


def _charge(engine: BillingEngine, amount: Money, key: str) -> Callable[[], Any]:
    return lambda: engine.charge(CUSTOMER, amount, idempotency_key=key, actor=AGENT)


def _refund(
    engine: BillingEngine, op: str, payment: str, amount: Money | None, key: str
) -> Callable[[], Any]:
    if op == "refund_order":
        return lambda: engine.refund_order(payment, idempotency_key=key, actor=AGENT)
    return lambda: engine.refund_transaction(
        payment, amount=amount, idempotency_key=key, actor=AGENT
    )


def _recent(payments_file: Path, window: int) -> list[str]:
    try:
        lines = payments_file.read_text().split("\n")
    except FileNotFoundError:
        return []
    return [line for line in lines[:-1] if line][-window:]  # the last line may be half written


# -- after the run -------------------------------------------------------------------------------
def converge(engine: BillingEngine, clock: Any, *, days: int = 6) -> list[str]:
    """Past every lease, then ``days`` simulated days of ``reconcile()`` and the queue (the
    engine's gateway draws no faults now); answers what they reported as failed."""
    failed: list[str] = []
    for _ in range(days):
        clock.advance(days=1)
        failed.extend(f"reconcile: {who}: {why}" for who, why in engine.reconcile().failed)
        failed.extend(f"queue: {who}: {why}" for who, why in engine.process_refund_queue().failed)
    return failed


@attrs.frozen(kw_only=True)
class Books:
    """What ``check_books`` found: every list should be empty."""

    payments: int
    disagreements: tuple[str, ...]
    """Payments where the store and the gateway differ: captured, refunded or voided amount."""
    stuck: tuple[str, ...]
    """Transactions left ``unknown``/``pending``, and queue entries not finished."""
    unconverged_keys: tuple[str, ...]
    """Idempotency keys still ``in_progress``."""
    over_refunded: tuple[str, ...]
    """Payments whose refunded plus reserved total exceeds the amount, or with money reserved."""


def check_books(store: Store, gateway: SharedGateway) -> Books:
    """Compare the store with the gateway's ledger, payment by payment."""
    with store.session() as s:
        transactions = s.list_transactions()
        queue = s.list_queue()
        keys = [r.key for op in OPERATIONS for r in s.unresolved_idempotency(op)]
    charges = {c.transaction_id: c for c in gateway.charges()}
    sales = [t for t in transactions if t.kind is TransactionKind.SALE]
    children: dict[str, list[Transaction]] = {}
    for t in transactions:
        if t.parent_id is not None:
            children.setdefault(t.parent_id, []).append(t)
    disagreements: list[str] = []
    over: list[str] = []
    zero = Money("0", CURRENCY)
    for sale in sales:
        charge = charges.pop(sale.id, None)
        done = [c for c in children.get(sale.id, []) if c.status is TransactionStatus.COMPLETED]
        given_back = sum((c.amount for c in done), zero)
        if sale.refunded + sale.reserved > sale.amount or sale.reserved != zero:
            over.append(f"{sale.id}: {sale.refunded} refunded + {sale.reserved} reserved")
        if charge is None:
            if sale.status is not TransactionStatus.FAILED:
                disagreements.append(f"{sale.id}: {sale.status.value} in the store, no charge")
            continue
        at_gateway = charge.amount if charge.voided else charge.refunded
        voided = sale.status is TransactionStatus.VOIDED
        if (
            sale.status is TransactionStatus.FAILED
            or charge.amount != sale.amount
            or at_gateway != sale.refunded
            or given_back != sale.refunded
            or voided is not charge.voided
        ):
            disagreements.append(
                f"{sale.id}: store {sale.status.value} {sale.amount}, {sale.refunded} given "
                f"back ({given_back} in completed children); gateway {charge.amount}, "
                f"{at_gateway} given back{' (voided)' if charge.voided else ''}"
            )
    disagreements.extend(f"{tid}: charged at the gateway, not in the store" for tid in charges)
    stuck = [
        f"{t.id}: {t.status.value}"
        for t in transactions
        if t.status in (TransactionStatus.UNKNOWN, TransactionStatus.PENDING)
    ]
    stuck.extend(
        f"{e.id}: queue {e.state.value}"
        for e in queue
        if e.state not in (QueueState.SUCCEEDED, QueueState.GAVE_UP)
    )
    return Books(
        payments=len(sales),
        disagreements=tuple(disagreements),
        stuck=tuple(stuck),
        unconverged_keys=tuple(keys),
        over_refunded=tuple(over),
    )


def fault_counts(answers: list[dict[str, Any]]) -> Counter[str]:
    """The faults the workers' gateways met, by kind (all operations)."""
    total: Counter[str] = Counter()
    for answer in answers:
        for name, n in answer.get("faults", {}).items():
            operation, _, fault = name.partition(":")
            total["lookup failed" if operation == "lookup" else fault] += n
    return total


def now_of(spec: Mapping[str, Any]) -> datetime:
    """The simulated time of a run now."""
    return FastClock(spec["start"], spec["t0"], spec["speed"])()
