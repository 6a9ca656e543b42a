"""The ``MemoryStore``'s invoice tables: pending invoice lines, invoices and their numbering.

A mixin of the memory session (``memory_store``), on its copy-on-write tables:

* ``invoice_lines``: ``seq -> PendingLine`` (every line ever added, in added order), with
  ``invoice_lines_by_sub``: ``subscription_id -> (seq, ...)``;
* ``invoices``: ``id -> Invoice`` (insertion-ordered), ``invoice_numbers``: ``number -> id``;
* ``invoice_counters``: ``prefix -> last number given``.

The memory store runs one session at a time, so taking lines and counting need no more than its
lock; a session that raises discards its counter increments and its taken lines with the rest.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date
from typing import Any

import attrs

from ..errors import ConflictError, NotFoundError
from ..invoices import Invoice, InvoiceStatus
from ..model import InvoiceLine
from ._store_common import check_instance, check_sequence, state_set
from ._store_invoice_common import check_prefix, check_take, optional_date
from .records import CouponRedemption, CreditMemo, TaxProfile

__all__ = ["INVOICE_TABLES", "MemoryInvoiceTables", "PendingLine"]

INVOICE_TABLES = (
    "invoice_lines",
    "invoice_lines_by_sub",
    "invoices",
    "invoice_numbers",
    "invoice_counters",
    "credit_memos",
    "coupon_redemptions",
    "tax_profiles",
)


@attrs.frozen(kw_only=True)
class PendingLine:
    """One stored invoice line: whose, from when it is due, and the invoice that took it."""

    subscription_id: str
    line: InvoiceLine
    billed_on: date | None = None
    invoice_id: str | None = None

    def due(self, up_to: date) -> bool:
        return self.invoice_id is None and (self.billed_on is None or self.billed_on <= up_to)


class MemoryInvoiceTables:
    """The invoice methods of ``StoreSession`` on the memory store's tables."""

    def _read(self, name: str) -> Any:  # pragma: no cover - the session defines it
        raise NotImplementedError

    def _write(self, name: str) -> Any:  # pragma: no cover - the session defines it
        raise NotImplementedError

    # -- pending lines ----------------------------------------------------------------------
    def add_invoice_lines(
        self, subscription_id: str, lines: Sequence[InvoiceLine], *, billed_on: date | None = None
    ) -> None:
        check_sequence(lines, InvoiceLine, "lines")
        optional_date(billed_on, "billed_on")
        if not lines:
            return
        table = self._write("invoice_lines")
        by_sub = self._write("invoice_lines_by_sub")
        seqs = list(by_sub.get(subscription_id, ()))
        for line in lines:
            seq = len(table)
            table[seq] = PendingLine(
                subscription_id=subscription_id, line=line, billed_on=billed_on
            )
            seqs.append(seq)
        by_sub[subscription_id] = tuple(seqs)

    def _lines_of(self, subscription_id: str) -> list[tuple[int, PendingLine]]:
        table = self._read("invoice_lines")
        return [
            (seq, table[seq]) for seq in self._read("invoice_lines_by_sub").get(subscription_id, ())
        ]

    def invoice_lines(self, subscription_id: str) -> list[InvoiceLine]:
        return [p.line for _, p in self._lines_of(subscription_id)]

    def pending_invoice_lines(self, subscription_id: str) -> list[InvoiceLine]:
        return [p.line for _, p in self._lines_of(subscription_id) if p.invoice_id is None]

    def pending_line_groups(self, *, up_to: date) -> list[tuple[str, str]]:
        optional_date(up_to, "up_to", required=True)
        groups: dict[tuple[str, str], None] = {}
        for pending in self._read("invoice_lines").values():
            if pending.due(up_to):
                groups.setdefault((pending.subscription_id, pending.line.amount.currency))
        return list(groups)

    def take_pending_lines(
        self, subscription_ids: Sequence[str], *, currency: str, up_to: date, invoice_id: str
    ) -> list[InvoiceLine]:
        check_take(subscription_ids, currency, up_to, invoice_id)
        taken: list[tuple[int, PendingLine]] = []
        for sub in dict.fromkeys(subscription_ids):
            taken.extend(
                (seq, p)
                for seq, p in self._lines_of(sub)
                if p.due(up_to) and p.line.amount.currency == currency
            )
        if taken:
            table = self._write("invoice_lines")
            for seq, pending in taken:
                table[seq] = attrs.evolve(pending, invoice_id=invoice_id)
        return [p.line for _, p in taken]

    # -- invoices ---------------------------------------------------------------------------
    def _check_number(self, invoice: Invoice) -> None:
        if invoice.number is None:
            return
        owner = self._read("invoice_numbers").get(invoice.number)
        if owner is not None and owner != invoice.id:
            raise ConflictError(
                f"invoice number {invoice.number!r} is invoice {owner!r}'s",
                field="invoice.number",
                value=invoice.number,
            )

    def _put(self, invoice: Invoice) -> None:
        old: Invoice | None = self._read("invoices").get(invoice.id)
        self._write("invoices")[invoice.id] = invoice
        if old is not None and old.number is not None and old.number != invoice.number:
            del self._write("invoice_numbers")[old.number]
        if invoice.number is not None:
            self._write("invoice_numbers")[invoice.number] = invoice.id

    def insert_invoice(self, invoice: Invoice) -> None:
        check_instance(invoice, Invoice, "invoice")
        if invoice.id in self._read("invoices"):
            raise ConflictError(
                f"an invoice with id {invoice.id!r} already exists",
                field="invoice.id",
                value=invoice.id,
            )
        self._check_number(invoice)
        self._put(invoice)

    def update_invoice(self, invoice: Invoice) -> None:
        check_instance(invoice, Invoice, "invoice")
        if invoice.id not in self._read("invoices"):
            raise NotFoundError(
                f"no invoice with id {invoice.id!r}", field="invoice.id", value=invoice.id
            )
        self._check_number(invoice)
        self._put(invoice)

    def get_invoice(self, invoice_id: str, *, lock: bool = False) -> Invoice | None:
        result: Invoice | None = self._read("invoices").get(invoice_id)
        return result

    def list_invoices(
        self,
        *,
        customer_id: str | None = None,
        statuses: Iterable[InvoiceStatus] | None = None,
    ) -> list[Invoice]:
        wanted = state_set(statuses, InvoiceStatus, "statuses")
        return [
            i
            for i in self._read("invoices").values()
            if (customer_id is None or i.customer_id == customer_id)
            and (wanted is None or i.status in wanted)
        ]

    def next_invoice_number(self, prefix: str) -> int:
        check_prefix(prefix)
        counters = self._write("invoice_counters")
        counters[prefix] = counters.get(prefix, 0) + 1
        result: int = counters[prefix]
        return result

    # -- credit memos and coupon redemptions ------------------------------------------------
    def put_credit_memo(self, memo: CreditMemo) -> None:
        check_instance(memo, CreditMemo, "memo")
        self._write("credit_memos")[memo.id] = memo

    def get_credit_memo(self, memo_id: str, *, lock: bool = False) -> CreditMemo | None:
        result: CreditMemo | None = self._read("credit_memos").get(memo_id)
        return result

    def list_credit_memos(
        self, *, customer_id: str | None = None, lock: bool = False
    ) -> list[CreditMemo]:
        return [
            m
            for m in self._read("credit_memos").values()
            if customer_id is None or m.customer_id == customer_id
        ]

    def put_coupon_redemption(self, redemption: CouponRedemption) -> None:
        check_instance(redemption, CouponRedemption, "redemption")
        self._write("coupon_redemptions")[redemption.id] = redemption

    def list_coupon_redemptions(
        self, *, customer_id: str | None = None, coupon_id: str | None = None
    ) -> list[CouponRedemption]:
        return [
            r
            for r in self._read("coupon_redemptions").values()
            if (customer_id is None or r.customer_id == customer_id)
            and (coupon_id is None or r.coupon.id == coupon_id)
        ]

    def put_tax_profile(self, profile: TaxProfile) -> None:
        check_instance(profile, TaxProfile, "profile")
        self._write("tax_profiles")[profile.customer_id] = profile

    def get_tax_profile(self, customer_id: str) -> TaxProfile | None:
        result: TaxProfile | None = self._read("tax_profiles").get(customer_id)
        return result
