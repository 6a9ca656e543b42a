"""A plugin for the CLI tests' subprocesses (``--plugin cli_gateway_plugin``): the
``SharedGateway`` named ``shared`` with its ledger in the store's own database (the URL in
``BILLING_CORE_STORE``), so the test process and every worker process see one processor."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta

from billing_core.plugins.hookspecs import hookimpl
from billing_core.plugins.protocols import PaymentGateway
from billing_core.testing.shared_gateway import SharedGateway


@hookimpl
def billing_core_payment_gateways(clock: Callable[[], datetime]) -> Iterable[PaymentGateway]:
    url = os.environ["BILLING_CORE_STORE"]
    return [SharedGateway(url, clock=clock, settle_after=timedelta(0), create=False)]
