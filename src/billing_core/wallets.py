"""A customer's payment instruments, as stored: the ``Wallet`` (seed 003).

One ``Wallet`` per customer holds its instruments (``PaymentInstrument``: kind, fingerprint,
expiry, active, an optional sticky gateway), which one is the **primary**, the **backups** in the
order they are tried, and the **order defaults**: an instrument chosen for one order (a
subscription id) that takes precedence over the primary when that order is charged.

The wallet checks its own shape (bad input raises, naming the field): instrument ids are unique;
the primary, every backup and every order default name an instrument of the wallet; a backup is
never the primary (``backups[i]``) nor a repeat. Whether an instrument may be *chosen* as a
default today (not expired, not inactive) is a rule: ``rules.collection.check_default``, which
the engine applies when a default is chosen. Which instruments are tried, in which order, is
``rules.collection.plan_payment`` over :meth:`Wallet.candidates`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from .errors import InvalidTypeError, InvalidValueError
from .instruments import PaymentInstrument
from .model import _non_empty_str

__all__ = ["Wallet"]


def _instruments(value: Iterable[PaymentInstrument]) -> tuple[PaymentInstrument, ...]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise InvalidTypeError("must be a sequence of PaymentInstrument", field="instruments")
    out = tuple(value)
    for i, item in enumerate(out):
        if not isinstance(item, PaymentInstrument):
            raise InvalidTypeError(
                f"must be a PaymentInstrument, not {type(item).__name__}",
                field=f"instruments[{i}]",
                value=item,
            )
    return out


def _ids(value: Iterable[str]) -> tuple[str, ...]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise InvalidTypeError("must be a sequence of instrument ids", field="backups", value=value)
    return tuple(value)


def _defaults(value: Mapping[str, str]) -> Mapping[str, str]:
    if not isinstance(value, Mapping):
        raise InvalidTypeError(
            "must be a mapping of order id to instrument id", field="order_defaults", value=value
        )
    return dict(value)


@attrs.frozen(kw_only=True)
class Wallet:
    """A customer's instruments, its primary, its backups in order, and per-order defaults."""

    customer_id: str = attrs.field(validator=_non_empty_str)
    instruments: tuple[PaymentInstrument, ...] = attrs.field(default=(), converter=_instruments)
    primary_id: str | None = None
    backup_ids: tuple[str, ...] = attrs.field(default=(), converter=_ids)
    order_defaults: Mapping[str, str] = attrs.field(factory=dict, converter=_defaults)

    def __attrs_post_init__(self) -> None:
        seen: set[str] = set()
        for i, instrument in enumerate(self.instruments):
            if instrument.id in seen:
                raise InvalidValueError(
                    f"repeats instrument id {instrument.id}", field=f"instruments[{i}]"
                )
            seen.add(instrument.id)
        if self.primary_id is not None and self.primary_id not in seen:
            raise InvalidValueError(
                f"names no instrument of customer {self.customer_id}",
                field="primary_id",
                value=self.primary_id,
            )
        backups: set[str] = set()
        for i, backup in enumerate(self.backup_ids):
            field = f"backups[{i}]"
            if not isinstance(backup, str) or backup not in seen:
                raise InvalidValueError(
                    f"names no instrument of customer {self.customer_id}", field=field, value=backup
                )
            if backup == self.primary_id:
                raise InvalidValueError(
                    f"names the customer's primary instrument {backup}; a backup is another one",
                    field=field,
                    value=backup,
                )
            if backup in backups:
                raise InvalidValueError(f"repeats backup {backup}", field=field, value=backup)
            backups.add(backup)
        for order_id, instrument_id in self.order_defaults.items():
            if instrument_id not in seen:
                raise InvalidValueError(
                    f"names no instrument of customer {self.customer_id}",
                    field=f"order_defaults.{order_id}",
                    value=instrument_id,
                )

    def get(self, instrument_id: str) -> PaymentInstrument | None:
        """The instrument with this id, if the wallet holds it."""
        return next((i for i in self.instruments if i.id == instrument_id), None)

    @property
    def primary(self) -> PaymentInstrument | None:
        return None if self.primary_id is None else self.get(self.primary_id)

    @property
    def backups(self) -> tuple[PaymentInstrument, ...]:
        return tuple(i for b in self.backup_ids if (i := self.get(b)) is not None)

    def order_default(self, order_id: str | None) -> PaymentInstrument | None:
        """The default instrument chosen for ``order_id`` (a subscription), if any."""
        if order_id is None or order_id not in self.order_defaults:
            return None
        return self.get(self.order_defaults[order_id])

    def candidates(self, order_id: str | None = None) -> dict[str, Any]:
        """The keyword arguments of ``rules.collection.plan_payment`` (without ``today``)."""
        return {
            "order_default": self.order_default(order_id),
            "customer_primary": self.primary,
            "backups": self.backups,
        }

    def fingerprints(self) -> tuple[str, ...]:
        """Every instrument's fingerprint (what blocklists match cards on)."""
        return tuple(i.fingerprint for i in self.instruments if i.fingerprint)

    def with_instrument(self, instrument: PaymentInstrument) -> Wallet:
        """This wallet with ``instrument`` added, or replacing the one with its id."""
        kept = [i for i in self.instruments if i.id != instrument.id]
        if len(kept) == len(self.instruments):
            return attrs.evolve(self, instruments=(*self.instruments, instrument))
        replaced = tuple(instrument if i.id == instrument.id else i for i in self.instruments)
        return attrs.evolve(self, instruments=replaced)
