"""Every hook is prefixed, annotated, documented, exercised by a test here, and in docs/hooks.md.

``HOOK_TESTS`` maps each hook to the test that exercises it; ``test_every_hook_has_a_test`` fails
for a hook without one. Regenerate the reference in ``docs/hooks.md`` after changing a hook with
``.venv/bin/python tests/test_hookspecs.py``.
"""

from __future__ import annotations

import inspect
import sys
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import attrs
import pytest

from billing_core import (
    Certificate,
    CertificateStatus,
    Customer,
    Money,
    PaymentInstrument,
    Period,
    Subscription,
    SubscriptionState,
    Transaction,
    TransactionKind,
    TransactionStatus,
)
from billing_core.errors import ConfigurationError
from billing_core.invoices import CreditMemoItem, Invoice, InvoiceTotals
from billing_core.plugins import events, hookspecs
from billing_core.plugins.hookspecs import PROJECT, hookimpl
from billing_core.plugins.manager import Plugins
from billing_core.plugins.memory_store import MemoryStore
from billing_core.plugins.protocols import (
    CancellationState,
    CertificateProvider,
    GatewayOperation,
    GatewayOutcome,
    GatewayRequest,
    OutcomeStatus,
    PaymentGateway,
    Store,
)
from billing_core.plugins.records import Attempt, CreditMemo, QueueEntry
from billing_core.plugins.sandbox_certificates import SandboxCertificateProvider
from billing_core.plugins.sandbox_gateway import SandboxGateway

HOOKS_MD = Path(__file__).resolve().parent.parent / "docs" / "hooks.md"
BEGIN = "<!-- BEGIN GENERATED: hooks reference, from billing_core/plugins/hookspecs.py -->"
END = "<!-- END GENERATED -->"


def hook_functions() -> list[Callable[..., Any]]:
    """The hook specifications, in the order hookspecs.py declares them."""
    found = [
        value
        for value in vars(hookspecs).values()
        if inspect.isfunction(value) and hasattr(value, f"{PROJECT}_spec")
    ]
    return sorted(found, key=lambda f: f.__code__.co_firstlineno)


HOOK_NAMES = [f.__name__ for f in hook_functions()]
HOOK_TESTS: dict[str, Callable[[], None]] = {}


def exercises(hook: str) -> Callable[[Callable[[], None]], Callable[[], None]]:
    """Register the decorated test as the one that exercises ``hook``."""

    def register(test: Callable[[], None]) -> Callable[[], None]:
        assert hook not in HOOK_TESTS, f"{hook} has two tests"
        HOOK_TESTS[hook] = test
        return test

    return register


# -- the form of every hook ---------------------------------------------------------------------
def test_there_are_hooks() -> None:
    assert "billing_core_payment_gateways" in HOOK_NAMES
    assert len(HOOK_NAMES) == len(set(HOOK_NAMES)) >= 10


@pytest.mark.parametrize("hook", HOOK_NAMES)
def test_each_hook_is_prefixed_annotated_and_documented(hook: str) -> None:
    function = getattr(hookspecs, hook)
    assert hook.startswith("billing_core_")
    doc = inspect.getdoc(function) or ""
    assert doc.splitlines() and doc.splitlines()[0].strip(), f"{hook} needs a docstring"
    hints = typing.get_type_hints(function)
    parameters = inspect.signature(function).parameters
    assert "return" in hints, f"{hook} needs a return annotation"
    for name in parameters:
        assert name in hints, f"{hook}'s argument {name} needs an annotation"


def test_every_function_in_hookspecs_that_looks_like_a_hook_is_one() -> None:
    lookalikes = [
        name for name, value in vars(hookspecs).items() if name.startswith("billing_core_")
    ]
    assert sorted(lookalikes) == sorted(HOOK_NAMES)


def test_every_hook_has_a_test() -> None:
    missing = sorted(set(HOOK_NAMES) - set(HOOK_TESTS))
    assert not missing, f"hooks without a test in {__name__}: {missing}"
    assert set(HOOK_TESTS) <= set(HOOK_NAMES), "a test names a hook that does not exist"


