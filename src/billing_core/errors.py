"""The errors billing_core raises, all under one root.

Bad input raises; a business "no" does not (it is a decision, see ``decisions``). Every error
names what was wrong and where, and is also the built-in exception a Python user would already
catch: a wrong *type* is a ``TypeError``, a wrong *value* a ``ValueError``.

    BillingError                       the root: ``except BillingError`` catches everything below
    ├── InvalidTypeError (TypeError)   a float amount, a bool, a str where a date belongs
    ├── InvalidValueError (ValueError) a value of the right type that cannot be used
    │   ├── InvalidAmountError         NaN, infinity, a negative or zero amount where one must be positive
    │   ├── UnknownCurrencyError       not an ISO 4217 code this library knows
    │   ├── CurrencyMismatchError      two currencies meet in arithmetic or a comparison
    │   ├── PrecisionError             an amount finer than the currency's minor unit where it must not be
    │   ├── NaiveDatetimeError         a datetime without a timezone
    │   ├── UnknownTimezoneError       a timezone name the tz database does not know
    │   └── StructureError             JSON that does not describe a value; lists every bad field
    ├── ConfigurationError (ValueError) a plan, policy or plugin set-up that cannot work
    │   └── PluginError                no store or gateway configured, two plugins with one name
    ├── IdempotencyError (ValueError)  one idempotency key reused with different parameters
    │   └── OperationInProgressError   the key's first execution has not finished yet
    ├── ConflictError                  the store refused a write another worker raced us to
    ├── NotFoundError (LookupError)    no customer, subscription or transaction with that id
    ├── PermissionDeniedError          a read by an actor the permission policy refuses (a read has
    │   (PermissionError)              no result to carry the denial; every other call answers one)
    ├── GatewayError                   a provider broke its contract (not a decline: declines are outcomes)
    └── StoreError                     the store failed (not the input); the message says what to do
        ├── StoreUnavailableError      the database cannot be reached or written: a refused
        │                              connection, a read-only, deleted or unopenable SQLite file
        └── SchemaVersionError         the database's schema is at a revision this billing_core
                                       does not know (newer): upgrade billing_core

Every error carries ``field`` (the path of the offending input, ``$.refund.amount``), ``value``
(what was given, when there was one) and ``reason`` (the message without the path). ``str(error)``
reads ``"must be positive @ $.refund.amount"``, the cattrs convention.
"""

from __future__ import annotations

from typing import Any, TypeVar

__all__ = [
    "BillingError",
    "ConfigurationError",
    "ConflictError",
    "CurrencyMismatchError",
    "GatewayError",
    "IdempotencyError",
    "InvalidAmountError",
    "InvalidTypeError",
    "InvalidValueError",
    "NaiveDatetimeError",
    "NotFoundError",
    "OperationInProgressError",
    "PermissionDeniedError",
    "PluginError",
    "PrecisionError",
    "SchemaVersionError",
    "StoreError",
    "StoreUnavailableError",
    "StructureError",
    "UnknownCurrencyError",
    "UnknownTimezoneError",
    "join_path",
    "require_type",
]

_MISSING: Any = object()


def join_path(prefix: str | None, field: str | None) -> str | None:
    """Join two parts of a field path: ``join_path("refund", "amount") == "$.refund.amount"``."""
    parts = [p.removeprefix("$").removeprefix(".") for p in (prefix, field) if p]
    parts = [p for p in parts if p]
    if not parts:
        return None
    joined = ".".join(parts).replace(".[", "[")
    return "$." + joined if not joined.startswith("[") else "$" + joined


class BillingError(Exception):
    """The root of every error billing_core raises on purpose."""

    def __init__(self, reason: str, *, field: str | None = None, value: Any = _MISSING) -> None:
        self.reason = reason
        self.field = join_path(None, field)
        self.value = None if value is _MISSING else value
        self.has_value = value is not _MISSING
        super().__init__(self._render())

    def _render(self) -> str:
        return f"{self.reason} @ {self.field}" if self.field else self.reason

    def at(self, prefix: str) -> BillingError:
        """Re-root the error under ``prefix``: ``amount`` becomes ``$.refund.amount``."""
        self.field = join_path(prefix, self.field) or join_path(prefix, None)
        self.args = (self._render(),)
        return self

    def __reduce__(self) -> Any:  # picklable across worker processes
        return (_rebuild, (type(self), self.reason, self.field, self.value, self.has_value))


