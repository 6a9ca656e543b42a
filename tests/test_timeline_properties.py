"""rules.timeline.bills: Hypothesis properties (issue 12), across month ends, leap years and
anchors on the 29th to 31st.

Run with ``--hypothesis-show-statistics`` to see how many examples each property ran.
"""

from __future__ import annotations

import itertools
from datetime import date, timedelta
from decimal import Decimal

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from billing_core import BillingTiming, InvoiceLineKind, Money, Period, Plan, Trial
from billing_core.model import InvoiceLine
from billing_core.rules.proration import prorate
from billing_core.rules.timeline import Bill, bills, period_at, recurring_start

periods = st.one_of(
    st.integers(1, 40).map(Period.days),
    st.integers(1, 6).map(Period.weeks),
    st.integers(1, 14).map(Period.months),
    st.integers(1, 2).map(Period.years),
)
years = st.sampled_from([1999, 2000, 2023, 2024, 2025, 2028, 2096, 2100])  # leap and not
month_ends = st.builds(
    lambda y, m, d: date(
        y,
        m,
        min(
            d,
            [31, 29 if y % 4 == 0 and y != 2100 else 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][
                m - 1
            ],
        ),
    ),
    years,
    st.integers(1, 12),
    st.integers(27, 31),
)
days = st.one_of(st.dates(date(1999, 1, 1), date(2100, 12, 31)), month_ends)
prices = st.builds(
    lambda units, exponent: Money(Decimal(units).scaleb(-exponent), "USD"),
    st.integers(0, 10_000_000),
    st.sampled_from([0, 2, 3]),
)
trials = st.none() | st.builds(
    lambda n, cents: Trial(length=Period.days(n), price=Money(Decimal(cents).scaleb(-2), "USD")),
    st.integers(1, 45),
    st.integers(0, 5_000),
)


@st.composite
def orders(draw: st.DrawFn) -> tuple[Plan, date, date, date | None, int]:
    period = draw(periods)
    plan = Plan(
        price=draw(prices),
        period=period,
        timing=draw(st.sampled_from(BillingTiming)),
        trial=draw(trials),
    )
    start = draw(days)
    anchor = draw(st.none() | days)
    span = (period.in_days or 31 * (period.in_months or 1)) * draw(st.integers(0, 14))
    until = start + timedelta(days=draw(st.integers(0, span + 40)))
    return plan, start, until, anchor, draw(st.integers(1, 50))


def recurring(result: tuple[Bill, ...]) -> list[tuple[date, InvoiceLine]]:
    return [
        (bill.billed_on, line)
        for bill in result
        for line in bill.lines
        if line.kind is InvoiceLineKind.SUBSCRIPTION
    ]


@settings(max_examples=400)
@given(orders())
def test_every_day_from_the_trial_end_is_covered_by_exactly_one_line(
    order: tuple[Plan, date, date, date | None, int],
) -> None:
    plan, start, until, anchor, quantity = order
    lines = recurring(bills(plan, start=start, until=until, anchor=anchor, quantity=quantity))
    r0 = recurring_start(plan, start)
    in_advance = plan.timing is BillingTiming.IN_ADVANCE
    if not lines:  # nothing billed yet: the first line is billed after until
        b1 = period_at(plan, r0, start=start, anchor=anchor)[1]
        assert (r0 if in_advance else b1) > until
        return
    spans: list[tuple[date, date]] = []
    for _on, line in lines:
        assert line.period_start is not None and line.period_end is not None
        spans.append((line.period_start, line.period_end))
    assert spans[0][0] == r0
    for (_s0, e0), (s1, _e1) in itertools.pairwise(spans):
        assert e0 == s1  # contiguous: no gap, no overlap, each day in exactly one line
    assert all(s < e for s, e in spans)
    last_end = spans[-1][1]
    if in_advance:  # covers every day through until; the next line starts after it
        assert last_end > until >= spans[-1][0]
    else:  # billed at each end: covered through the last end, the next end is after until
        assert last_end <= until < period_at(plan, last_end, start=start, anchor=anchor)[1]
    for on, line in lines:
        assert on == (line.period_start if in_advance else line.period_end)