def test_every_event_class_has_its_hook_and_back() -> None:
    classes = [
        value
        for value in vars(events).values()
        if isinstance(value, type) and issubclass(value, events.Event) and value.hook
    ]
    by_hook = {cls.hook: cls for cls in classes}
    assert len(by_hook) == len(classes), "two events share a hook"
    event_hooks = [
        name
        for name in HOOK_NAMES
        if "event" in inspect.signature(getattr(hookspecs, name)).parameters
    ]
    assert sorted(by_hook) == sorted(event_hooks)
    for name in event_hooks:
        hints = typing.get_type_hints(getattr(hookspecs, name))
        assert hints["event"] is by_hook[name], f"{name} takes {by_hook[name].__name__}"
        assert hints["return"] is type(None)
        assert set(inspect.signature(getattr(hookspecs, name)).parameters) == {"event"}
        assert by_hook[name].__name__ in events.__all__


# -- one test per hook --------------------------------------------------------------------------
AT = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
USD = "USD"


def plugins_with(**impls: Callable[..., Any]) -> Plugins:
    plugin = types.SimpleNamespace(**{name: hookimpl(impl) for name, impl in impls.items()})
    return Plugins(entry_points=False, plugins=[plugin])


def check_event(event: events.Event) -> None:
    """Emitting ``event`` reaches a plugin implementing its hook, and only that hook."""
    received: list[tuple[str, events.Event]] = []
    impls = {
        name: (lambda event, _name=name: received.append((_name, event)))
        for name in HOOK_NAMES
        if "event" in inspect.signature(getattr(hookspecs, name)).parameters
    }
    plugins_with(**impls).emit(event)
    assert received == [(type(event).hook, event)]


def sale() -> Transaction:
    return Transaction(
        id="tx-1",
        amount=Money("100.00", USD),
        created_at=AT,
        settled=True,
        customer_id="cust-1",
    )


def refund_entry() -> QueueEntry:
    return QueueEntry(
        id="q-1",
        refund_transaction_id="rf-1",
        original_transaction_id="tx-1",
        amount=Money("40.00", USD),
        idempotency_key="refund-tx-1",
        created_at=AT,
        attempts=[Attempt(at=AT, outcome="declined", error="do_not_honor")],
        next_attempt_at=datetime(2026, 11, 22, 12, 0, tzinfo=UTC),
    )


@exercises("billing_core_payment_gateways")
def test_payment_gateways_hook() -> None:
    mine = SandboxGateway(name="mine")
    seen: list[Mapping[str, Any]] = []

    def billing_core_payment_gateways(settings: Mapping[str, Any]) -> Iterable[PaymentGateway]:
        seen.append(settings)
        return [mine]

    def billing_core_known_settings() -> Mapping[str, str]:
        return {"region": "where payments are processed"}

    plugins = Plugins(entry_points=False, settings={"region": "eu"})
    plugins.register(
        types.SimpleNamespace(
            billing_core_payment_gateways=hookimpl(billing_core_payment_gateways),
            billing_core_known_settings=hookimpl(billing_core_known_settings),
        )
    )
    assert plugins.gateways() == {"sandbox": plugins.gateway("sandbox"), "mine": mine}
    assert plugins.gateway("mine") is mine
    assert seen == [{"region": "eu"}], "called once, with the settings"


@exercises("billing_core_known_settings")
def test_known_settings_hook() -> None:
    def billing_core_known_settings() -> Mapping[str, str]:
        return {"acme_api_key": "the AcmePay secret key"}

    plugin = types.SimpleNamespace(
        billing_core_known_settings=hookimpl(billing_core_known_settings)
    )
    plugins = Plugins(entry_points=False, settings={"acme_api_key": "sk_test", "sandbox": True})
    plugins.register(plugin)
    assert set(plugins.known_settings()) == {"acme_api_key", "sandbox"}
    assert "sandbox" in plugins.gateways(), "declared keys pass the check"
    plugins.unregister(plugins.plugin_names()[-1])
    with pytest.raises(ConfigurationError, match="unknown setting 'acme_api_key'"):
        plugins.gateways()


