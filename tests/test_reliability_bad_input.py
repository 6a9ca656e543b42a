"""Promise 7: bad input raises a ``BillingError`` that names the field, never a bare
``KeyError``/``TypeError``/``AttributeError``, and writes nothing.

Hypothesis generates malformed input (floats, NaN, huge numbers, unknown currencies, naive
datetimes, bad zone names, wrong types, missing and extra fields) for:

* ``serialization.structure``, for every value type: the JSON form of a valid value with one
  leaf replaced by junk, one field dropped or one field added;
* the public rule functions: ``proration.prorate``, ``backdating.assess_start``,
  ``refunds.assess_refund``, ``retry.next_retry``, ``metering.aggregate`` and
  ``metering.billable_quantity``, with any one argument replaced by junk;
* the engine's calls (``charge``, ``refund_transaction``, ``refund_order``,
  ``add_subscription``, ``record_usage``, ``close_metered_period``, ``process_refund_queue``),
  with one argument replaced by junk: they raise a ``BillingError`` with a field, and the audit
  log and the transactions are unchanged.

A call that gets junk either raises a ``BillingError`` whose ``field`` is a path (``$.…``) or,
where the junk happens to be acceptable (``structure`` of an extra-less mutation that is still
valid), returns a value of the right type.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from billing_core import BillingEngine, BillingError, Customer, Money, Period
from billing_core.engine import results
from billing_core.errors import StructureError
from billing_core.model import (
    Certificate,
    CertificateLine,
    InvoiceLine,
    Subscription,
    Transaction,
    UsageEvent,
)
from billing_core.plugins.manager import Plugins
from billing_core.plugins.records import AuditEntry, IdempotencyRecord, QueueEntry
from billing_core.plugins.sandbox_gateway import SandboxGateway
from billing_core.rules import backdating, metering, pricing, proration, refunds, retry
from billing_core.rules.permissions import Actor
from billing_core.serialization import structure, unstructure
from billing_core.testing import strategies as bst
from billing_core.testing.clock import ManualClock

START = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
ADMIN = Actor(id="ada", role="admin")
Figure = Callable[[str], None]

# -- junk ----------------------------------------------------------------------------------------
JUNK_JSON: list[Any] = [
    1.5,
    float("nan"),
    float("inf"),
    "NaN",
    "Infinity",
    "-0.0001e999999",
    "1e400",
    10**40,
    -(10**30),
    True,
    None,
    "",
    "XYZ",
    "not a date",
    "2026-11-21T12:00:00",  # naive
    "2026-11-21T12:00:00+01:00[Mars/Olympus]",  # bad zone
    "2026-02-30",
    "P-1M",
    "P0D",
    "1/0",
    "\x00",
    [],
    [1, 2],
    {},
    {"amount": "1.00"},
    {"amount": 1.0, "currency": "USD"},
    {"amount": "1.00", "currency": "XXQ"},
    {"amount": "NaN", "currency": "USD"},
    {"unexpected": 1},
]
"""JSON leaves and sub-trees that are wrong somewhere a value is expected."""

JUNK_PY: list[Any] = [
    1.5,
    float("nan"),
    Decimal("NaN"),
    Decimal("Infinity"),
    Decimal("1e400"),
    10**40,
    -5,
    True,
    None,
    "",
    "XYZ",
    "not a date",
    b"bytes",
    object(),
    [],
    {},
    {"x": 1},
    datetime(2026, 11, 21, 12, 0),  # noqa: DTZ001 - naive on purpose
    date(2026, 11, 21),
    timedelta(days=-1),
    Fraction(1, 3),
    Money("1.00", "EUR"),
    Money("-1.00", "USD"),
    Money("0.001", "USD"),
    Period.days(1),
]
"""Python values, each wrong for most parameters."""

VALUE_TYPES: list[tuple[type, st.SearchStrategy[Any]]] = [
    (Money, bst.money()),
    (Period, bst.periods()),
    (Customer, bst.customers()),
    (CertificateLine, bst.certificate_lines()),
    (Transaction, bst.transactions()),
    (Certificate, bst.certificates()),
    (Subscription, bst.subscriptions()),
    (UsageEvent, bst.usage_events()),
    (InvoiceLine, bst.invoice_lines()),
    (
        AuditEntry,
        st.builds(
            AuditEntry,
            at=bst.aware_datetimes(),
            actor=st.text(min_size=1, max_size=5),
            action=st.text(min_size=1, max_size=5),
            subject_id=st.text(min_size=1, max_size=5),
        ),
    ),
    (
        IdempotencyRecord,
        st.builds(
            IdempotencyRecord,
            key=st.text(min_size=1, max_size=5),
            operation=st.just("charge"),
            fingerprint=st.just("ab"),
            created_at=bst.aware_datetimes(),
        ),
    ),
    (
        QueueEntry,
        st.builds(
            QueueEntry,
            id=st.just("q-1"),
            refund_transaction_id=st.just("rf-1"),
            original_transaction_id=st.just("tx-1"),
            amount=bst.money(),
            idempotency_key=st.just("k:refund"),
            created_at=bst.aware_datetimes(),
        ),
    ),
    (
        results.RefundResult,
        st.builds(
            results.RefundResult,
            transaction_id=st.just("tx-1"),
            outcome=st.sampled_from(results.RefundOutcome),
            explanation=st.text(max_size=5),
            amount=st.none() | bst.money(),
        ),
    ),
    (
        results.ChargeResult,
        st.builds(
            results.ChargeResult,
            outcome=st.sampled_from(results.ChargeOutcome),
            explanation=st.text(max_size=5),
            amount=st.none() | bst.money(),
        ),
    ),
]


def _paths(data: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every path to a node of a JSON tree (the root excluded)."""
    if isinstance(data, dict):
        for k, v in data.items():
            yield (*prefix, k)
            yield from _paths(v, (*prefix, k))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            yield (*prefix, i)
            yield from _paths(v, (*prefix, i))


