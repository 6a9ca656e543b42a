"""Tax on an invoice: rates after discounts, and exemption documents (SPEC 6.2, seed 004).

* **Rates.** Each ``TaxRate`` applies once to the whole taxable amount (the subtotal less the
  discount): ``round_half_up(base × percent / 100)``, computed exactly and rounded once per rate.
  The invoice's tax is the sum of those amounts. Two rates of 10% and 12% on 30.00 are 3.00 +
  3.60, never 22% rounded once.
* **Exemption.** A ``TaxExemption`` exempts only when its status is ``valid`` and ``on`` (the
  invoice's date) is on or before ``valid_until`` (when it has one). A document that is ``new``,
  ``in_review`` or ``expired`` does not exempt, whatever its date. An exempt invoice's tax is zero
  for every rate, and the explanation names the document and until when it is valid.

Dates are plain local dates; ``on`` is always passed in.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from fractions import Fraction

import attrs

from ..errors import InvalidTypeError, InvalidValueError
from ..invoices import ExemptionStatus, TaxExemption, TaxRate
from ..money import Money
from ..timeutil import require_date

__all__ = ["TaxResult", "describe_exemption", "is_exempt", "taxes"]


def _check_exemption(exemption: object) -> TaxExemption:
    if not isinstance(exemption, TaxExemption):
        raise InvalidTypeError(
            f"must be a TaxExemption, not {type(exemption).__name__}",
            field="exemption",
            value=exemption,
        )
    return exemption


def is_exempt(exemption: TaxExemption, *, on: date) -> bool:
    """True when ``exemption`` is ``valid`` and ``on`` is not after its ``valid_until``.

    >>> is_exempt(TaxExemption(status=ExemptionStatus.VALID, valid_until=date(2027, 1, 1)),
    ...           on=date(2027, 1, 1))
    True
    """
    _check_exemption(exemption)
    require_date(on, "on")
    if exemption.status is not ExemptionStatus.VALID:
        return False
    return exemption.valid_until is None or on <= exemption.valid_until


def describe_exemption(exemption: TaxExemption, *, on: date) -> str:
    """One sentence: whether the document exempts on ``on``, which document, until when."""
    exempt = is_exempt(exemption, on=on)
    doc = f"document {exemption.document_id}" if exemption.document_id else "document"
    until = (
        f"valid until {exemption.valid_until.isoformat()}"
        if exemption.valid_until is not None
        else "with no expiry date"
    )
    if exempt:
        return f"Tax exempt on {on.isoformat()}: tax exemption {doc} is valid, {until}."
    if exemption.status is ExemptionStatus.VALID:
        return (
            f"Not tax exempt on {on.isoformat()}: tax exemption {doc} was {until}, so tax applies."
        )
    return (
        f"Not tax exempt: tax exemption {doc} is {exemption.status.value.replace('_', ' ')}, "
        "not valid, so tax applies."
    )


@attrs.frozen(kw_only=True)
class TaxResult:
    """The tax on ``base``: one amount per rate (zero when exempt), their sum, and why."""

    base: Money
    amounts: tuple[Money, ...]
    tax: Money
    exempt: bool
    exempted_by: str | None
    explanation: str


def _check_rates(tax_rates: Iterable[TaxRate]) -> tuple[TaxRate, ...]:
    rates = tuple(tax_rates)
    for i, rate in enumerate(rates):
        if not isinstance(rate, TaxRate):
            raise InvalidTypeError(
                f"must be a TaxRate, not {type(rate).__name__}", field=f"tax_rates[{i}]", value=rate
            )
    return rates


def taxes(
    base: Money,
    tax_rates: Iterable[TaxRate],
    *,
    exemption: TaxExemption | None = None,
    on: date | None = None,
) -> TaxResult:
    """The tax on the taxable amount ``base``: per rate, ``round_half_up(base × percent / 100)``.

    ``on`` is required when ``exemption`` is given (bad input without it).
    """
    rates = _check_rates(tax_rates)
    zero = Money.zero(base.currency)
    exempt = False
    exemption_text = ""
    if exemption is not None:
        _check_exemption(exemption)
        if on is None:
            raise InvalidValueError(
                "is required to judge a tax exemption (the invoice's date)", field="on", value=None
            )
        exempt = is_exempt(exemption, on=on)
        exemption_text = describe_exemption(exemption, on=on)
    if exempt:
        amounts = tuple(zero for _ in rates)
        steps = [exemption_text, f"Tax: {zero}."]
    else:
        amounts = tuple(base.scale(Fraction(rate.percent) / 100) for rate in rates)
        steps = [exemption_text] if exemption_text else []
        steps += [
            f"{rate.name} {rate.percent}% of {base}: {amount}."
            for rate, amount in zip(rates, amounts, strict=True)
        ]
        if not rates:
            steps.append("No tax rate applies.")
    total = sum(amounts, zero)
    if len(rates) > 1 and not exempt:
        steps.append(f"Tax: {total}.")
    return TaxResult(
        base=base,
        amounts=amounts,
        tax=total,
        exempt=exempt,
        exempted_by=exemption.document_id if exempt and exemption is not None else None,
        explanation=" ".join(steps),
    )