@exercises("billing_core_certificate_providers")
def test_certificate_providers_hook() -> None:
    mine = SandboxCertificateProvider(name="acme-ca")

    def billing_core_certificate_providers() -> Iterable[CertificateProvider]:
        return [mine]

    plugins = plugins_with(billing_core_certificate_providers=billing_core_certificate_providers)
    assert set(plugins.certificate_providers()) == {"sandbox", "acme-ca"}
    assert plugins.certificate_provider("acme-ca") is mine


@exercises("billing_core_store")
def test_store_hook() -> None:
    opened: list[tuple[str, Mapping[str, Any]]] = []

    def billing_core_store(url: str, options: Mapping[str, Any]) -> Store | None:
        if not url.startswith("vault://"):
            return None
        opened.append((url, options))
        return MemoryStore()

    plugins = plugins_with(billing_core_store=billing_core_store)
    assert isinstance(plugins.store({"url": "vault://billing", "timeout": 5}), MemoryStore)
    assert opened == [("vault://billing", {"timeout": 5})]
    assert isinstance(plugins.store("memory://"), MemoryStore), "the built-in still answers"


@exercises("billing_core_choose_gateway")
def test_choose_gateway_hook() -> None:
    asked: list[tuple[str, str | None, list[str]]] = []

    def billing_core_choose_gateway(
        request: GatewayRequest,
        customer: Customer | None,
        gateways: Mapping[str, PaymentGateway],
    ) -> str | None:
        asked.append((request.transaction_id, customer.country if customer else None, [*gateways]))
        return "eu" if customer is not None and customer.country == "DE" else None

    def billing_core_payment_gateways() -> Iterable[PaymentGateway]:
        return [SandboxGateway(name="eu")]

    plugins = plugins_with(
        billing_core_choose_gateway=billing_core_choose_gateway,
        billing_core_payment_gateways=billing_core_payment_gateways,
    )
    plugins.default_gateway = "sandbox"
    request = GatewayRequest(
        operation=GatewayOperation.SALE,
        transaction_id="tx-1",
        idempotency_key="k",
        amount=Money("10.00", "EUR"),
    )
    german = Customer(id="c1", company="GmbH", country="DE")
    assert plugins.gateway(request=request, customer=german).name == "eu"
    assert plugins.gateway(request=request, customer=None).name == "sandbox"
    assert asked == [("tx-1", "DE", ["sandbox", "eu"]), ("tx-1", None, ["sandbox", "eu"])]


@exercises("billing_core_refund_issued")
def test_refund_issued_hook() -> None:
    refund = Transaction(
        id="rf-1",
        amount=Money("40.00", USD),
        created_at=AT,
        kind=TransactionKind.REFUND,
        parent_id="tx-1",
    )
    original = attrs.evolve(
        sale(), refunded=Money("40.00", USD), status=TransactionStatus.PARTIALLY_REFUNDED
    )
    check_event(events.RefundIssued(at=AT, refund=refund, original=original, gateway="sandbox"))


@exercises("billing_core_void_issued")
def test_void_issued_hook() -> None:
    void = Transaction(
        id="vd-1", amount=Money("100.00", USD), created_at=AT, kind=TransactionKind.VOID
    )
    original = attrs.evolve(sale(), settled=False, status=TransactionStatus.VOIDED)
    check_event(events.VoidIssued(at=AT, void=void, original=original, gateway="sandbox"))


@exercises("billing_core_refund_failed")
def test_refund_failed_hook() -> None:
    check_event(
        events.RefundFailed(
            at=AT, entry=refund_entry(), error="Bank says no", decline_code="do_not_honor"
        )
    )


