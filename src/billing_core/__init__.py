"""billing_core: an embeddable billing rules engine.

Exact to the cent (``Decimal`` only, rounded once at the end), explainable (every "no" is a
decision with a reason code and a sentence with the figures), pure at the core (rules take
``now``/``today`` as arguments and do no I/O) and extensible through pluggy plugins.

The public surface is small and listed in ``__all__``; the rules live in ``billing_core.rules``.
"""

from typing import TYPE_CHECKING, Any

from .blocklists import BlocklistEntry, BlocklistKind
from .decisions import Decision, Reason
from .errors import (
    BillingError,
    ConfigurationError,
    ConflictError,
    CurrencyMismatchError,
    GatewayError,
    IdempotencyError,
    InvalidAmountError,
    InvalidTypeError,
    InvalidValueError,
    NaiveDatetimeError,
    NotFoundError,
    OperationInProgressError,
    PluginError,
    PrecisionError,
    SchemaVersionError,
    StoreError,
    StoreUnavailableError,
    StructureError,
    UnknownCurrencyError,
    UnknownTimezoneError,
)
from .instruments import InstrumentKind, PaymentInstrument
from .invoices import (
    Coupon,
    CouponDuration,
    CreditMemoBalance,
    CreditMemoItem,
    ExemptionStatus,
    Invoice,
    InvoiceStatus,
    InvoiceTotals,
    TaxExemption,
    TaxRate,
)
from .model import (
    Certificate,
    CertificateLine,
    CertificateStatus,
    Customer,
    InvoiceLine,
    InvoiceLineKind,
    Subscription,
    SubscriptionState,
    Transaction,
    TransactionKind,
    TransactionStatus,
    UsageEvent,
)
from .money import Money
from .periods import Period, PeriodUnit, ServicePeriod, service_periods
from .plans import BillingTiming, Plan, Trial
from .rules.dunning import DunningPolicy
from .wallets import Wallet

if TYPE_CHECKING:
    from .engine import BillingEngine

__version__ = "0.1.0"

__all__ = [
    "BillingEngine",
    "BillingError",
    "BillingTiming",
    "BlocklistEntry",
    "BlocklistKind",
    "Certificate",
    "CertificateLine",
    "CertificateStatus",
    "ConfigurationError",
    "ConflictError",
    "Coupon",
    "CouponDuration",
    "CreditMemoBalance",
    "CreditMemoItem",
    "CurrencyMismatchError",
    "Customer",
    "Decision",
    "DunningPolicy",
    "ExemptionStatus",
    "GatewayError",
    "IdempotencyError",
    "InstrumentKind",
    "InvalidAmountError",
    "InvalidTypeError",
    "InvalidValueError",
    "Invoice",
    "InvoiceLine",
    "InvoiceLineKind",
    "InvoiceStatus",
    "InvoiceTotals",
    "Money",
    "NaiveDatetimeError",
    "NotFoundError",
    "OperationInProgressError",
    "PaymentInstrument",
    "Period",
    "PeriodUnit",
    "Plan",
    "PluginError",
    "PrecisionError",
    "Reason",
    "SchemaVersionError",
    "ServicePeriod",
    "StoreError",
    "StoreUnavailableError",
    "StructureError",
    "Subscription",
    "SubscriptionState",
    "TaxExemption",
    "TaxRate",
    "Transaction",
    "TransactionKind",
    "TransactionStatus",
    "Trial",
    "UnknownCurrencyError",
    "UnknownTimezoneError",
    "UsageEvent",
    "Wallet",
    "__version__",
    "service_periods",
]


def __getattr__(name: str) -> Any:
    """``BillingEngine`` is imported on first use, so the values and rules stay light to import."""
    if name == "BillingEngine":
        from .engine import BillingEngine

        return BillingEngine
    raise AttributeError(f"module 'billing_core' has no attribute {name!r}")
