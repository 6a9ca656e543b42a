"""The store contract, part 4: invoices, pending invoice lines and gapless invoice numbering.

Private: use ``billing_core.testing.store_contract.StoreContract``.
"""

from __future__ import annotations

import functools
import threading
from datetime import date
from decimal import Decimal
from typing import Any

import attrs
import pytest

from ..errors import ConflictError, InvalidTypeError, NotFoundError
from ..invoices import (
    Coupon,
    CreditMemoItem,
    Invoice,
    InvoiceStatus,
    InvoiceTotals,
    TaxExemption,
    TaxRate,
)
from ..model import InvoiceLine, InvoiceLineKind
from ..money import Money
from ..plugins.protocols import Store
from ..plugins.records import CouponRedemption, CreditMemo, TaxProfile
from ._store_record_contract import T0, Boom, _in_thread, assert_same

D0 = date(2026, 4, 1)


def _eur(amount: str) -> Money:
    return Money(amount, "EUR")


def _line(n: int, currency: str = "EUR", amount: str = "10.00") -> InvoiceLine:
    return InvoiceLine(
        description=f"line {n}",
        amount=Money(amount, currency),
        kind=InvoiceLineKind.PRORATION,
        quantity=Decimal("1.50"),
        unit_price=Money("6.666", currency),
        period_start=D0,
        period_end=date(2026, 5, 1),
        subscription_id="s-1",
    )


def _totals(amount: str = "120.00") -> InvoiceTotals:
    return InvoiceTotals(
        subtotal=_eur("100.00"),
        discount=_eur("0.00"),
        tax=_eur("20.00"),
        total=_eur(amount),
        credit_applied=_eur("0.00"),
        amount_due=_eur(amount),
        tax_amounts=(_eur("20.00"),),
        explanation="Subtotal 100.00 EUR ...",
    )


def _invoice(iid: str = "in-1", **kw: Any) -> Invoice:
    values: dict[str, Any] = {
        "id": iid,
        "customer_id": "c-1",
        "currency": "EUR",
        "lines": (_line(1),),
        "coupons": (Coupon(id="spring", percent_off=Decimal("20.0")),),
        "tax_rates": (TaxRate(name="VAT", percent=Decimal("20")),),
        "exemption": TaxExemption(status="in_review", document_id="TX-1"),
        "notes": "Thank you",
        "created_at": T0,
    }
    values.update(kw)
    return Invoice(**values)


def _issued(iid: str = "in-1", number: str = "INV-000001", **kw: Any) -> Invoice:
    return _invoice(
        iid, status=InvoiceStatus.OPEN, number=number, issued_on=D0, totals=_totals(), **kw
    )


