"""``billing-core explain``: the rules' sentences, for a support agent.

* ``explain refund TRANSACTION_ID [--amount 10.00]`` reads the transaction and the stored status
  of its certificates, and runs ``rules.refunds.assess_refund`` at the current time with the
  default ``RefundPolicy`` (30 days, UTC); nothing is written and no gateway is asked.
* ``explain start --start DATE --term P1Y --price 100.00 --currency USD [--today DATE]
  [--timezone ZONE]`` runs ``rules.backdating.assess_start``; ``today`` defaults to the current
  date in ``--timezone`` (UTC).

Each prints the verdict and the decision's sentence (``--json``: the decision's exact JSON form)
and exits 0 when allowed, 1 when denied, 2 for bad input.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import TypeVar

from ..decisions import Decision
from ..engine.certificate_refunds import certificate_ids, certificate_status
from ..errors import BillingError, InvalidValueError
from ..money import Money
from ..periods import Period
from ..rules.backdating import assess_start
from ..rules.refunds import assess_refund
from ..serialization import dumps
from ..timeutil import local_date, timezone
from .runtime import Exit, add_command, open_engine

__all__ = ["register"]

T = TypeVar("T")


def _parsed(field: str, parse: Callable[[str], T], text: str) -> T:
    """``parse(text)``, its error re-pointed at the command's option ``field``."""
    try:
        return parse(text)
    except BillingError as error:
        raise type(error)(error.reason, field=field, value=text) from None
    except ValueError as error:
        raise InvalidValueError(str(error), field=field, value=text) from None


def _iso_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"must be an ISO 8601 date such as 2026-11-21, not {text!r}") from None


def _show(decision: Decision, verdict: str, as_json: bool) -> int:
    if as_json:
        print(dumps(decision, indent=2))
    else:
        print(verdict)
        print(decision.explanation)
    return Exit.OK if decision.allowed else Exit.DENIED


def _refund(args: argparse.Namespace) -> int:
    engine = open_engine(args, gateway_required=False)
    try:
        transaction = engine.transaction(args.transaction_id)
        with engine.store.session() as s:  # the stored statuses; the provider is not asked
            certificate = certificate_status(s, certificate_ids(transaction, None), {})
        amount = (
            None
            if args.amount is None
            else _parsed("amount", lambda text: Money(text, transaction.currency), args.amount)
        )
        decision = assess_refund(
            transaction, now=engine.clock(), amount=amount, certificate=certificate
        )
    finally:
        engine.store.close()
    if decision.allowed:
        verdict = f"{transaction.id}: allowed, {decision.action} {decision.amount}"
    else:
        verdict = f"{transaction.id}: denied ({decision.reason})"
    return _show(decision, verdict, args.json)


def _start(args: argparse.Namespace) -> int:
    zone = _parsed("timezone", timezone, args.timezone)
    start = _parsed("start", _iso_date, args.start)
    today = (
        _parsed("today", _iso_date, args.today)
        if args.today is not None
        else local_date(datetime.now(UTC), zone)
    )
    term = _parsed("term", Period.parse, args.term)
    price = _parsed("price", lambda text: Money(text, args.currency), args.price)
    decision = assess_start(start, term=term, today=today, price=price)
    if decision.allowed:
        verdict = (
            f"start {start}: allowed, charge {decision.charge} for {start} to {decision.term_end}"
        )
    else:
        verdict = f"start {start}: denied ({decision.reason}), earliest {decision.earliest_start}"
    return _show(decision, verdict, args.json)


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    explain = add_command(commands, "explain", summary="The rules' sentences, for support agents.")
    what = explain.add_subparsers(dest="explain_command", metavar="WHAT", required=True)
    refund = add_command(
        what, "refund", summary="May this transaction be refunded now, for how much, why not."
    )
    refund.add_argument("transaction_id", metavar="TRANSACTION_ID")
    refund.add_argument("--amount", help="a partial refund, in the transaction's currency")
    refund.add_argument("--json", action="store_true", help="print the decision as JSON")
    refund.set_defaults(handler=_refund)
    start = add_command(
        what, "start", summary="May a subscription start on DATE, and what does the term cost."
    )
    start.add_argument("--start", required=True, metavar="DATE", help="the start, 2026-05-21")
    start.add_argument("--term", required=True, help="an ISO 8601 duration: P1Y, P1M, P14D")
    start.add_argument("--price", required=True, help="the term's price, 100.00")
    start.add_argument("--currency", required=True, help="an ISO 4217 code, USD")
    start.add_argument("--today", metavar="DATE", help="today's date (default: now in --timezone)")
    start.add_argument("--timezone", default="UTC", help="for today's date (default UTC)")
    start.add_argument("--json", action="store_true", help="print the decision as JSON")
    start.set_defaults(handler=_start)
