"""ISO 4217 currency codes and their minor-unit exponents.

The exponent says how many decimal places the currency's smallest unit has: JPY 0 (1 yen),
USD 2 (1 cent), KWD 3 (1 fils), CLF and UYW 4. The table holds every active code of the ISO 4217
list that has a minor unit, plus the codes withdrawn in recent years (ANG, CUC, HRK, SLL, ZWL), so
that historical transactions still load. Codes without a minor unit (precious metals XAU, XAG,
XPD, XPT; bond units XBA..XBD; XDR, XSU, XUA; the test and "no currency" codes XTS, XXX) are not
money a customer is billed in, and are refused.

Hosts may register a code of their own (a loyalty point, a stable coin) with ``register_currency``.
"""

from __future__ import annotations

from .errors import InvalidTypeError, InvalidValueError, UnknownCurrencyError

__all__ = ["MINOR_UNITS", "minor_unit_exponent", "register_currency"]

_TWO = [
    "AED",
    "AFN",
    "ALL",
    "AMD",
    "AOA",
    "ARS",
    "AUD",
    "AWG",
    "AZN",
    "BAM",
    "BBD",
    "BDT",
    "BGN",
    "BMD",
    "BND",
    "BOB",
    "BOV",
    "BRL",
    "BSD",
    "BTN",
    "BWP",
    "BYN",
    "BZD",
    "CAD",
    "CDF",
    "CHE",
    "CHF",
    "CHW",
    "CNY",
    "COP",
    "COU",
    "CRC",
    "CUP",
    "CVE",
    "CZK",
    "DKK",
    "DOP",
    "DZD",
    "EGP",
    "ERN",
    "ETB",
    "EUR",
    "FJD",
    "FKP",
    "GBP",
    "GEL",
    "GHS",
    "GIP",
    "GMD",
    "GTQ",
    "GYD",
    "HKD",
    "HNL",
    "HTG",
    "HUF",
    "IDR",
    "ILS",
    "INR",
    "IRR",
    "JMD",
    "KES",
    "KGS",
    "KHR",
    "KPW",
    "KYD",
    "KZT",
    "LAK",
    "LBP",
    "LKR",
    "LRD",
    "LSL",
    "MAD",
    "MDL",
    "MGA",
    "MKD",
    "MMK",
    "MNT",
    "MOP",
    "MRU",
    "MUR",
    "MVR",
    "MWK",
    "MXN",
    "MXV",
    "MYR",
    "MZN",
    "NAD",
    "NGN",
    "NIO",
    "NOK",
    "NPR",
    "NZD",
    "PAB",
    "PEN",
    "PGK",
    "PHP",
    "PKR",
    "PLN",
    "QAR",
    "RON",
    "RSD",
    "RUB",
    "SAR",
    "SBD",
    "SCR",
    "SDG",
    "SEK",
    "SGD",
    "SHP",
    "SLE",
    "SOS",
    "SRD",
    "SSP",
    "STN",
    "SVC",
    "SYP",
    "SZL",
    "THB",
    "TJS",
    "TMT",
    "TOP",
    "TRY",
    "TTD",
    "TWD",
    "TZS",
    "UAH",
    "USD",
    "USN",
    "UYU",
    "UZS",
    "VED",
    "VES",
    "WST",
    "XCD",
    "XCG",
    "YER",
    "ZAR",
    "ZMW",
    "ZWG",
]
_ZERO = [
    "BIF",
    "CLP",
    "DJF",
    "GNF",
    "ISK",
    "JPY",
    "KMF",
    "KRW",
    "PYG",
    "RWF",
    "UGX",
    "UYI",
    "VND",
    "VUV",
    "XAF",
    "XOF",
    "XPF",
]
_THREE = ["BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"]
_FOUR = ["CLF", "UYW"]
# Withdrawn codes kept so that historical records load: all had two decimals.
_WITHDRAWN = ["ANG", "CUC", "HRK", "SLL", "ZWL"]

MINOR_UNITS: dict[str, int] = {
    **dict.fromkeys(_TWO + _WITHDRAWN, 2),
    **dict.fromkeys(_ZERO, 0),
    **dict.fromkeys(_THREE, 3),
    **dict.fromkeys(_FOUR, 4),
}
"""Currency code -> number of decimal places of its minor unit."""


def minor_unit_exponent(currency: str, field: str = "currency") -> int:
    """The minor-unit exponent of ``currency``; raises ``UnknownCurrencyError`` for unknown codes."""
    try:
        return MINOR_UNITS[currency]
    except KeyError:
        if not isinstance(currency, str):
            raise InvalidTypeError(
                f"must be an ISO 4217 code string, not {type(currency).__name__}",
                field=field,
                value=currency,
            ) from None
        raise UnknownCurrencyError(
            f"unknown currency {currency!r} (not an ISO 4217 code with a minor unit)",
            field=field,
            value=currency,
        ) from None
    except TypeError:  # unhashable
        raise InvalidTypeError(
            f"must be an ISO 4217 code string, not {type(currency).__name__}",
            field=field,
            value=currency,
        ) from None


def register_currency(code: str, exponent: int) -> None:
    """Add a currency code of the host's own (three upper-case letters, exponent 0 to 8)."""
    if not (isinstance(code, str) and len(code) == 3 and code.isalpha() and code.isupper()):
        raise InvalidValueError("must be three upper-case letters", field="code", value=code)
    if isinstance(exponent, bool) or not isinstance(exponent, int) or not 0 <= exponent <= 8:
        raise InvalidValueError("must be an integer from 0 to 8", field="exponent", value=exponent)
    existing = MINOR_UNITS.get(code)
    if existing is not None and existing != exponent:
        raise InvalidValueError(
            f"{code} is already registered with exponent {existing}", field="code", value=code
        )
    MINOR_UNITS[code] = exponent
