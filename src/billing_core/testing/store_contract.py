"""The store contract suite: what every ``Store`` plugin must do, as pytest tests.

A store plugin runs it by subclassing ``StoreContract`` in its own tests and providing a
``store`` fixture that returns a new, empty store for each test::

    import pytest
    from billing_core.testing.store_contract import StoreContract

    class TestMyStore(StoreContract):
        @pytest.fixture
        def store(self):
            store = MyStore(...)
            yield store
            store.close()

It checks every ``StoreSession`` method: exact round trips of every record (decimal digits and
trailing zeros, datetimes with their offset and IANA zone, enums), atomic commit and rollback,
savepoint semantics of a nested session, ``ConflictError`` on duplicate ids and keys (the session
goes on), the refusal of a refunded plus reserved total above the amount, usage-event
de-duplication and the ``[start, end)`` range, ``claim_due`` (due entries only, leases, limits,
claim order, no entry claimed twice by concurrent workers), the append-only audit log,
``lock=True`` reads, and concurrency: threads incrementing one transaction's reserved amount with
locked read-modify-write sessions lose no update; a metered period closed once
(``insert_metered_close``: one record per subscription, metric, start and end as instants, a
second insert a ``ConflictError``, concurrent inserts of one period: exactly one wins); invoices
(round trips, a number belongs to one invoice), pending invoice lines taken once
(``take_pending_lines``; a rolled back take leaves them pending) and gapless numbering per
prefix (``next_invoice_number``; a rolled back number is given again; concurrent issuers share
no line and no number); the event outbox (events added with their session and rolled back with it, a store-assigned
increasing ``sequence``, ``claim_outbox`` of due events in sequence order with leases, marks
written only by the claim's holder, concurrent deliverers never claiming one event twice).

What the suite expects beyond the Protocol's signatures:

* lists come back in the order their records were first stored (replacing a record keeps its
  place); ``usage_events`` by instant, then that order;
* ``claim_due`` treats a queued entry without ``next_attempt_at`` as due, a lease as live while
  ``now < lease_until``, and claims entries without ``next_attempt_at`` first, then by
  ``next_attempt_at``, then in stored order;
* the store assigns audit ids: ``append_audit`` refuses an entry whose ``id`` is set;
* a session opened inside another one on the same thread is a savepoint;
* a session object is unusable after its ``with`` block.

The ``threads`` and ``increments_per_thread`` class attributes size the concurrency tests.
"""

from __future__ import annotations

from ._store_collection_contract import CollectionContract
from ._store_invoice_contract import InvoiceContract
from ._store_metered_contract import MeteredCloseContract
from ._store_outbox_contract import OutboxContract
from ._store_record_contract import RecordContract, assert_same
from ._store_work_contract import WorkContract

__all__ = ["StoreContract", "assert_same"]


class StoreContract(
    RecordContract,
    WorkContract,
    MeteredCloseContract,
    CollectionContract,
    InvoiceContract,
    OutboxContract,
):
    """Subclass in a test module and provide a ``store`` fixture returning an empty ``Store``."""