@exercises("billing_core_refund_gave_up")
def test_refund_gave_up_hook() -> None:
    event = events.RefundGaveUp(
        at=AT,
        entry=refund_entry(),
        notify_emails=["billing@example.com", "ops@example.com"],
        subject="Refund of 40.00 USD for tx-1 failed",
        message="The refund of 40.00 USD for transaction tx-1 failed 4 times; it left the queue.",
        detail={"transaction_id": "tx-1", "amount": "40.00", "currency": USD},
    )
    assert event.notify_emails == ("billing@example.com", "ops@example.com")
    check_event(event)


@exercises("billing_core_certificate_cancellation_requested")
def test_certificate_cancellation_requested_hook() -> None:
    certificate = Certificate(id="cert-1", domain="example.com", status=CertificateStatus.ISSUED)
    check_event(
        events.CertificateCancellation(
            at=AT, certificate=certificate, state=CancellationState.REQUESTED, provider="sandbox"
        )
    )


@exercises("billing_core_outcome_unknown")
def test_outcome_unknown_hook() -> None:
    request = GatewayRequest(
        operation=GatewayOperation.REFUND,
        transaction_id="rf-1",
        idempotency_key="refund-tx-1",
        amount=Money("40.00", USD),
        parent_transaction_id="tx-1",
        parent_reference="ch_000001",
    )
    pending = Transaction(
        id="rf-1",
        amount=Money("40.00", USD),
        created_at=AT,
        kind=TransactionKind.REFUND,
        status=TransactionStatus.UNKNOWN,
    )
    check_event(
        events.OutcomeUnknown(at=AT, transaction=pending, request=request, gateway="sandbox")
    )


@exercises("billing_core_outcome_reconciled")
def test_outcome_reconciled_hook() -> None:
    outcome = GatewayOutcome(
        status=OutcomeStatus.SUCCEEDED, reference="re_000002", amount=Money("40.00", USD)
    )
    done = Transaction(
        id="rf-1", amount=Money("40.00", USD), created_at=AT, kind=TransactionKind.REFUND
    )
    check_event(
        events.OutcomeReconciled(at=AT, transaction=done, outcome=outcome, gateway="sandbox")
    )


def subscription() -> Subscription:
    return Subscription(
        id="sub-1",
        customer_id="cust-1",
        term=Period.years(1),
        start=date(2026, 11, 21),
        inventory={"wildcard": 2},
    )


@exercises("billing_core_subscription_added")
def test_subscription_added_hook() -> None:
    check_event(events.SubscriptionAdded(at=AT, subscription=subscription(), charge=sale()))


@exercises("billing_core_subscription_renewed")
def test_subscription_renewed_hook() -> None:
    renewed = attrs.evolve(subscription(), start=date(2027, 11, 21))
    check_event(events.SubscriptionRenewed(at=AT, subscription=renewed))


CARD = PaymentInstrument(id="pi-1", fingerprint="fp-1")


@exercises("billing_core_collection_attempted")
def test_collection_attempted_hook() -> None:
    check_event(
        events.CollectionAttempted(
            at=AT, transaction=sale(), instrument=CARD, attempt=1, gateway="sandbox"
        )
    )


@exercises("billing_core_collection_declined")
def test_collection_declined_hook() -> None:
    check_event(
        events.CollectionDeclined(
            at=AT,
            transaction=sale(),
            instrument=CARD,
            attempt=1,
            gateway="sandbox",
            decline_code="card_declined",
            next_instrument_id="pi-2",
        )
    )


@exercises("billing_core_collection_succeeded")
def test_collection_succeeded_hook() -> None:
    check_event(
        events.CollectionSucceeded(
            at=AT, transaction=sale(), instrument=None, attempt=2, gateway="sandbox"
        )
    )


@exercises("billing_core_subscription_past_due")
def test_subscription_past_due_hook() -> None:
    past_due = attrs.evolve(subscription(), state=SubscriptionState.PAST_DUE)
    check_event(events.SubscriptionPastDue(at=AT, subscription=past_due, explanation="Declined."))


