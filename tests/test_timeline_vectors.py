"""Worked vectors from Kill Bill's invoice generator tests and Lago's subscription-fee and
free-trial specs, reproduced to the cent with ``rules.timeline.bills``.

Each test cites its source (repository, path, test name). Kill Bill and Lago amounts are in
minor units or BigDecimals there; here they are ``Money``. Where a source's convention differs
from ours, the test shows which ``anchor`` (and ``day_count``) reproduces it.
"""

from __future__ import annotations

from datetime import date

from billing_core import BillingTiming, Money, Period, Plan, Trial
from billing_core.rules.schedules import Schedule, settle
from billing_core.rules.timeline import Bill, bills, period_at


def usd(amount: str) -> Money:
    return Money(amount, "USD")


def eur(amount: str) -> Money:
    return Money(amount, "EUR")


def billed(result: tuple[Bill, ...]) -> list[tuple[date, Money]]:
    return [(b.billed_on, b.total) for b in result]


def monthly(price: Money, **kwargs: object) -> Plan:
    return Plan(price=price, period=Period.months(1), **kwargs)  # type: ignore[arg-type]


# -- Kill Bill: the bill cycle day is our anchor's day of month, billing is in advance ------------
def test_kill_bill_leading_proration() -> None:
    """killbill/killbill TestDefaultInvoiceGenerator.java,
    testWithSingleMonthlyEventWithLeadingProRation: 10.00 monthly from 2011-09-01 with bill cycle
    day 15, invoiced through 2011-10-03: 10 × (1 + 14/31) = 14.52 in two items."""
    result = bills(
        monthly(usd("10.00")),
        start=date(2011, 9, 1),
        anchor=date(2011, 9, 15),
        until=date(2011, 10, 3),
    )
    assert billed(result) == [(date(2011, 9, 1), usd("4.52")), (date(2011, 9, 15), usd("10.00"))]
    assert sum((b.total for b in result), usd("0")) == usd("14.52")


def test_kill_bill_add_on_aligned_to_bill_cycle_day_10() -> None:
    """killbill/killbill TestDefaultInvoiceGenerator.java, testMultiplePlansWithUtterChaos: an
    add-on at 20.00 monthly created 2011-06-21 with bill cycle day 10 invoices 20 × 19/30 = 12.67,
    then 20.00 on 2011-07-10."""
    result = bills(
        monthly(usd("20")),
        start=date(2011, 6, 21),
        anchor=date(2011, 6, 10),
        until=date(2011, 7, 10),
    )
    assert billed(result) == [(date(2011, 6, 21), usd("12.67")), (date(2011, 7, 10), usd("20.00"))]


def test_kill_bill_cancellation_credit_and_annual_upgrade() -> None:
    """killbill/killbill TestDefaultInvoiceGenerator.java, testMultiplePlansWithUtterChaos: a
    12.00 monthly phase (bill cycle day 5) cancelled 2011-04-29 repairs −2.40 (6 of 30 days);
    a 10.00 monthly plan (bill cycle day 20) upgraded 2011-07-31 to 100.00 yearly invoices
    93.55 (100.00 less 20 of 31 days of 10.00). Our ``settle`` credits the unused part the same
    way."""
    discount = Schedule(plan=monthly(usd("12")), start=date(2011, 4, 5), anchor=date(2011, 1, 5))
    (credit,) = settle(discount, date(2011, 4, 29))
    assert credit.amount == usd("-2.40")
    assert "6 of 30 days (Apr 29 to May 5) of 12.00 USD = 2.40 USD" in credit.description

    old = Schedule(plan=monthly(usd("10")), start=date(2011, 5, 20))
    (unused,) = settle(old, date(2011, 7, 31))
    annual = Plan(price=usd("100"), period=Period.years(1))
    (first,) = bills(annual, start=date(2011, 7, 31), until=date(2011, 7, 31))
    assert (unused.amount, first.total, first.total + unused.amount) == (
        usd("-6.45"),
        usd("100.00"),
        usd("93.55"),
    )


def test_kill_bill_free_trial_then_stub_to_bill_cycle_day() -> None:
    """killbill/killbill TestDefaultInvoiceGenerator.java, testInvoiceGenerationFailureScenario:
    created 2012-03-06 with a 30-day 0.00 trial and bill cycle day 15, then 9.95 monthly: the
    invoices are 0.00 (2012-03-06), 3.21 from the trial's end 2012-04-05 (10 of 31 days) and
    9.95 on 2012-04-15."""
    plan = monthly(usd("9.95"), trial=Trial(length=Period.days(30), price=usd("0")))
    result = bills(plan, start=date(2012, 3, 6), anchor=date(2012, 3, 15), until=date(2012, 4, 15))
    assert billed(result) == [
        (date(2012, 3, 6), usd("0.00")),
        (date(2012, 4, 5), usd("3.21")),
        (date(2012, 4, 15), usd("9.95")),
    ]
    assert result[1].lines[0].period_start == date(2012, 4, 5)


