"""The ``SqlStore``'s invoice tables: pending invoice lines, invoices and gapless numbering.

A mixin of the SQL session (``sql_store``), one code path for SQLite and PostgreSQL:

* **Pending lines** (``invoice_lines``): a line is pending while its ``invoice_id`` is NULL.
  ``take_pending_lines`` is one ``UPDATE ... SET invoice_id = :invoice WHERE invoice_id IS NULL
  ... RETURNING``. On PostgreSQL the issuer first takes a transaction-scoped advisory lock per
  subscription and currency without waiting (``pg_try_advisory_xact_lock``): subscriptions
  another issuer is taking right now are left to it whole, so one subscription's lines are never
  split over two invoices; the UPDATE re-checks ``invoice_id IS NULL`` on the committed row. On
  SQLite the session holds the write lock. So a line is taken once, an invoice takes all of its
  subscriptions' due lines, and a rolled back session leaves them pending (for the next run).
* **Numbering** (``invoice_counters``): ``INSERT ... ON CONFLICT (prefix) DO UPDATE SET n = n + 1
  RETURNING n``, in the issuing session. The counter row stays locked until that session ends
  (a row lock on PostgreSQL, the write lock on SQLite), so the next issuer waits for the commit
  or the rollback: numbers are unique, gapless, and a rolled back number is given again.
* **Invoices** (``invoices``): the whole record as JSON, with ``customer_id``, ``status`` and a
  unique ``number`` beside it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import CursorResult

from ..errors import ConflictError, NotFoundError
from ..invoices import Invoice, InvoiceStatus
from ..model import InvoiceLine
from ._store_common import check_instance, check_sequence, state_set
from ._store_invoice_common import check_prefix, check_take, optional_date
from .records import CouponRedemption, CreditMemo, TaxProfile
from .sql_schema import (
    coupon_redemptions,
    credit_memos,
    decode,
    encode,
    invoice_counters,
    invoice_lines,
    invoices,
    tax_profiles,
)

__all__ = ["SqlInvoiceTables"]

_CHUNK = 500


class SqlInvoiceTables:
    """The invoice methods of ``StoreSession`` on the SQL store's tables."""

    _pg: bool

    def _exec(  # pragma: no cover - the session defines it
        self, stmt: sa.Executable, params: Any = None
    ) -> CursorResult[*tuple[Any, ...]]:
        raise NotImplementedError

    def _insert(  # pragma: no cover - the session defines it
        self, table: sa.Table
    ) -> postgresql.Insert | sqlite.Insert:
        raise NotImplementedError

    def _upsert(  # pragma: no cover - the session defines it
        self, table: sa.Table, key: str, values: dict[str, Any]
    ) -> None:
        raise NotImplementedError

    # -- pending lines ----------------------------------------------------------------------
    def add_invoice_lines(
        self, subscription_id: str, lines: Sequence[InvoiceLine], *, billed_on: date | None = None
    ) -> None:
        check_sequence(lines, InvoiceLine, "lines")
        optional_date(billed_on, "billed_on")
        rows = [
            {
                "subscription_id": subscription_id,
                "currency": line.amount.currency,
                "billed_on": billed_on,
                "data": encode(line, f"lines[{i}]"),
            }
            for i, line in enumerate(lines)
        ]
        for start in range(0, len(rows), _CHUNK):  # one row at a time keeps seq in list order
            self._exec(sa.insert(invoice_lines), rows[start : start + _CHUNK])

    def _lines(self, subscription_id: str, *where: Any) -> list[InvoiceLine]:
        t = invoice_lines
        stmt = sa.select(t.c.data).where(t.c.subscription_id == subscription_id, *where)
        return [decode(text, InvoiceLine) for text in self._exec(stmt.order_by(t.c.seq)).scalars()]

    def invoice_lines(self, subscription_id: str) -> list[InvoiceLine]:
        return self._lines(subscription_id)

    def pending_invoice_lines(self, subscription_id: str) -> list[InvoiceLine]:
        return self._lines(subscription_id, invoice_lines.c.invoice_id.is_(None))

    @staticmethod
    def _due(up_to: date) -> Any:
        t = invoice_lines
        return sa.and_(
            t.c.invoice_id.is_(None), sa.or_(t.c.billed_on.is_(None), t.c.billed_on <= up_to)
        )

    def pending_line_groups(self, *, up_to: date) -> list[tuple[str, str]]:
        optional_date(up_to, "up_to", required=True)
        t = invoice_lines
        first = sa.func.min(t.c.seq)
        stmt = (
            sa.select(t.c.subscription_id, t.c.currency, first)
            .where(self._due(up_to))
            .group_by(t.c.subscription_id, t.c.currency)
            .order_by(first)
        )
        return [(sub, currency) for sub, currency, _ in self._exec(stmt)]

    def take_pending_lines(
        self, subscription_ids: Sequence[str], *, currency: str, up_to: date, invoice_id: str
    ) -> list[InvoiceLine]:
        check_take(subscription_ids, currency, up_to, invoice_id)
        order = {sub: i for i, sub in enumerate(dict.fromkeys(subscription_ids))}
        if not order:
            return []
        t = invoice_lines
        where: tuple[Any, ...] = (
            t.c.subscription_id.in_(list(order)),
            t.c.currency == currency,
            self._due(up_to),
        )
        if self._pg and not self._claim_subscriptions(sorted(order), currency):
            return []  # another issuer is taking these subscriptions' lines right now: its own
        stmt = (
            sa.update(t)
            .where(*where)
            .values(invoice_id=invoice_id)
            .returning(t.c.seq, t.c.subscription_id, t.c.data)
        )
        rows = sorted(self._exec(stmt).all(), key=lambda r: (order[r[1]], r[0]))
        return [decode(data, InvoiceLine) for _, _, data in rows]

    def _claim_subscriptions(self, subscription_ids: Sequence[str], currency: str) -> bool:
        """PostgreSQL: take a transaction-scoped advisory lock per ``(subscription, currency)``,
        in sorted order, without waiting; False (take nothing) at the first one another issuer
        holds. Locking whole subscriptions, not rows, keeps an invoice whole: with row locks
        (``FOR UPDATE SKIP LOCKED``) two issuers could each lock some of one subscription's lines
        and split them over two invoices. The locks end with the session; the UPDATE that follows
        starts after them, so it sees every line an earlier issuer committed as taken."""
        for sub in subscription_ids:
            key = sa.func.hashtextextended(f"billing_core.invoice_lines:{sub}:{currency}", 0)
            if not self._exec(sa.select(sa.func.pg_try_advisory_xact_lock(key))).scalar_one():
                return False
        return True

    # -- invoices ---------------------------------------------------------------------------
    @staticmethod
    def _invoice_values(invoice: Invoice) -> dict[str, Any]:
        check_instance(invoice, Invoice, "invoice")
        return {
            "id": invoice.id,
            "customer_id": invoice.customer_id,
            "status": invoice.status.value,
            "number": invoice.number,
            "data": encode(invoice, "invoice"),
        }

    def insert_invoice(self, invoice: Invoice) -> None:
        values = self._invoice_values(invoice)
        stmt = (
            self._insert(invoices)
            .values(values)
            .on_conflict_do_nothing(index_elements=["id"])
            .returning(invoices.c.id)
        )
        if self._exec(stmt).first() is None:
            raise ConflictError(
                f"an invoice with id {invoice.id!r} already exists",
                field="invoice.id",
                value=invoice.id,
            )

    def update_invoice(self, invoice: Invoice) -> None:
        values = self._invoice_values(invoice)
        stmt = sa.update(invoices).where(invoices.c.id == invoice.id).values(values)
        if self._exec(stmt).rowcount == 0:
            raise NotFoundError(
                f"no invoice with id {invoice.id!r}", field="invoice.id", value=invoice.id
            )

    def get_invoice(self, invoice_id: str, *, lock: bool = False) -> Invoice | None:
        stmt = sa.select(invoices.c.data).where(invoices.c.id == invoice_id)
        if lock:
            stmt = stmt.with_for_update()  # SQLite: the session already holds the write lock
        text = self._exec(stmt).scalar_one_or_none()
        return None if text is None else decode(text, Invoice)

    def list_invoices(
        self,
        *,
        customer_id: str | None = None,
        statuses: Iterable[InvoiceStatus] | None = None,
    ) -> list[Invoice]:
        wanted = state_set(statuses, InvoiceStatus, "statuses")
        stmt = sa.select(invoices.c.data).order_by(invoices.c.seq)
        if customer_id is not None:
            stmt = stmt.where(invoices.c.customer_id == customer_id)
        if wanted is not None:
            stmt = stmt.where(invoices.c.status.in_([s.value for s in wanted]))
        return [decode(text, Invoice) for text in self._exec(stmt).scalars()]

    def next_invoice_number(self, prefix: str) -> int:
        check_prefix(prefix)
        c = invoice_counters
        ins = self._insert(c).values(prefix=prefix, n=1)
        stmt = ins.on_conflict_do_update(index_elements=[c.c.prefix], set_={"n": c.c.n + 1})
        n: int = self._exec(stmt.returning(c.c.n)).scalar_one()
        return n

    # -- credit memos and coupon redemptions ------------------------------------------------
    def put_credit_memo(self, memo: CreditMemo) -> None:
        check_instance(memo, CreditMemo, "memo")
        values = {"id": memo.id, "customer_id": memo.customer_id, "data": encode(memo, "memo")}
        self._upsert(credit_memos, "id", values)

    def get_credit_memo(self, memo_id: str, *, lock: bool = False) -> CreditMemo | None:
        stmt = sa.select(credit_memos.c.data).where(credit_memos.c.id == memo_id)
        if lock:
            stmt = stmt.with_for_update()
        text = self._exec(stmt).scalar_one_or_none()
        return None if text is None else decode(text, CreditMemo)

    def list_credit_memos(
        self, *, customer_id: str | None = None, lock: bool = False
    ) -> list[CreditMemo]:
        stmt = sa.select(credit_memos.c.data).order_by(credit_memos.c.seq)
        if customer_id is not None:
            stmt = stmt.where(credit_memos.c.customer_id == customer_id)
        if lock:
            stmt = stmt.with_for_update()
        return [decode(text, CreditMemo) for text in self._exec(stmt).scalars()]

    def put_coupon_redemption(self, redemption: CouponRedemption) -> None:
        check_instance(redemption, CouponRedemption, "redemption")
        values = {
            "id": redemption.id,
            "customer_id": redemption.customer_id,
            "coupon_id": redemption.coupon.id,
            "data": encode(redemption, "redemption"),
        }
        self._upsert(coupon_redemptions, "id", values)

    def list_coupon_redemptions(
        self, *, customer_id: str | None = None, coupon_id: str | None = None
    ) -> list[CouponRedemption]:
        t = coupon_redemptions
        stmt = sa.select(t.c.data).order_by(t.c.seq)
        if customer_id is not None:
            stmt = stmt.where(t.c.customer_id == customer_id)
        if coupon_id is not None:
            stmt = stmt.where(t.c.coupon_id == coupon_id)
        return [decode(text, CouponRedemption) for text in self._exec(stmt).scalars()]

    def put_tax_profile(self, profile: TaxProfile) -> None:
        check_instance(profile, TaxProfile, "profile")
        values = {"customer_id": profile.customer_id, "data": encode(profile, "profile")}
        self._upsert(tax_profiles, "customer_id", values)

    def get_tax_profile(self, customer_id: str) -> TaxProfile | None:
        stmt = sa.select(tax_profiles.c.data).where(tax_profiles.c.customer_id == customer_id)
        text = self._exec(stmt).scalar_one_or_none()
        return None if text is None else decode(text, TaxProfile)