def _rebuild(
    cls: type[BillingError], reason: str, field: str | None, value: Any, has_value: bool
) -> BillingError:
    err = cls.__new__(cls)
    BillingError.__init__(err, reason, field=field, value=value if has_value else _MISSING)
    return err


class InvalidTypeError(BillingError, TypeError):
    """A value of the wrong type: a float amount, a bool, a string where a date belongs."""


class InvalidValueError(BillingError, ValueError):
    """A value of the right type that cannot be used."""


class InvalidAmountError(InvalidValueError):
    """NaN, an infinity, or a sign that the field does not allow."""


class UnknownCurrencyError(InvalidValueError):
    """A currency code that is not in the ISO 4217 table."""


class CurrencyMismatchError(InvalidValueError):
    """Two different currencies met in arithmetic or a comparison."""


class PrecisionError(InvalidValueError):
    """An amount finer than the currency's minor unit where an exact minor amount is needed."""


class NaiveDatetimeError(InvalidValueError):
    """A datetime without timezone information."""


class UnknownTimezoneError(InvalidValueError):
    """A timezone name the tz database does not know."""


class StructureError(InvalidValueError):
    """JSON that does not describe a value. ``errors`` lists one ``(path, reason)`` per bad field."""

    def __init__(
        self, reason: str, *, errors: list[tuple[str, str]], value: Any = _MISSING
    ) -> None:
        self.errors = list(errors)
        detail = "; ".join(f"{msg} @ {path}" for path, msg in self.errors)
        super().__init__(f"{reason}: {detail}" if detail else reason, value=value)

    def __reduce__(self) -> Any:
        return (_rebuild_structure, (type(self), self.reason, self.errors))


def _rebuild_structure(
    cls: type[StructureError], reason: str, errors: list[tuple[str, str]]
) -> StructureError:
    return cls(reason, errors=errors)


class ConfigurationError(BillingError, ValueError):
    """A plan, policy or set-up that cannot work (a metered price on a prepaid plan)."""


class PluginError(ConfigurationError):
    """No store or gateway configured, or two plugins claiming the same name."""


class IdempotencyError(BillingError, ValueError):
    """An idempotency key reused with different parameters."""


class OperationInProgressError(IdempotencyError):
    """The first execution under this idempotency key has not finished; ask again later."""


class ConflictError(BillingError):
    """A write lost a race (another worker changed the record first); safe to retry."""


class NotFoundError(BillingError, LookupError):
    """No record with the given id."""


class PermissionDeniedError(BillingError, PermissionError):
    """A read (``engine.transaction(...)``, ``engine.audit_log()``, ...) by an actor the permission
    policy refuses. Calls that change something answer a denial instead of raising."""


class GatewayError(BillingError):
    """A gateway or provider broke its contract (returned something that is not an outcome)."""


class StoreError(BillingError):
    """The store or its driver failed on a well-formed request; the message says what to do."""


class StoreUnavailableError(StoreError):
    """The database cannot be reached or written (a refused connection, a read-only, deleted or
    unopenable SQLite file): fix the store's set-up, then ask again with the same keys."""


class SchemaVersionError(StoreError):
    """The database's schema is at a revision this billing_core does not know (a newer one):
    run a billing_core that knows it, or point at another database."""


T = TypeVar("T")


def require_type(value: object, cls: type[T], field: str) -> T:
    """``value`` if it is a ``cls``; else an ``InvalidTypeError`` naming ``field``."""
    if not isinstance(value, cls):
        raise InvalidTypeError(
            f"must be a {cls.__name__}, not {type(value).__name__}", field=field, value=value
        )
    return value