class InvoiceContract:
    """Invoices round-trip; lines are taken once; numbers are gapless, unique, and given back by
    a rolled back session; concurrent issuers never share a line or a number."""

    threads = 8

    # -- invoices ---------------------------------------------------------------------------
    def test_invoice_round_trip_filters_and_update(self, store: Store) -> None:
        draft = _invoice()
        issued = _issued(
            "in-2",
            customer_id="c-2",
            payments=("tx-1",),
            payments_in_flight=(("pay-2", _eur("10.50")),),
        )
        with store.session() as s:
            assert s.get_invoice("in-1") is None
            s.insert_invoice(draft)
            s.insert_invoice(issued)
        with store.session() as s:
            assert_same(s.get_invoice("in-1"), draft)
            assert_same(s.get_invoice("in-2", lock=True), issued)
            assert [i.id for i in s.list_invoices()] == ["in-1", "in-2"]
            assert [i.id for i in s.list_invoices(customer_id="c-2")] == ["in-2"]
            assert [i.id for i in s.list_invoices(statuses=[InvoiceStatus.DRAFT])] == ["in-1"]
            assert s.list_invoices(customer_id="c-1", statuses=[InvoiceStatus.OPEN]) == []
            numbered = _issued("in-1", number="INV-000002")
            s.update_invoice(numbered)
        with store.session() as s:
            assert_same(s.get_invoice("in-1"), numbered)
            assert [i.id for i in s.list_invoices()] == ["in-1", "in-2"]  # keeps its place
            assert [i.id for i in s.list_invoices(statuses=[InvoiceStatus.OPEN])] == [
                "in-1",
                "in-2",
            ]

    def test_invoice_conflicts_and_missing(self, store: Store) -> None:
        with store.session() as s:
            s.insert_invoice(_issued())
        with store.session() as s:
            with pytest.raises(ConflictError):
                s.insert_invoice(_invoice())
            assert s.get_invoice("in-1") == _issued()  # the session goes on
            with pytest.raises(NotFoundError):
                s.update_invoice(_invoice("in-9"))
            with pytest.raises(InvalidTypeError):
                s.insert_invoice("in-3")  # type: ignore[arg-type]
        with pytest.raises(ConflictError), store.session() as s:  # a number is one invoice's
            s.insert_invoice(_issued("in-2"))
        with store.session() as s:
            assert s.get_invoice("in-2") is None

    # -- numbering --------------------------------------------------------------------------
    def test_numbers_count_per_prefix_and_a_rollback_gives_its_number_back(
        self, store: Store
    ) -> None:
        with store.session() as s:
            assert [s.next_invoice_number("INV-") for _ in range(3)] == [1, 2, 3]
            assert s.next_invoice_number("") == 1

        def number_then_fail() -> None:
            with store.session() as s:
                assert s.next_invoice_number("INV-") == 4
                raise Boom

        with pytest.raises(Boom):
            number_then_fail()
        with store.session() as s:
            assert s.next_invoice_number("INV-") == 4
            assert s.next_invoice_number("CN-") == 1
        with pytest.raises(InvalidTypeError), store.session() as s:
            s.next_invoice_number(7)  # type: ignore[arg-type]

    # -- pending lines ----------------------------------------------------------------------
    def test_pending_lines_are_taken_once_in_order(self, store: Store) -> None:
        usd = _line(9, "USD")
        with store.session() as s:
            s.add_invoice_lines("s-1", [_line(1), _line(2)])
            s.add_invoice_lines("s-2", [_line(3), usd])
            s.add_invoice_lines("s-1", [_line(4)], billed_on=date(2026, 4, 10))
            s.add_invoice_lines("s-3", [])
        with store.session() as s:
            assert s.pending_line_groups(up_to=D0) == [
                ("s-1", "EUR"),
                ("s-2", "EUR"),
                ("s-2", "USD"),
            ]
            taken = s.take_pending_lines(["s-2", "s-1"], currency="EUR", up_to=D0, invoice_id="i-1")
            assert [line.description for line in taken] == ["line 3", "line 1", "line 2"]
            assert_same(taken[1], _line(1))
            assert (
                s.take_pending_lines(["s-1", "s-2"], currency="EUR", up_to=D0, invoice_id="i-2")
                == []
            )
            assert s.pending_line_groups(up_to=D0) == [("s-2", "USD")]
            assert s.pending_line_groups(up_to=date(2026, 4, 10)) == [
                ("s-2", "USD"),
                ("s-1", "EUR"),
            ]
            assert s.pending_invoice_lines("s-1") == [_line(4)]
            assert s.invoice_lines("s-1") == [_line(1), _line(2), _line(4)]  # every line, still
        with store.session() as s:
            late = s.take_pending_lines(
                ["s-1"], currency="EUR", up_to=date(2026, 4, 10), invoice_id="i-3"
            )
            assert late == [_line(4)]
            assert s.take_pending_lines(["s-2"], currency="USD", up_to=D0, invoice_id="i-4") == [
                usd
            ]
            assert s.pending_line_groups(up_to=date(2027, 1, 1)) == []

    def test_a_rolled_back_take_leaves_the_lines_pending(self, store: Store) -> None:
        with store.session() as s:
            s.add_invoice_lines("s-1", [_line(1)])

        def take_then_fail() -> None:
            with store.session() as s:
                assert s.take_pending_lines(["s-1"], currency="EUR", up_to=D0, invoice_id="i-1")
                raise Boom

        with pytest.raises(Boom):
            take_then_fail()
        with store.session() as s:
            assert s.pending_invoice_lines("s-1") == [_line(1)]
            with pytest.raises(InvalidTypeError):
                s.take_pending_lines("s-1", currency="EUR", up_to=D0, invoice_id="i-1")
            with pytest.raises(InvalidTypeError):
                s.add_invoice_lines("s-1", [_line(2)], billed_on=T0)

    def test_concurrent_issuers_share_no_line_and_no_number(self, store: Store) -> None:
        subs = [f"s-{i}" for i in range(self.threads * 2)]
        with store.session() as s:
            for sub in subs:
                s.add_invoice_lines(sub, [_line(1), _line(2)])
        issued: list[tuple[int, str, list[InvoiceLine]]] = []
        lock = threading.Lock()

        def issue(worker: int) -> None:
            for sub in subs:  # every worker tries every subscription, as a cron on many hosts
                for _ in range(20):
                    try:
                        with store.session() as s:
                            inv = f"i-{worker}-{sub}"
                            lines = s.take_pending_lines(
                                [sub], currency="EUR", up_to=D0, invoice_id=inv
                            )
                            if not lines:
                                break
                            n = s.next_invoice_number("INV-")
                            s.insert_invoice(
                                _issued(inv, number=f"INV-{n:06d}", lines=tuple(lines))
                            )
                        with lock:
                            issued.append((n, sub, lines))
                        break
                    except ConflictError:  # a serialization failure: retry the whole session
                        continue

        started = [_in_thread(functools.partial(issue, w)) for w in range(self.threads)]
        for thread, errors in started:
            thread.join(120)
            assert not errors, errors
        assert sorted(n for n, _, _ in issued) == list(range(1, len(subs) + 1))
        assert sorted(sub for _, sub, _ in issued) == sorted(subs)
        assert all(len(lines) == 2 for _, _, lines in issued)
        with store.session() as s:
            assert len(s.list_invoices()) == len(subs)
            assert s.pending_line_groups(up_to=D0) == []

    # -- credit memos and coupon redemptions ------------------------------------------------
    def test_credit_memos_and_redemptions_round_trip(self, store: Store) -> None:
        item = CreditMemoItem(
            description="2 seats", quantity=2, unit_price=_eur("9.99"), tax=_eur("4.00")
        )
        memo = CreditMemo(
            id="cm-1",
            customer_id="c-1",
            number="CN-000001",
            items=(item,),
            total=_eur("23.98"),
            remaining=_eur("23.98"),
            created_at=T0,
            reason="unused seats",
            invoice_id="in-1",
        )
        other = CreditMemo(
            id="cm-2",
            customer_id="c-2",
            number="CN-000002",
            items=(item,),
            total=_eur("23.98"),
            remaining=_eur("23.98"),
            created_at=T0,
        )
        coupon = Coupon(id="welcome", amount_off=_eur("12.00"), max_redemptions=3)
        redeemed = CouponRedemption(id="r-1", coupon=coupon, customer_id="c-1", redeemed_at=T0)
        with store.session() as s:
            s.put_credit_memo(memo)
            s.put_credit_memo(other)
            s.put_coupon_redemption(redeemed)
            s.put_coupon_redemption(attrs.evolve(redeemed, id="r-2", customer_id="c-2"))
        drawn = attrs.evolve(memo, remaining=_eur("3.98"), applied=(("in-2", _eur("20.00")),))
        used = attrs.evolve(redeemed, periods_applied=1, amount_used=_eur("10.00"))
        with store.session() as s:
            assert_same(s.get_credit_memo("cm-1", lock=True), memo)
            assert s.get_credit_memo("cm-9") is None
            s.put_credit_memo(drawn)
            s.put_coupon_redemption(used)
        with store.session() as s:
            assert_same(s.list_credit_memos(customer_id="c-1", lock=True), [drawn])
            assert [m.id for m in s.list_credit_memos()] == ["cm-1", "cm-2"]
            assert_same(s.list_coupon_redemptions(customer_id="c-1"), [used])
            assert [r.id for r in s.list_coupon_redemptions(coupon_id="welcome")] == ["r-1", "r-2"]
            assert s.list_coupon_redemptions(coupon_id="other") == []
            with pytest.raises(InvalidTypeError):
                s.put_credit_memo("cm-3")  # type: ignore[arg-type]

    def test_tax_profiles_round_trip(self, store: Store) -> None:
        document = TaxExemption(status="valid", valid_until=D0, document_id="TX-9", tax_id="DE1")
        profile = TaxProfile(customer_id="c-1", tax_ids=("DE123",), exemptions=(document,))
        with store.session() as s:
            assert s.get_tax_profile("c-1") is None
            s.put_tax_profile(profile)
            s.put_tax_profile(TaxProfile(customer_id="c-2"))
        with store.session() as s:
            assert_same(s.get_tax_profile("c-1"), profile)
            s.put_tax_profile(attrs.evolve(profile, tax_ids=()))
        with store.session() as s:
            assert s.get_tax_profile("c-1") == attrs.evolve(profile, tax_ids=())
            assert s.get_tax_profile("c-2") == TaxProfile(customer_id="c-2")
