"""Write a payment gateway plugin, register it, and let the engine use it.

The plugin lives in ``examples/acme_gateway/`` as a package of its own: ``acme_gateway`` adapts a
(fake) processor API to billing_core's ``PaymentGateway`` protocol and offers it through the
``billing_core_payment_gateways`` hook. Installed with pip, its entry point in the
``billing_core`` group makes billing_core find it with no code at all::

    pip install ./examples/acme_gateway
    python -c "from billing_core.plugins.manager import Plugins; print(Plugins().gateways())"

This script registers the same plugin by hand instead, which is what a host does for a plugin
that lives in its own code base. Run it with ``.venv/bin/python examples/write_a_gateway_plugin.py``.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "acme_gateway"))

import acme_gateway

from billing_core import BillingEngine, Customer, Money
from billing_core.plugins.manager import Plugins
from billing_core.rules.permissions import Actor
from billing_core.testing.clock import ManualClock


def main() -> None:
    clock = ManualClock(datetime(2026, 11, 21, 9, 0, tzinfo=UTC))
    # sandbox=False: only real plugins; entry_points=False: only what is registered here
    plugins = Plugins(
        clock=clock, plugins=[acme_gateway], entry_points=False, settings={"sandbox": False}
    )
    print(f"gateways offered by the plugins: {sorted(plugins.gateways())}")
    engine = BillingEngine(store="memory://", clock=clock, plugins=plugins, gateway="acme")
    admin = Actor(id="ada", role="admin")
    engine.add_customer(Customer(id="c1", company="Acme Widgets"), actor=admin)

    sale = engine.charge("c1", Money("42.00", "USD"), idempotency_key="inv-7", actor=admin)
    print(f"charge through {engine.gateway.name}: {sale.outcome.value}, {sale.explanation}")
    assert sale.transaction_id is not None
    clock.advance(timedelta(days=2))  # AcmePay settles after a day
    refund = engine.refund_transaction(
        sale.transaction_id, amount=Money("12.00", "USD"), idempotency_key="ticket-9", actor=admin
    )
    print(f"refund: {refund.outcome.value}, {refund.explanation}")
    wrong = engine.charge("c1", Money("10.00", "EUR"), idempotency_key="inv-8", actor=admin)
    print(f"a currency AcmePay does not declare: {wrong.outcome.value}, {wrong.explanation}")


if __name__ == "__main__":
    main()