def test_kill_bill_fixed_price_is_a_setup_fee() -> None:
    """killbill/killbill TestDefaultInvoiceGenerator.java, testMixedModeLifeCycle: a phase with a
    10.00 fixed price and 5.00 monthly invoices 15.00 on 2011-01-01, then only 5.00 a month
    later."""
    plan = monthly(usd("5"), setup_fee=usd("10"))
    result = bills(plan, start=date(2011, 1, 1), until=date(2011, 2, 1))
    assert billed(result) == [(date(2011, 1, 1), usd("15.00")), (date(2011, 2, 1), usd("5.00"))]


def test_kill_bill_two_add_ons_at_nine_tenths() -> None:
    """killbill/killbill TestDefaultInvoiceGenerator.java, testWithFullRepairInvoiceGeneration:
    add-ons at 5.00 and 20.00 monthly created 2012-04-28 with bill cycle day 25 invoice
    25 × 0.9 = 22.50 (27 of 30 days)."""
    totals = [
        bills(
            monthly(usd(p)),
            start=date(2012, 4, 28),
            anchor=date(2012, 4, 25),
            until=date(2012, 4, 28),
        )[0].total
        for p in ("5", "20")
    ]
    assert totals == [usd("4.50"), usd("18.00")]
    assert totals[0] + totals[1] == usd("22.50")


def test_kill_bill_thirty_days_periods_and_first_bill_cycle_dates() -> None:
    """killbill/killbill TestInvoiceDateUtils.java, testAdvanceByNPeriods (THIRTY_DAYS from
    2016-04-08: 05-08, 06-07, 07-07, 08-06, 09-05, 10-05, 11-04) and
    TestInAdvanceBillingIntervalDetail.java, testCalculateFirstBillingCycleDate2/3 (bill cycle
    day 30 from 2012-02-16 or 2012-01-31: first bill cycle date 2012-02-29)."""
    plan = Plan(price=usd("30"), period=Period.days(30))
    result = bills(plan, start=date(2016, 4, 8), until=date(2016, 11, 4))
    assert [b.billed_on for b in result][1:] == [
        date(2016, 5, 8),
        date(2016, 6, 7),
        date(2016, 7, 7),
        date(2016, 8, 6),
        date(2016, 9, 5),
        date(2016, 10, 5),
        date(2016, 11, 4),
    ]
    bcd30 = date(2012, 1, 30)
    for start in (date(2012, 2, 16), date(2012, 1, 31)):
        assert period_at(monthly(usd("1")), start, start=start, anchor=bcd30)[1] == date(
            2012, 2, 29
        )


def test_kill_bill_b1_minus_a_period_is_reproduced_by_anchoring_on_b1() -> None:
    """killbill/killbill invoice/src/main/java/org/killbill/billing/invoice/generator/
    InvoiceDateUtils.java, calculateProRationBeforeFirstBillingPeriod: the whole period of a
    leading stub is ``[b1 − period, b1)``. Bill cycle day 30, start 2012-02-10, b1 2012-02-29:
    Kill Bill measures 19 of 31 days (from Jan 29); our anchored sequence measures 19 of 30
    (from Jan 30). ``anchor=b1`` makes ``b0 = b1 − period`` and reproduces Kill Bill."""
    plan = monthly(usd("100"))
    ours = bills(plan, start=date(2012, 2, 10), anchor=date(2012, 1, 30), until=date(2012, 2, 10))
    kill_bill = bills(
        plan, start=date(2012, 2, 10), anchor=date(2012, 2, 29), until=date(2012, 2, 10)
    )
    assert ours[0].total == usd("63.33")  # 100 × 19/30
    assert kill_bill[0].total == usd("61.29")  # 100 × 19/31
    assert "19 of 31 days (Feb 10 to Feb 29)" in kill_bill[0].lines[0].description


# -- Lago: calendar billing is an anchor on the 1st (or a Monday), pay in arrears by default -------
def test_lago_calendar_monthly_trial_ends_in_period() -> None:
    """getlago/lago-api spec/services/fees/subscription_service_spec.rb, "when invoice is on a
    full period / when plan has a trial period / when trial end in period": a 1.00 EUR monthly
    plan started 2022-03-01 with a 3-day trial bills 90 cents for March (28 of 31 days), in
    arrears on April 1."""
    plan = monthly(
        eur("1.00"),
        timing=BillingTiming.IN_ARREARS,
        trial=Trial(length=Period.days(3), price=eur("0")),
    )
    result = bills(plan, start=date(2022, 3, 1), anchor=date(2022, 1, 1), until=date(2022, 4, 1))
    assert billed(result)[1:] == [(date(2022, 4, 1), eur("0.90"))]