def _replace(data: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(data, dict):
        return {**data, head: _replace(data[head], rest, new)}
    copy = list(data)
    copy[head] = _replace(data[head], rest, new)
    return copy


def _drop(data: Any, path: tuple[Any, ...]) -> Any:
    if len(path) == 1:
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if k != path[0]}
        return [v for i, v in enumerate(data) if i != path[0]]
    head = path[0]
    if isinstance(data, dict):
        return {**data, head: _drop(data[head], path[1:])}
    copy = list(data)
    copy[head] = _drop(data[head], path[1:])
    return copy


@st.composite
def malformed(draw: st.DrawFn) -> tuple[type, Any, str]:
    cls, values = draw(st.sampled_from(VALUE_TYPES))
    data = unstructure(draw(values))
    paths = list(_paths(data))
    how = draw(st.sampled_from(["replace", "drop", "extra", "root"] if paths else ["root"]))
    if how == "root":
        return cls, draw(st.sampled_from(JUNK_JSON)), how
    if how == "extra":
        containers = [()] + [p for p in paths if isinstance(_get(data, p), dict)]
        where = draw(st.sampled_from(containers))
        junk = draw(st.sampled_from(JUNK_JSON))
        return cls, _replace(data, where, {**_get(data, where), "zz_extra": junk}), how
    path = draw(st.sampled_from(paths))
    if how == "drop":
        return cls, _drop(data, path), how
    return cls, _replace(data, path, draw(st.sampled_from(JUNK_JSON))), how


def _get(data: Any, path: tuple[Any, ...]) -> Any:
    for p in path:
        data = data[p]
    return data


def _check_error(exc: BaseException) -> None:
    """A ``BillingError`` naming the field: its ``field`` is a path, or (a ``StructureError``)
    every entry of its ``errors`` is."""
    assert isinstance(exc, BillingError), f"a bare {type(exc).__name__}: {exc!r}"
    if isinstance(exc, StructureError):
        assert exc.errors, f"no field listed: {exc!r}"
        paths = [path for path, _ in exc.errors]
    else:
        paths = [exc.field or ""]
    assert all(p.startswith("$") for p in paths), f"no field path: {exc!r}"


# -- 1. structure ----------------------------------------------------------------------------------
@settings(max_examples=1500, suppress_health_check=[HealthCheck.too_slow])
@given(malformed())
def test_structure_refuses_malformed_json_with_a_field(case: tuple[type, Any, str]) -> None:
    cls, data, _ = case
    try:
        value: object = structure(data, cls)
    except Exception as exc:
        _check_error(exc)
    else:
        assert isinstance(value, cls)  # a drop of an optional field, junk that still fits


@pytest.mark.parametrize(("cls", "values"), VALUE_TYPES, ids=[c.__name__ for c, _ in VALUE_TYPES])
def test_structure_round_trips_the_valid_values(cls: type, values: st.SearchStrategy[Any]) -> None:
    @settings(max_examples=30)
    @given(values)
    def check(value: Any) -> None:
        assert structure(unstructure(value), cls) == value

    check()


# -- 2. the public rule functions --------------------------------------------------------------------
def _valid_transaction() -> Transaction:
    return Transaction(id="tx-1", amount=Money("100.00", "USD"), created_at=START, settled=True)


