"""The operator command line, ``billing-core`` (also ``python -m billing_core``).

    billing-core --store sqlite:///billing.sqlite3 db upgrade
    billing-core --store ... --gateway sandbox worker --interval 60
    billing-core --store ... --gateway acme reconcile
    billing-core --store ... explain refund tx-4f0c...
    billing-core explain start --start 2026-05-21 --term P1Y --price 100.00 --currency USD
    billing-core --store ... customer show cust-acme --json

Modules, each named for what it holds: ``app`` (the parser, ``main``, exit codes), ``runtime``
(global options, opening the store and the engine), ``schema`` (the schema revision), ``db``,
``worker`` (and ``reconcile``), ``steps`` (what a worker pass does), ``leases`` (one worker at a
time per step lease), ``explain``, ``customers``. The CLI sits above the engine and uses only
its public calls and store sessions for reads; see docs/cli.md.
"""

from __future__ import annotations

from .app import main

__all__ = ["main"]