def test_lago_calendar_monthly_and_yearly_first_periods() -> None:
    """getlago/lago-api spec/services/fees/subscription_service_spec.rb, "when subscription has
    never been billed": 1.00 EUR started 2022-03-15 bills 55 cents monthly (17 of 31 days),
    45 cents with a 3-day trial (14 of 31) and 80 cents yearly (292 of 365), whether paid in
    advance or in arrears."""
    start, calendar = date(2022, 3, 15), date(2022, 1, 1)
    for timing in BillingTiming:
        plain = monthly(eur("1.00"), timing=timing)
        trial = monthly(
            eur("1.00"), timing=timing, trial=Trial(length=Period.days(3), price=eur("0"))
        )
        yearly = Plan(price=eur("1.00"), period=Period.years(1), timing=timing)
        far = date(2023, 1, 1)
        assert bills(plain, start=start, anchor=calendar, until=far)[0].total == eur("0.55")
        assert bills(trial, start=start, anchor=calendar, until=far)[1].total == eur("0.45")
        assert bills(yearly, start=start, anchor=calendar, until=far)[0].total == eur("0.80")


def test_lago_calendar_weekly_trials() -> None:
    """getlago/lago-api spec/services/fees/subscription_service_spec.rb, "when plan is weekly":
    weeks start on Monday. Started Monday 2022-06-20 with a 3-day trial: 57 cents (4 of 7 days,
    "100 - ((100/7)*3)"); started Wednesday 2022-06-22: 71 cents (5 of 7), 29 cents with a 3-day
    trial (2 of 7)."""
    monday = date(2022, 6, 20)
    trial = Trial(length=Period.days(3), price=eur("0"))
    weekly = Plan(price=eur("1.00"), period=Period.weeks(1))
    with_trial = Plan(price=eur("1.00"), period=Period.weeks(1), trial=trial)
    until = date(2022, 6, 26)
    assert bills(with_trial, start=monday, anchor=monday, until=until)[1].total == eur("0.57")
    assert bills(weekly, start=date(2022, 6, 22), anchor=monday, until=until)[0].total == eur(
        "0.71"
    )
    assert bills(with_trial, start=date(2022, 6, 22), anchor=monday, until=until)[1].total == eur(
        "0.29"
    )


def test_lago_pay_in_advance_trials_on_a_plan_billed_before() -> None:
    """getlago/lago-api spec/services/fees/subscription_service_spec.rb, "when subscription has
    already been billed once on an other period / when plan is pay in advance": started
    2022-01-01, a 15-day trial on a monthly plan bills 52 cents (16 of 31 days) and a 35-day
    trial on a yearly plan 90 cents (329 of 365)."""
    start = date(2022, 1, 1)
    month = monthly(eur("1.00"), trial=Trial(length=Period.days(15), price=eur("0")))
    year = Plan(
        price=eur("1.00"),
        period=Period.years(1),
        trial=Trial(length=Period.days(35), price=eur("0")),
    )
    assert bills(month, start=start, anchor=start, until=date(2022, 1, 16))[1].total == eur("0.52")
    assert bills(year, start=start, anchor=start, until=date(2022, 2, 5))[1].total == eur("0.90")


def test_lago_free_trial_bills_at_its_end() -> None:
    """getlago/lago-api spec/scenarios/subscriptions/free_trial_billing_spec.rb, "with free
    trial / bills the customer at the end of the free trial": 50,000.00 monthly in advance,
    calendar, started 2024-03-05 with a 10-day trial: 27,419.35 billed 2024-03-15
    ((31 − 4 − 10) / 31 × 5,000,000 cents). Lago bills nothing at the start; we bill the free
    trial's 0.00 line."""
    plan = monthly(eur("50000.00"), trial=Trial(length=Period.days(10), price=eur("0")))
    result = bills(plan, start=date(2024, 3, 5), anchor=date(2024, 1, 1), until=date(2024, 4, 1))
    assert billed(result) == [
        (date(2024, 3, 5), eur("0.00")),
        (date(2024, 3, 15), eur("27419.35")),
        (date(2024, 4, 1), eur("50000.00")),
    ]


def test_lago_upgraded_plan_trial_and_trial_longer_than_a_period() -> None:
    """getlago/lago-api spec/scenarios/subscriptions/free_trial_billing_spec.rb, "with a plan
    upgrade during the trial": the 100,000.00 plan with a 13-day trial from 2024-03-05 bills
    45,161.29 on 2024-03-18 ((31 − 4 − 13) / 31) and 100,000.00 on 2024-04-01; "with free trial
    > billing period": a 45-day trial from 2024-03-05 bills 20,000.00 on 2024-04-19
    (5,000,000 cents × 12 / 30)."""
    calendar = date(2024, 1, 1)
    upgrade = monthly(eur("100000.00"), trial=Trial(length=Period.days(13), price=eur("0")))
    assert billed(bills(upgrade, start=date(2024, 3, 5), anchor=calendar, until=date(2024, 4, 1)))[
        1:
    ] == [
        (date(2024, 3, 18), eur("45161.29")),
        (date(2024, 4, 1), eur("100000.00")),
    ]
    long = monthly(eur("50000.00"), trial=Trial(length=Period.days(45), price=eur("0")))
    assert billed(bills(long, start=date(2024, 3, 5), anchor=calendar, until=date(2024, 4, 30)))[
        1:
    ] == [(date(2024, 4, 19), eur("20000.00"))]