RULES: dict[str, tuple[Callable[..., Any], dict[str, Any]]] = {
    "proration.prorate": (
        lambda amount, **kw: proration.prorate(amount, **kw),
        {
            "amount": Money("31.00", "USD"),
            "period_start": date(2026, 1, 1),
            "period_end": date(2026, 2, 1),
            "start": date(2026, 1, 15),
            "end": None,
            "day_count": proration.DayCount.ACTUAL,
        },
    ),
    "backdating.assess_start": (
        lambda start, **kw: backdating.assess_start(start, **kw),
        {
            "start": date(2026, 5, 21),
            "term": Period.years(1),
            "today": date(2026, 11, 21),
            "price": Money("100.00", "USD"),
        },
    ),
    "refunds.assess_refund": (
        lambda transaction, **kw: refunds.assess_refund(transaction, **kw),
        {
            "transaction": _valid_transaction(),
            "now": START + timedelta(days=2),
            "amount": Money("10.00", "USD"),
            "certificate": None,
            "policy": refunds.RefundPolicy(),
        },
    ),
    "retry.next_retry": (
        lambda failures, last_failure_at, **kw: retry.next_retry(failures, last_failure_at, **kw),
        {"failures": 1, "last_failure_at": START, "policy": retry.RetryPolicy()},
    ),
    "metering.aggregate": (
        lambda events, **kw: metering.aggregate(events, **kw),
        {
            "events": [UsageEvent(id="e1", quantity=3, at=START)],
            "strategy": metering.Aggregation.SUM,
            "start": START - timedelta(days=1),
            "end": START + timedelta(days=1),
            "unique_by": None,
        },
    ),
    "metering.billable_quantity": (
        lambda value, **kw: metering.billable_quantity(value, **kw),
        {"value": Decimal("5"), "minimum": None, "maximum": None},
    ),
}

OPTIONAL = {"end", "certificate", "unique_by", "minimum", "maximum"}
"""Parameters for which ``None`` is valid (so it is not junk for them)."""


@st.composite
def rule_call(draw: st.DrawFn) -> tuple[str, dict[str, Any], str]:
    name = draw(st.sampled_from(sorted(RULES)))
    _, valid = RULES[name]
    param = draw(st.sampled_from(sorted(valid)))
    junk = draw(st.sampled_from(JUNK_PY))
    if param == "events":
        junk = draw(st.sampled_from([junk, [junk], [valid["events"][0], junk]]))
    return name, {**valid, param: junk}, param


@settings(max_examples=1500, suppress_health_check=[HealthCheck.too_slow])
@given(rule_call())
def test_rules_refuse_junk_with_a_field(case: tuple[str, dict[str, Any], str]) -> None:
    name, kwargs, _ = case
    fn, _ = RULES[name]
    try:
        fn(**kwargs)
    except Exception as exc:
        _check_error(exc)


def test_the_rules_accept_the_valid_arguments() -> None:
    """The junk test above can only fail on junk: the valid calls go through."""
    for fn, valid in RULES.values():
        fn(**valid)


# -- 3. the engine ------------------------------------------------------------------------------------
class _Rig:
    def __init__(self, url: str) -> None:
        self.clock = ManualClock(START)
        self.gateway = SandboxGateway(clock=self.clock)
        self.engine = BillingEngine(
            store=url,
            clock=self.clock,
            gateway=self.gateway,
            plugins=Plugins(clock=self.clock, entry_points=False),
        )
        self.engine.add_customer(Customer(id="c1", company="Acme"), actor=ADMIN)
        sale = self.engine.charge("c1", Money("100.00", "USD"), idempotency_key="s", actor=ADMIN)
        assert sale.transaction_id is not None
        self.tx = sale.transaction_id
        sub = self.engine.add_subscription(
            "c1",
            term=Period.months(1),
            inventory={"dv": 1},
            unit_prices={"dv": Money("10.00", "USD")},
            idempotency_key="sub",
            actor=ADMIN,
        )
        assert sub.subscription_id is not None
        self.sub = sub.subscription_id
        self.clock.advance(days=2)

    def snapshot(self) -> tuple[list[AuditEntry], list[Transaction], int, int]:
        e = self.engine
        return e.audit_log(), e.transactions(), len(e.refund_queue()), sum(e.gateway.calls.values())  # type: ignore[attr-defined]


