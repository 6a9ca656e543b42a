"""rules.renewal: next term, renewal lines, expiry."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing_core import InvoiceLineKind, Money, Period, Subscription, SubscriptionState
from billing_core.errors import InvalidValueError
from billing_core.rules.renewal import next_term, renew, renewal_lines


def usd(amount: str) -> Money:
    return Money(amount, "USD")


def subscription(**changes: object) -> Subscription:
    fields: dict[str, object] = {
        "id": "sub-1",
        "customer_id": "cus-1",
        "term": Period.years(1),
        "start": date(2025, 11, 22),
        "inventory": {"standard": 2},
        "renewal_inventory": {"standard": 5, "wildcard": 1, "ev": 0},
        "unit_prices": {"standard": usd("40.00"), "wildcard": usd("120.005"), "ev": usd("300")},
    }
    fields.update(changes)
    return Subscription(**fields)  # type: ignore[arg-type]


def test_renewal_bills_the_renewal_inventory_one_line_per_type() -> None:
    r = renew(subscription(), today=date(2026, 11, 22))
    assert r.renewed
    assert r.term is not None
    assert (r.term.start, r.term.end) == (date(2026, 11, 22), date(2027, 11, 22))
    standard, wildcard = r.lines  # ev has quantity 0: no line
    assert standard.kind is InvoiceLineKind.RENEWAL
    assert (standard.quantity, standard.unit_price, standard.amount) == (
        Decimal(5),
        usd("40.00"),
        usd("200.00"),
    )
    assert wildcard.amount == usd("120.01")  # 120.005 rounded once, half-up
    assert wildcard.exact_amount == usd("120.005")
    assert r.total == usd("320.01")
    assert r.subscription.start == date(2026, 11, 22)
    assert r.subscription.inventory == {"standard": 5, "wildcard": 1, "ev": 0}
    assert "320.01 USD" in r.explanation


def test_nothing_happens_before_the_term_end() -> None:
    sub = subscription()
    r = renew(sub, today=date(2026, 11, 21))
    assert not r.renewed
    assert r.subscription is sub
    assert r.lines == ()
    assert "2026-11-22 (1 day from 2026-11-21)" in r.explanation


def test_a_non_renewing_subscription_expires_at_its_term_end() -> None:
    r = renew(subscription(auto_renew=False), today=date(2026, 11, 22))
    assert not r.renewed
    assert r.subscription.state is SubscriptionState.EXPIRED
    assert r.lines == ()
    assert r.total is None
    assert "expired" in r.explanation


def test_suspended_subscriptions_are_left_alone() -> None:
    sub = subscription(state="suspended")
    r = renew(sub, today=date(2027, 1, 1))
    assert r.subscription == sub
    assert not r.renewed


def test_month_end_anchor_does_not_drift() -> None:
    anchor = date(2024, 1, 31)
    sub = subscription(term=Period.months(1), start=date(2024, 2, 29))  # second term
    assert next_term(sub, anchor=anchor).end == date(2024, 4, 30)
    first = subscription(term=Period.months(1), start=anchor)
    period = next_term(first)
    assert (period.start, period.end) == (date(2024, 2, 29), date(2024, 3, 31))


def test_a_type_without_a_price_raises() -> None:
    sub = subscription(renewal_inventory={"ov": 1})
    with pytest.raises(InvalidValueError) as info:
        renewal_lines(sub)
    assert info.value.field == "$.unit_prices.ov"


@given(
    st.dates(date(2001, 1, 1), date(2080, 1, 1)),
    st.sampled_from([Period.months(1), Period.months(3), Period.years(1), Period.days(30)]),
    st.integers(1, 30),
)
def test_renewing_term_after_term_follows_the_anchor(start: date, term: Period, n: int) -> None:
    sub = subscription(term=term, start=start)
    for i in range(1, n + 1):
        period = next_term(sub, anchor=start)
        assert period.end == term.after(start, times=i + 1)
        r = renew(sub, today=period.start, anchor=start)
        assert r.renewed
        assert r.term == period
        sub = r.subscription
        assert sub.start == term.after(start, times=i)
    assert renew(sub, today=sub.start + timedelta(days=1), anchor=start).renewed is False


def test_renewals_keep_the_anchor_so_month_ends_do_not_drift() -> None:
    from datetime import date as _date

    from billing_core import Money as _Money
    from billing_core import Period as _Period
    from billing_core import Subscription as _Subscription
    from billing_core.rules.renewal import renew as _renew

    sub = _Subscription(
        id="s-anchor",
        customer_id="c",
        term=_Period.months(1),
        start=_date(2024, 1, 31),
        renewal_inventory={"dv": 1},
        unit_prices={"dv": _Money("10.00", "USD")},
    )
    ends = []
    for today in (_date(2024, 2, 29), _date(2024, 3, 31), _date(2024, 4, 30)):
        result = _renew(sub, today=today)
        assert result.renewed
        sub = result.subscription
        ends.append(sub.term_end)
    # from the Jan 31 anchor: Mar 31, Apr 30, May 31 (chaining would give Mar 29, Apr 29, May 29)
    assert ends == [_date(2024, 3, 31), _date(2024, 4, 30), _date(2024, 5, 31)]
    assert sub.anchor == _date(2024, 1, 31)