@settings(max_examples=400)
@given(orders())
def test_each_line_is_its_anchored_periods_share_rounded_once(
    order: tuple[Plan, date, date, date | None, int],
) -> None:
    """A whole period costs exactly price × quantity; the stub is what prorate gives."""
    plan, start, until, anchor, quantity = order
    whole = (plan.price * quantity).rounded()
    for index, (_on, line) in enumerate(
        recurring(bills(plan, start=start, until=until, anchor=anchor, quantity=quantity))
    ):
        assert line.period_start is not None and line.period_end is not None
        b0, b1 = period_at(plan, line.period_start, start=start, anchor=anchor)
        assert line.period_end == b1
        expected = prorate(
            plan.price, period_start=b0, period_end=b1, start=line.period_start, quantity=quantity
        )
        assert line.amount == expected.amount
        if index:
            assert (line.period_start, line.amount) == (b0, whole)


@settings(max_examples=300)
@given(orders(), st.integers(1, 5))
def test_stub_plus_whole_periods_equal_proration_over_the_span(
    order: tuple[Plan, date, date, date | None, int], n: int
) -> None:
    """The stub and the n whole periods after it cost what prorate charges for each piece, and
    their exact sum is price × quantity × (stub fraction + n)."""
    plan, start, _until, anchor, quantity = order
    r0 = recurring_start(plan, start)
    b0, b1 = period_at(plan, r0, start=start, anchor=anchor)
    end = b1
    for _ in range(n):
        end = period_at(plan, end, start=start, anchor=anchor)[1]
    lines = recurring(bills(plan, start=start, until=end, anchor=anchor, quantity=quantity))
    covered = [
        line for _on, line in lines if line.period_end is not None and line.period_end <= end
    ]
    assert len(covered) == n + 1
    stub = prorate(plan.price, period_start=b0, period_end=b1, start=r0, quantity=quantity)
    total = sum((line.amount for line in covered), Money.zero("USD"))
    assert total == stub.amount + (plan.price * quantity).rounded() * n


@settings(max_examples=400)
@given(orders(), st.integers(1, 30), st.booleans())
def test_shifting_the_anchor_by_whole_periods_changes_nothing(
    order: tuple[Plan, date, date, date | None, int], j: int, forward: bool
) -> None:
    plan, start, until, maybe_anchor, quantity = order
    anchor = maybe_anchor or start
    try:
        shifted = (
            plan.period.after(anchor, times=j) if forward else plan.period.before(anchor, times=j)
        )
    except Exception:  # outside the calendar
        assume(False)
        raise
    # a month anchor keeps its sequence only when its day survives the shift (Jan 31 → Apr 30
    # anchors another sequence: Apr 30, May 30, ...)
    assume(shifted.day == anchor.day)
    kwargs = {"start": start, "until": until, "quantity": quantity}
    assert bills(plan, anchor=anchor, **kwargs) == bills(plan, anchor=shifted, **kwargs)  # type: ignore[arg-type]


@settings(max_examples=200)
@given(orders(), st.integers(1, 12))
def test_occurrences_make_exactly_n_recurring_lines(
    order: tuple[Plan, date, date, date | None, int], n: int
) -> None:
    plan, start, _until, anchor, quantity = order
    limited = Plan(
        price=plan.price, period=plan.period, timing=plan.timing, trial=plan.trial, occurrences=n
    )
    far = plan.period.after(recurring_start(plan, start), times=n + 1)
    lines = recurring(bills(limited, start=start, until=far, anchor=anchor, quantity=quantity))
    assert len(lines) == n
    unlimited = recurring(bills(plan, start=start, until=far, anchor=anchor, quantity=quantity))
    assert lines == unlimited[:n]


@settings(max_examples=200)
@given(orders())
def test_trial_and_setup_fee_are_billed_once_on_start_whatever_the_timing(
    order: tuple[Plan, date, date, date | None, int],
) -> None:
    plan, start, until, anchor, quantity = order
    fee = Plan(
        price=plan.price,
        period=plan.period,
        timing=plan.timing,
        trial=plan.trial,
        setup_fee=Money("5.00", "USD"),
    )
    result = bills(fee, start=start, until=until, anchor=anchor, quantity=quantity)
    first = result[0]
    assert first.billed_on == start
    kinds = [line.kind for bill in result for line in bill.lines]
    assert kinds.count(InvoiceLineKind.SETUP_FEE) == 1
    assert kinds.count(InvoiceLineKind.TRIAL) == (plan.trial is not None)
    assert first.lines[0].amount == Money("5.00", "USD")  # per order, never per unit
    assert all(
        b.total == sum((line.amount for line in b.lines[1:]), b.lines[0].amount) for b in result
    )
    assert [b.billed_on for b in result] == sorted({b.billed_on for b in result})