def _invoice() -> Invoice:
    totals = InvoiceTotals(
        subtotal=Money("100.00", "EUR"),
        discount=Money("0.00", "EUR"),
        tax=Money("20.00", "EUR"),
        total=Money("120.00", "EUR"),
        credit_applied=Money("0.00", "EUR"),
        amount_due=Money("120.00", "EUR"),
    )
    return Invoice(
        id="in-1",
        customer_id="cust-1",
        currency="EUR",
        status="open",
        number="INV-000001",
        issued_on=date(2026, 11, 21),
        totals=totals,
    )


@exercises("billing_core_invoice_issued")
def test_invoice_issued_hook() -> None:
    check_event(events.InvoiceIssued(at=AT, invoice=_invoice()))


@exercises("billing_core_collection_gave_up")
def test_collection_gave_up_hook() -> None:
    stopped = attrs.evolve(_invoice(), collection_attempts=4, collection_stopped="gave_up")
    check_event(
        events.CollectionGaveUp(
            at=AT,
            invoice=stopped,
            attempts=4,
            notify_emails=["billing@example.com"],
            explanation="Declined 4 times.",
            subscription=subscription(),
        )
    )


@exercises("billing_core_subscription_cancelled_for_delinquency")
def test_subscription_cancelled_for_delinquency_hook() -> None:
    cancelled = attrs.evolve(subscription(), state=SubscriptionState.CANCELLED)
    check_event(
        events.SubscriptionCancelledForDelinquency(
            at=AT, subscription=cancelled, invoice=_invoice(), explanation="Delinquent."
        )
    )


@exercises("billing_core_invoice_paid")
def test_invoice_paid_hook() -> None:
    paid = attrs.evolve(_invoice(), status="paid", amount_paid=Money("120.00", "EUR"))
    check_event(events.InvoicePaid(at=AT, invoice=paid, payment=sale()))


@exercises("billing_core_invoice_voided")
def test_invoice_voided_hook() -> None:
    check_event(events.InvoiceVoided(at=AT, invoice=attrs.evolve(_invoice(), status="void")))


@exercises("billing_core_subscription_abandoned")
def test_subscription_abandoned_hook() -> None:
    check_event(
        events.SubscriptionAbandoned(
            at=AT,
            subscription=attrs.evolve(subscription(), state="cancelled"),
            explanation="Subscription sub-1: created 2026-10-01 and not activated within 30 days.",
        )
    )


@exercises("billing_core_renewal_gave_up")
def test_renewal_gave_up_hook() -> None:
    check_event(
        events.RenewalGaveUp(
            at=AT,
            subscription=subscription(),
            attempts=4,
            notify_emails=["billing@example.com"],
            explanation="Subscription sub-1: its renewal is still unpaid.",
        )
    )


@exercises("billing_core_invoice_marked_uncollectible")
def test_invoice_marked_uncollectible_hook() -> None:
    check_event(
        events.InvoiceMarkedUncollectible(
            at=AT,
            invoice=attrs.evolve(_invoice(), status="uncollectible"),
            explanation="Invoice INV-000001 is written off.",
        )
    )


@exercises("billing_core_outside_payment_recorded")
def test_outside_payment_recorded_hook() -> None:
    invoice = _invoice()
    check_event(
        events.OutsidePaymentRecorded(
            at=AT, invoice=invoice, amount=Money("1.00", invoice.currency), reference="cheque 42"
        )
    )


@exercises("billing_core_credit_memo_created")
def test_credit_memo_created_hook() -> None:
    item = CreditMemoItem(description="seat", quantity=1, unit_price=Money("9.99", "EUR"))
    memo = CreditMemo(
        id="cm-1",
        customer_id="cust-1",
        number="CN-000001",
        items=(item,),
        total=Money("9.99", "EUR"),
        remaining=Money("9.99", "EUR"),
        created_at=AT,
    )
    check_event(events.CreditMemoCreated(at=AT, memo=memo))


