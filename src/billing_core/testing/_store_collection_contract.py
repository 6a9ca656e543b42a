"""The store contract for collection records: wallets, blocklist entries, the customer list."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import attrs
import pytest

from ..blocklists import BlocklistEntry
from ..errors import InvalidTypeError
from ..instruments import PaymentInstrument
from ..model import Customer
from ..plugins.protocols import Store
from ..wallets import Wallet
from ._store_record_contract import assert_same

__all__ = ["CollectionContract"]

AT = datetime(2026, 3, 29, 0, 30, tzinfo=ZoneInfo("Europe/London"))


class CollectionContract:
    """Round trips of wallets and blocklist entries; customers listed in the order stored."""

    def test_wallet_round_trip_and_replace(self, store: Store) -> None:
        card = PaymentInstrument(
            id="pi-1", kind="payment_card", fingerprint="fp-1", expires_on=date(2027, 12, 31)
        )
        bank = PaymentInstrument(id="pi-2", kind="bank_account", gateway="acme")
        wallet = Wallet(
            customer_id="c1",
            instruments=(card, bank),
            primary_id="pi-1",
            backup_ids=("pi-2",),
            order_defaults={"sub-1": "pi-2"},
        )
        with store.session() as s:
            assert s.get_wallet("c1") is None
            s.put_wallet(wallet)
        with store.session() as s:
            assert_same(s.get_wallet("c1"), wallet)
            changed = attrs.evolve(wallet, instruments=(attrs.evolve(card, active=False), bank))
            s.put_wallet(changed)
        with store.session() as s:
            assert_same(s.get_wallet("c1", lock=True), changed)
            with pytest.raises(InvalidTypeError, match=r"\$\.wallet"):
                s.put_wallet("not a wallet")  # type: ignore[arg-type]

    def test_blocklist_entries_round_trip_in_order(self, store: Store) -> None:
        first = BlocklistEntry(
            id="bl-1",
            kind="email_domain",
            value="fraud.example",
            added_at=AT,
            added_by="ada",
            reason="chargebacks",
            expires_at=AT + timedelta(days=30),
        )
        second = BlocklistEntry(id="bl-2", kind="country", value="xx", added_at=AT)
        with store.session() as s:
            s.put_blocklist_entry(first)
            s.put_blocklist_entry(second)
        lifted = attrs.evolve(first, lifted_at=datetime(2026, 4, 1, tzinfo=UTC), lifted_by="ada")
        with store.session() as s:
            s.put_blocklist_entry(lifted)  # replaces, keeps its place
        with store.session() as s:
            listed = s.list_blocklist()
            assert [e.id for e in listed] == ["bl-1", "bl-2"]
            assert_same(listed[0], lifted)
            assert_same(s.get_blocklist_entry("bl-2"), second)
            assert s.get_blocklist_entry("bl-3") is None

    def test_customers_are_listed_in_the_order_first_stored(self, store: Store) -> None:
        with store.session() as s:
            assert s.list_customers() == []
            for cid in ("c-b", "c-a", "c-c"):
                s.put_customer(Customer(id=cid, company=cid.upper()))
            s.put_customer(Customer(id="c-b", company="B again"))  # a replace keeps its place
        with store.session() as s:
            assert [(c.id, c.company) for c in s.list_customers()] == [
                ("c-b", "B again"),
                ("c-a", "C-A"),
                ("c-c", "C-C"),
            ]