def _engine_calls(rig: _Rig) -> dict[str, tuple[Callable[..., Any], dict[str, Any]]]:
    e = rig.engine
    price = metering.MeteredPrice(model=pricing.PerUnit(unit_price=Money("0.01", "USD")))
    return {
        "charge": (
            lambda customer_id, amount, **kw: e.charge(customer_id, amount, **kw),
            {
                "customer_id": "c1",
                "amount": Money("5.00", "USD"),
                "idempotency_key": "k-charge",
                "actor": ADMIN,
            },
        ),
        "refund_transaction": (
            lambda transaction_id, **kw: e.refund_transaction(transaction_id, **kw),
            {
                "transaction_id": rig.tx,
                "amount": Money("5.00", "USD"),
                "certificates": None,
                "idempotency_key": "k-refund",
                "actor": ADMIN,
            },
        ),
        "refund_order": (
            lambda transaction_id, **kw: e.refund_order(transaction_id, **kw),
            {"transaction_id": rig.tx, "idempotency_key": "k-order", "actor": ADMIN},
        ),
        "add_subscription": (
            lambda customer_id, **kw: e.add_subscription(customer_id, **kw),
            {
                "customer_id": "c1",
                "term": Period.years(1),
                "inventory": {"dv": 1},
                "unit_prices": {"dv": Money("10.00", "USD")},
                "start": None,
                "idempotency_key": "k-sub",
                "actor": ADMIN,
            },
        ),
        "record_usage": (
            lambda events: e.record_usage(events),
            {"events": [UsageEvent(id="u1", quantity=1, at=START, subscription_id=rig.sub)]},
        ),
        "close_metered_period": (
            lambda subscription_id, **kw: e.close_metered_period(subscription_id, **kw),
            {
                "subscription_id": rig.sub,
                "price": price,
                "start": START,
                "end": START + timedelta(days=1),
                "idempotency_key": "k-close",
                "actor": ADMIN,
            },
        ),
        "process_refund_queue": (
            lambda **kw: e.process_refund_queue(**kw),
            {"now": START + timedelta(days=3), "limit": 10},
        ),
    }


ENGINE_OPTIONAL = {"start", "amount", "now", "certificates"}


@pytest.fixture(scope="module", params=["memory", "sqlite"])
def rig(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> _Rig:
    if request.param == "memory":
        return _Rig("memory://")
    return _Rig(f"sqlite:///{tmp_path_factory.mktemp('bad') / 'billing.sqlite3'}")


def _is_junk_for(call: str, param: str, value: Any) -> bool:
    """Whether ``value`` is really wrong for ``param`` of ``call`` (some junk happens to fit)."""
    if value is None and param in ENGINE_OPTIONAL:
        return False
    if param == "term" and isinstance(value, Period):
        return False
    if param == "start" and type(value) is date:
        return False  # any plain date is a start (too early is a denial, not bad input)
    if param in ("inventory", "unit_prices") and value == {}:
        return False  # nothing to subscribe to is a valid (empty) order
    if param == "events" and value in ("", [], {}):
        return False  # no events at all
    if call == "charge" and param == "amount" and isinstance(value, Money):
        return value.amount < 0 or not value.is_rounded  # another currency is a valid charge
    if param == "unit_prices" and isinstance(value, dict) and "dv" in value:
        v = value["dv"]
        return not (isinstance(v, Money) and v.amount >= 0)  # unit prices may be finer
    if param in ("customer_id", "transaction_id", "subscription_id", "idempotency_key"):
        return not (isinstance(value, str) and value)  # any non-empty str may name a record
    if param == "limit":
        return not (isinstance(value, int) and not isinstance(value, bool) and value >= 0)
    return True


@settings(
    max_examples=600,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_engine_refuses_junk_and_writes_nothing(rig: _Rig, data: st.DataObject) -> None:
    calls = _engine_calls(rig)
    name = data.draw(st.sampled_from(sorted(calls)), label="call")
    fn, valid = calls[name]
    param = data.draw(st.sampled_from(sorted(valid)), label="param")
    junk = data.draw(st.sampled_from(JUNK_PY), label="junk")
    if param == "events":
        junk = data.draw(st.sampled_from([junk, [junk], [valid["events"][0], junk]]))
    if param in ("inventory", "unit_prices"):
        junk = data.draw(
            st.sampled_from([junk, {"dv": junk}, {junk: 1} if _hashable(junk) else {}])
        )
    if not _is_junk_for(name, param, junk):
        return
    before = rig.snapshot()
    try:
        fn(**{**valid, param: junk})
    except Exception as exc:
        _check_error(exc)
    else:
        pytest.fail(f"{name}({param}={junk!r}) was accepted")
    assert rig.snapshot() == before, f"{name}({param}={junk!r}) wrote to the store"


def _hashable(value: Any) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return not (isinstance(value, float) and math.isnan(value))


def test_bad_input_figure(figure: Figure) -> None:
    figure(
        f"bad input: structure x {len(VALUE_TYPES)} value types (1500 examples), "
        f"{len(RULES)} rule functions (1500 examples), 7 engine calls on memory and SQLite "
        f"(600 examples each); {len(JUNK_JSON)} JSON and {len(JUNK_PY)} Python junk values"
    )
