"""PostgreSQL: one subscription's pending lines are never split over two invoices.

With row locks taken one by one (``FOR UPDATE SKIP LOCKED``), an issuer that had locked some of a
subscription's lines when a second issuer arrived left the second one the rest: two invoices for
one subscription (the store contract's 8-thread race caught it once in CI: 17 invoices for 16
subscriptions). The test plays the first issuer by hand: a connection holds a row lock on one of
the two lines, as an issuer does in the middle of taking them. The second issuer must take the
subscription whole (waiting for that row) or not at all, never the other line alone.
"""

from __future__ import annotations

import threading
import time
from datetime import date

import sqlalchemy as sa

from billing_core import InvoiceLine, Money
from billing_core.plugins.sql_store import SqlStore

D0 = date(2026, 4, 1)


def test_a_subscription_half_locked_by_another_issuer_is_taken_whole(
    postgres_schema_url: str,
) -> None:
    with SqlStore(postgres_schema_url) as store:
        with store.session() as s:
            s.add_invoice_lines(
                "s-1",
                [
                    InvoiceLine(description="seat 1", amount=Money("10.00", "EUR")),
                    InvoiceLine(description="seat 2", amount=Money("20.00", "EUR")),
                ],
            )
        holder = store.engine.connect()
        tx = holder.begin()
        first = holder.execute(
            sa.text("SELECT seq FROM invoice_lines ORDER BY seq LIMIT 1 FOR UPDATE")
        ).scalar_one()
        assert first is not None

        def release() -> None:
            time.sleep(0.5)
            tx.rollback()  # the first issuer gives up (a rollback): the lines are still pending

        releaser = threading.Thread(target=release)
        releaser.start()
        try:
            with store.session() as s:
                taken = s.take_pending_lines(["s-1"], currency="EUR", up_to=D0, invoice_id="i-2")
        finally:
            releaser.join()
            holder.close()
        assert [line.description for line in taken] in ([], ["seat 1", "seat 2"]), taken
        with store.session() as s:
            pending = s.pending_invoice_lines("s-1")
        assert len(pending) + len(taken) == 2
