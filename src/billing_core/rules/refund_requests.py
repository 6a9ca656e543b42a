"""Reading a refund request: the amount, the certificates per line, the certificate's status.

Bad input raises a ``BillingError`` naming the field (``amount``, ``certificates[0]``,
``certificate``); what is merely too much is left to ``refunds.assess_refund`` to deny.
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs

from ..errors import (
    CurrencyMismatchError,
    InvalidAmountError,
    InvalidTypeError,
    InvalidValueError,
    PrecisionError,
)
from ..model import CertificateStatus, Transaction
from ..money import Money, to_decimal

__all__ = ["LineRefund", "certificate_status", "requested_amount", "requested_lines"]


@attrs.frozen(kw_only=True)
class LineRefund:
    """``quantity`` certificates of ``transaction.lines[line]``, worth ``amount``."""

    line: int
    quantity: int
    amount: Money


def requested_amount(amount: object, transaction: Transaction) -> Money | None:
    """``amount=`` as a positive ``Money`` of whole minor units in the transaction's currency."""
    if amount is None:
        return None
    if isinstance(amount, Money):
        money = amount
    else:
        money = Money(to_decimal(amount, "amount"), transaction.currency)
    if money.currency != transaction.currency:
        raise CurrencyMismatchError(
            f"must be in the transaction's currency {transaction.currency}, not {money.currency}",
            field="amount",
            value=amount,
        )
    if money.amount <= 0:
        raise InvalidAmountError("must be positive", field="amount", value=amount)
    if not money.is_rounded:
        raise PrecisionError(
            f"must be a whole number of {transaction.currency} minor units",
            field="amount",
            value=amount,
        )
    return money


def _line_index(key: object, transaction: Transaction) -> int:
    lines = transaction.lines
    field = f"certificates[{key!r}]"
    if isinstance(key, bool) or not isinstance(key, (int, str)):
        raise InvalidTypeError(
            f"keys must be a line index or a certificate id or type, not {type(key).__name__}",
            field=field,
            value=key,
        )
    if isinstance(key, int):
        if not 0 <= key < len(lines):
            raise InvalidValueError(
                f"the transaction has {len(lines)} certificate line(s)", field=field, value=key
            )
        return key
    by_id = [i for i, line in enumerate(lines) if line.certificate_id == key]
    by_type = [i for i, line in enumerate(lines) if line.certificate_type == key]
    if len(by_id) == 1:
        return by_id[0]
    if not by_id and len(by_type) == 1:
        return by_type[0]
    raise InvalidValueError(
        "names no single certificate line (use the line's index)", field=field, value=key
    )


def requested_lines(certificates: object, transaction: Transaction) -> tuple[LineRefund, ...]:
    """``certificates=`` as line refunds in line order; bad keys or counts raise."""
    if not isinstance(certificates, Mapping):
        raise InvalidTypeError(
            f"must be a mapping of line to count, not {type(certificates).__name__}",
            field="certificates",
            value=certificates,
        )
    if not certificates:
        raise InvalidValueError("must name at least one line", field="certificates", value={})
    counts: dict[int, int] = {}
    for key, count in certificates.items():
        index = _line_index(key, transaction)
        field = f"certificates[{key!r}]"
        if isinstance(count, bool) or not isinstance(count, int):
            raise InvalidTypeError(
                f"must be an int count, not {type(count).__name__}", field=field, value=count
            )
        if count <= 0:
            raise InvalidAmountError("must be positive", field=field, value=count)
        if index in counts:
            raise InvalidValueError("names a line given twice", field=field, value=key)
        counts[index] = count
    return tuple(
        LineRefund(line=i, quantity=q, amount=transaction.lines[i].unit_price * q)
        for i, q in sorted(counts.items())
    )


def certificate_status(value: object) -> CertificateStatus | None:
    if value is None or isinstance(value, CertificateStatus):
        return value
    if not isinstance(value, str):
        raise InvalidTypeError(
            f"must be a CertificateStatus or None, not {type(value).__name__}",
            field="certificate",
            value=value,
        )
    try:
        return CertificateStatus(value)
    except ValueError:
        allowed = ", ".join(s.value for s in CertificateStatus)
        raise InvalidValueError(
            f"must be a CertificateStatus ({allowed}) or None", field="certificate", value=value
        ) from None
