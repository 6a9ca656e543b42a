"""Blocklists (issue 14; seeds 002, 003): entries by customer id, card fingerprint, email, email
domain, IP and country, with optional expiry, checked before any gateway call; admin only."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from billing_core import (
    BillingEngine,
    BlocklistEntry,
    BlocklistKind,
    InvalidValueError,
    PaymentInstrument,
    Period,
    SubscriptionState,
)
from billing_core.engine.collection_results import BlocklistOutcome
from billing_core.engine.results import ChargeOutcome, RenewalOutcome
from billing_core.rules.blocklists import BlockReason, Payer, check
from test_engine import ADMIN, AGENT, START
from test_engine_instruments import TEN, make_engine, sandbox

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
PAYER = Payer(
    customer_id="c1",
    email="AP@Acme.Example",
    ip="203.0.113.9",
    country="us",
    fingerprints=("fp-visa", "fp-amex"),
)


def entry(kind: str, value: str, **kw: object) -> BlocklistEntry:
    return BlocklistEntry(id=f"bl-{kind}", kind=kind, value=value, added_at=NOW, **kw)  # type: ignore[arg-type]


# -- the rule ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kind", "value"),
    [
        ("customer_id", "c1"),
        ("fingerprint", "fp-amex"),
        ("email", "ap@acme.example"),
        ("email_domain", "acme.example"),
        ("ip", "203.0.113.9"),
        ("country", "us"),
    ],
)
def test_each_kind_blocks_its_value(kind: str, value: str) -> None:
    decision = check([entry("ip", "198.51.100.1"), entry(kind, value)], PAYER, now=NOW)
    assert decision.denied
    assert decision.reason == BlockReason(f"blocklisted_{kind}")
    assert decision.entry is not None and decision.entry.id == f"bl-{kind}"
    label = kind.replace("_", " ")
    assert decision.explanation == (
        f"The payment is blocked: its {label} {value} is blocklisted by entry bl-{kind}. Nothing "
        "was sent to the gateway; only an admin can lift the entry."
    )


def test_expiry_and_lifting() -> None:
    until = NOW + timedelta(days=30)
    timed = entry("email_domain", "acme.example", expires_at=until, reason="chargebacks")
    blocked = check([timed], PAYER, now=until - timedelta(seconds=1))
    assert blocked.explanation == (
        "The payment is blocked: its email domain acme.example is blocklisted until "
        "2026-12-21T12:00:00+00:00 by entry bl-email_domain (chargebacks). Nothing was sent to "
        "the gateway; only an admin can lift the entry."
    )
    assert check([timed], PAYER, now=until).allowed  # expires_at itself no longer blocks
    lifted = entry("country", "us", lifted_at=NOW + timedelta(hours=1))
    assert check([lifted], PAYER, now=NOW).denied
    assert check([lifted], PAYER, now=NOW + timedelta(hours=1)).allowed


def test_other_values_pass() -> None:
    entries = [
        entry("email", "ap@acme.example.org"),
        entry("country", "de"),
        entry("ip", "203.0.113.90"),
    ]
    assert check(entries, PAYER, now=NOW).allowed


@pytest.mark.parametrize(
    ("kind", "value", "message"),
    [
        ("email", "AP@acme.example", "must be normalised: 'ap@acme.example'"),
        ("email", "nobody", "must be an email address"),
        ("country", "usa", "must be a two-letter ISO 3166 country code"),
        ("email_domain", "@acme.example", "must be normalised: 'acme.example'"),
        ("ip", " 1.2.3.4", "must be normalised"),
    ],
)
def test_bad_entries_raise_naming_the_value(kind: str, value: str, message: str) -> None:
    with pytest.raises(InvalidValueError, match=rf"{message}.*\$\.value"):
        entry(kind, value)


VALUES = {
    "customer_id": st.sampled_from(["c1", "c2"]),
    "fingerprint": st.sampled_from(["fp-visa", "fp-amex", "fp-x"]),
    "email": st.sampled_from(["ap@acme.example", "x@acme.example"]),
    "email_domain": st.sampled_from(["acme.example", "other.example"]),
    "ip": st.sampled_from(["203.0.113.9", "203.0.113.10"]),
    "country": st.sampled_from(["us", "de"]),
}
ENTRIES = st.lists(
    st.sampled_from(sorted(VALUES)).flatmap(
        lambda kind: st.tuples(st.just(kind), VALUES[kind], st.integers(-3, 3))
    ),
    max_size=5,
)


@given(entries=ENTRIES)
def test_property_blocked_exactly_when_an_entry_in_force_matches(
    entries: list[tuple[str, str, int]],
) -> None:
    """Property: the rule denies iff some unexpired entry's value is among the payer's values
    of its kind; the denial names the first such entry."""
    built = [
        BlocklistEntry(
            id=f"bl-{n}",
            kind=kind,
            value=value,
            added_at=NOW,
            expires_at=None if days == 0 else NOW + timedelta(days=days),
        )
        for n, (kind, value, days) in enumerate(entries)
    ]
    matching = [e for e in built if e.in_force(NOW) and e.value in PAYER.values(e.kind)]
    decision = check(built, PAYER, now=NOW)
    assert decision.allowed == (not matching)
    if matching:
        assert decision.entry == matching[0]


# -- the engine --------------------------------------------------------------------------------------
@pytest.fixture
def engine(store_url: str) -> Iterator[BillingEngine]:
    eng = make_engine(store_url)
    yield eng
    eng.store.close()


def test_only_admins_add_or_lift_entries(engine: BillingEngine) -> None:
    refused = engine.add_blocklist_entry("country", "US", actor=AGENT)
    assert (refused.outcome, refused.reason) == (BlocklistOutcome.DENIED, "permission_denied")
    assert engine.blocklist() == []
    added = engine.add_blocklist_entry("country", " US ", actor=ADMIN, reason="sanctions test")
    assert added.outcome is BlocklistOutcome.ADDED and added.entry is not None
    assert added.entry.value == "us"
    again = engine.add_blocklist_entry("country", "us", actor=ADMIN)
    assert again.outcome is BlocklistOutcome.UNCHANGED
    entry_id = added.entry.id
    assert engine.lift_blocklist_entry(entry_id, actor=AGENT).outcome is BlocklistOutcome.DENIED
    lifted = engine.lift_blocklist_entry(entry_id, actor=ADMIN)
    assert lifted.outcome is BlocklistOutcome.LIFTED
    (kept,) = engine.blocklist()
    assert kept.lifted_at == START and kept.lifted_by == "ada"
    assert [e.action for e in engine.audit_log(subject_id=entry_id)] == [
        "blocklist.added",
        "lift_blocklist_entry.denied",
        "blocklist.lifted",
    ]


@pytest.mark.parametrize(
    ("kind", "value", "ip"),
    [
        ("customer_id", "c1", None),
        ("fingerprint", "fp-visa", None),
        ("email", "ap@acme.example", None),
        ("email_domain", "acme.example", None),
        ("ip", "203.0.113.9", "203.0.113.9"),
        ("country", "us", None),
    ],
)
def test_a_blocked_charge_is_a_denial_naming_the_entry_and_nothing_reaches_the_gateway(
    engine: BillingEngine, kind: str, value: str, ip: str | None
) -> None:
    engine.add_instrument(
        "c1", PaymentInstrument(id="pi-visa", fingerprint="fp-visa"), primary=True, actor=AGENT
    )
    added = engine.add_blocklist_entry(kind, value, actor=ADMIN)
    assert added.entry is not None
    result = engine.charge("c1", TEN, idempotency_key="k1", actor=AGENT, ip=ip)
    assert result.outcome is ChargeOutcome.DENIED
    assert result.reason == f"blocklisted_{kind}"
    assert f"by entry {added.entry.id}" in result.explanation
    assert sandbox(engine).calls["sale"] == 0
    assert engine.transactions() == []
    engine.lift_blocklist_entry(added.entry.id, actor=ADMIN)
    again = engine.charge("c1", TEN, idempotency_key="k1", actor=AGENT, ip=ip)
    assert again.outcome is ChargeOutcome.CHARGED  # the same key works once it is lifted


def test_an_entry_stops_blocking_when_it_expires(engine: BillingEngine) -> None:
    engine.add_blocklist_entry(
        "email_domain", "acme.example", actor=ADMIN, expires_at=START + timedelta(days=1)
    )
    assert engine.charge("c1", TEN, idempotency_key="a", actor=AGENT).outcome is (
        ChargeOutcome.DENIED
    )
    engine.clock.advance(timedelta(days=1))  # type: ignore[attr-defined]
    assert engine.charge("c1", TEN, idempotency_key="b", actor=AGENT).outcome is (
        ChargeOutcome.CHARGED
    )


def test_an_expiry_in_the_past_is_bad_input(engine: BillingEngine) -> None:
    with pytest.raises(InvalidValueError, match=r"\$\.expires_at"):
        engine.add_blocklist_entry("ip", "1.2.3.4", actor=ADMIN, expires_at=START)
    with pytest.raises(InvalidValueError, match=r"\$\.kind"):
        engine.add_blocklist_entry("phone", "555", actor=ADMIN)


def test_new_subscriptions_and_renewals_are_blocked_too(engine: BillingEngine) -> None:
    sub = engine.add_subscription(
        "c1",
        term=Period.months(1),
        inventory={"dv": 1},
        unit_prices={"dv": TEN},
        idempotency_key="s1",
        actor=AGENT,
    )
    assert sub.subscription_id is not None
    engine.add_blocklist_entry("email", "ap@acme.example", actor=ADMIN)
    blocked = engine.add_subscription(
        "c1",
        term=Period.months(1),
        inventory={"dv": 1},
        unit_prices={"dv": TEN},
        idempotency_key="s2",
        actor=AGENT,
    )
    assert (blocked.outcome, blocked.reason) == (ChargeOutcome.DENIED, "blocklisted_email")
    engine.clock.advance(timedelta(days=31))  # type: ignore[attr-defined]
    (renewal,) = engine.renew_due(actor=ADMIN).renewals
    assert renewal.outcome is RenewalOutcome.PAST_DUE
    assert renewal.reason == "blocklisted_email"
    assert engine.subscription(sub.subscription_id).state is SubscriptionState.PAST_DUE
    assert sandbox(engine).calls["sale"] == 1  # the first term only


def test_the_customer_flag_still_works(engine: BillingEngine) -> None:
    engine.blocklist_customer("c1", actor=ADMIN)
    result = engine.charge("c1", TEN, idempotency_key="k", actor=AGENT)
    assert result.reason == "customer_blocklisted"


@settings(max_examples=40, deadline=None)
@given(
    kind=st.sampled_from(["fingerprint", "email", "email_domain", "ip", "country"]),
    which=st.integers(0, 2),
    fallback=st.booleans(),
)
def test_property_a_blocked_value_never_reaches_the_gateway(
    kind: str, which: int, fallback: bool
) -> None:
    """Property: whichever of the payer's values is blocked (any card of the wallet, its
    email, domain, IP or country), no charge reaches the gateway, even when the first card
    is declined and the fallback would move to a blocked backup."""
    engine = make_engine("memory://")
    cards = [PaymentInstrument(id=f"pi-{n}", fingerprint=f"fp-{n}") for n in range(3)]
    engine.add_instrument("c1", cards[0], primary=True, actor=AGENT)
    for card in cards[1:]:
        engine.add_instrument("c1", card, backup=True, actor=AGENT)
    value = {
        "fingerprint": f"fp-{which}",
        "email": "ap@acme.example",
        "email_domain": "acme.example",
        "ip": "203.0.113.9",
        "country": "us",
    }[kind]
    engine.add_blocklist_entry(kind, value, actor=ADMIN)
    if fallback:
        sandbox(engine).script("sale", ["decline"])
    result = engine.charge("c1", TEN, idempotency_key="k", actor=AGENT, ip="203.0.113.9")
    assert result.outcome is ChargeOutcome.DENIED
    assert sandbox(engine).calls["sale"] == 0
    assert engine.transactions() == []


def test_the_stores_keep_entries_whole(store_url: str) -> None:
    engine = make_engine(store_url)
    try:
        first = entry("email_domain", "acme.example", expires_at=NOW + timedelta(days=3))
        second = entry("fingerprint", "fp-1", reason="stolen card")
        with engine.store.session() as s:
            s.put_blocklist_entry(first)
            s.put_blocklist_entry(second)
        with engine.store.session() as s:
            lifted = attrs.evolve(first, lifted_at=NOW, lifted_by="ada")
            s.put_blocklist_entry(lifted)
        with engine.store.session() as s:
            assert s.list_blocklist() == [lifted, second]
            assert s.get_blocklist_entry("bl-fingerprint") == second
            assert s.get_blocklist_entry("bl-none") is None
        assert [k.value for k in BlocklistKind] == [
            "customer_id",
            "fingerprint",
            "email",
            "email_domain",
            "ip",
            "country",
        ]
    finally:
        engine.store.close()
