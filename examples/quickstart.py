"""billing_core in one page: exact money, anchored periods, and (as they land) the rules and the
engine on the embedded SQLite store. Run it with ``python3 dev.py example``."""

from __future__ import annotations

from datetime import date
from fractions import Fraction

from billing_core import BillingError, Money, Period, service_periods


def main() -> None:
    print("== Money is exact, rounded once, and split without losing a cent")
    price = Money("120.00", "USD")
    print(f"17/31 of {price} = {price.scale(Fraction(17, 31))}")
    print(f"100 JPY split 1:2 = {' + '.join(str(p) for p in Money(100, 'JPY').allocate([1, 2]))}")
    print(f"10.00 USD split three ways = {', '.join(map(str, Money('10.00', 'USD').allocate([1, 1, 1])))}")
    try:
        Money(19.99, "USD")  # type: ignore[arg-type]
    except BillingError as err:
        print(f"a float is refused: {err}")

    print("\n== Periods are anchored: month ends never drift")
    for span in service_periods(date(2024, 1, 31), Period.months(1), count=4):
        print(f"period {span.index + 1}: {span.start} to {span.end}")
    print(f"one year before 2026-11-21: {Period.years(1).before(date(2026, 11, 21))}")


if __name__ == "__main__":
    main()
