"""``billing-core customer show ID``: one customer's state, for a support agent.

Reads, in one store session: the customer, their subscriptions with the lines waiting for each
one's next invoice, their transactions, and the refund queue entries of those transactions.
Plain text by default; ``--json`` prints the same as the records' exact JSON forms (amounts as
strings, datetimes with their offsets). A customer that does not exist exits 1.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from datetime import UTC
from typing import Any

import attrs

from ..errors import NotFoundError
from ..model import Customer, InvoiceLine, Subscription, Transaction
from ..money import Money
from ..plugins.records import QueueEntry
from ..serialization import unstructure
from .runtime import Exit, add_command, open_engine

__all__ = ["CustomerView", "register"]


@attrs.frozen(kw_only=True)
class CustomerView:
    customer: Customer
    subscriptions: tuple[tuple[Subscription, tuple[InvoiceLine, ...]], ...]
    transactions: tuple[Transaction, ...]
    refund_queue: tuple[QueueEntry, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "customer": unstructure(self.customer),
            "subscriptions": [
                {**unstructure(sub), "next_invoice": unstructure(list(lines))}
                for sub, lines in self.subscriptions
            ],
            "transactions": unstructure(list(self.transactions)),
            "refund_queue": unstructure(list(self.refund_queue)),
        }


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _total(lines: Sequence[InvoiceLine]) -> str:
    totals: dict[str, Money] = {}
    for line in lines:
        currency = line.amount.currency
        totals[currency] = totals.get(currency, Money.zero(currency)) + line.amount
    return " + ".join(str(total) for total in totals.values()) or "nothing"


def _subscription(sub: Subscription, lines: Sequence[InvoiceLine]) -> list[str]:
    items = ", ".join(
        f"{kind} x{qty} at {sub.unit_prices[kind]}"
        for kind, qty in sorted(sub.inventory.items())
        if kind in sub.unit_prices
    )
    renews = "auto-renews" if sub.auto_renew else "does not renew"
    return [
        f"  {sub.id}  {sub.state}  {sub.term} term {sub.start} to {sub.term_end}, {renews}; "
        f"{items or 'no inventory'}",
        f"    next invoice: {_plural(len(lines), 'line')}, {_total(lines)}",
    ]


def _transaction(t: Transaction) -> str:
    parts = [
        f"  {t.id}  {t.created_at.astimezone(UTC):%Y-%m-%d %H:%M}Z  {t.kind}  {t.status}  "
        f"{t.amount}",
        "settled" if t.settled else "unsettled",
    ]
    if t.refunded.amount:
        parts.append(f"refunded {t.refunded}")
    if t.parent_id:
        parts.append(f"of {t.parent_id}")
    return "  ".join(parts)


def _entry(e: QueueEntry) -> str:
    when = f", next {e.next_attempt_at.isoformat()}" if e.next_attempt_at else ""
    return (
        f"  {e.id}  {e.amount} for {e.original_transaction_id}  {e.state}, "
        f"{_plural(len(e.attempts), 'attempt')}{when}"
    )


def render(view: CustomerView) -> str:
    c = view.customer
    lines = [
        f"Customer {c.id}: {c.company} ({c.timezone})" + ("  BLOCKLISTED" if c.blocklisted else "")
    ]
    lines.append(f"Subscriptions: {len(view.subscriptions)}")
    for sub, pending in view.subscriptions:
        lines.extend(_subscription(sub, pending))
    lines.append(f"Transactions: {len(view.transactions)}")
    lines.extend(_transaction(t) for t in view.transactions)
    lines.append(f"Refund queue: {len(view.refund_queue)}")
    lines.extend(_entry(e) for e in view.refund_queue)
    return "\n".join(lines)


def _show(args: argparse.Namespace) -> int:
    engine = open_engine(args, gateway_required=False)
    try:
        with engine.store.session() as s:
            customer = s.get_customer(args.customer_id)
            if customer is None:
                raise NotFoundError(f"no customer {args.customer_id!r}", field="customer_id")
            subs = s.list_subscriptions(customer_id=customer.id)
            transactions = tuple(s.list_transactions(customer_id=customer.id))
            ids = {t.id for t in transactions}
            view = CustomerView(
                customer=customer,
                subscriptions=tuple((sub, tuple(s.invoice_lines(sub.id))) for sub in subs),
                transactions=transactions,
                refund_queue=tuple(e for e in s.list_queue() if e.original_transaction_id in ids),
            )
    finally:
        engine.store.close()
    print(json.dumps(view.to_json(), indent=2) if args.json else render(view))
    return Exit.OK


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    customer = add_command(commands, "customer", summary="A customer's state.")
    actions = customer.add_subparsers(dest="customer_command", metavar="ACTION", required=True)
    show = add_command(
        actions,
        "show",
        summary="The customer, subscriptions, next-invoice lines, transactions, refund queue.",
    )
    show.add_argument("customer_id", metavar="ID")
    show.add_argument("--json", action="store_true", help="print JSON for machines")
    show.set_defaults(handler=_show)