def test_events_refuse_a_naive_instant() -> None:
    with pytest.raises(ValueError, match=r"\$\.at"):
        events.SubscriptionAdded(at=datetime(2026, 11, 21), subscription=subscription())  # noqa: DTZ001


# -- docs/hooks.md ------------------------------------------------------------------------------
def _annotation(cls: type, name: str) -> object:
    """A field's annotation as written (a string, under ``from __future__ import annotations``):
    not ``attrs.fields(cls).type``, which cattrs replaces by the resolved type once an event has
    been serialized (the outbox does), so the rendering would depend on the tests run before."""
    for klass in cls.__mro__:
        annotations = vars(klass).get("__annotations__", {})
        if name in annotations:
            return annotations[name]
    raise AssertionError(f"{cls.__name__}.{name} has no annotation")


def render_reference() -> str:
    """The generated part of docs/hooks.md: each hook's signature, options and docstring."""
    out: list[str] = []
    for function in hook_functions():
        options = getattr(function, f"{PROJECT}_spec")
        signature = inspect.signature(function)
        params = ", ".join(f"{p.name}: {p.annotation}" for p in signature.parameters.values())
        # a stub (``: ...``), so that tests/test_docs.py runs it like every other block
        head = f"def {function.__name__}({params}) -> {signature.return_annotation}: ..."
        if len(head) > 96:
            lines = [f"    {p.name}: {p.annotation}," for p in signature.parameters.values()]
            head = "\n".join(
                [f"def {function.__name__}(", *lines, f") -> {signature.return_annotation}: ..."]
            )
        out += [f"### `{function.__name__}`", "", "```python", head, "```", ""]
        if options.get("firstresult"):
            out += ["*firstresult*: the first non-None answer wins.", ""]
        out += [inspect.getdoc(function) or "", ""]
        event = typing.get_type_hints(function).get("event")
        if isinstance(event, type) and attrs.has(event):
            fields = ", ".join(
                f"`{f.name}: {_annotation(event, f.name)}`" for f in attrs.fields(event)
            )
            out += [f"`{event.__name__}` ({event.__module__}): {fields}.", ""]
    return "\n".join(out).rstrip() + "\n"


def current_hooks_md() -> str:
    text = HOOKS_MD.read_text(encoding="utf-8")
    head, _, rest = text.partition(BEGIN + "\n")
    _, _, tail = rest.partition(END)
    return head + BEGIN + "\n" + render_reference() + END + tail


def test_docs_hooks_md_matches_the_hookspecs() -> None:
    text = HOOKS_MD.read_text(encoding="utf-8")
    assert BEGIN in text
    assert END in text
    assert text == current_hooks_md(), (
        "docs/hooks.md is out of date: run .venv/bin/python tests/test_hookspecs.py"
    )


if __name__ == "__main__":
    HOOKS_MD.write_text(current_hooks_md(), encoding="utf-8")
    print(f"wrote {HOOKS_MD}", file=sys.stderr)


def test_the_event_recorder_implements_every_event_hook() -> None:
    """``billing_core.testing.events.EventRecorder`` listens to every event hook, so a new event
    is recorded by the tests that use it."""
    from billing_core.testing.events import EventRecorder

    event_hooks = {
        cls.hook
        for name in events.__all__
        if isinstance(cls := getattr(events, name), type)
        and issubclass(cls, events.Event)
        and cls.hook
    }
    assert len(event_hooks) >= 20
    recorder = EventRecorder()
    assert set(recorder.hooks()) == event_hooks
    plugins = Plugins(clock=lambda: AT, entry_points=False, plugins=[recorder])
    voided = events.InvoiceVoided(at=AT, invoice=attrs.evolve(_invoice(), status="void"))
    plugins.emit(voided)
    assert recorder.of(events.InvoiceVoided) == [voided]
    assert recorder.of(events.InvoicePaid) == []
