"""Who may do what (SPEC 3.9, seed 002): actors with roles, actions allowed to roles.

Every action carries an ``Actor`` with a role. ``check(actor, action)`` answers with a
``PermissionDecision``: a support agent asking to blocklist a customer gets a denial
(``permission_denied``), not an exception. An action the policy does not know is denied too
(``unknown_action``): a policy fails closed.

Roles and actions are plain strings; ``Role`` and ``Action`` name the built-in ones (they are
``StrEnum``s, so they are strings too). Hosts add their own with ``PermissionPolicy.allow``::

    policy = DEFAULT_POLICY.allow("export_ledger", "admin", "accountant")

The policy names an action for every public ``BillingEngine`` call (``engine.guards`` holds the
method -> action table; a test fails when a method has none). The default policy: support agents
and admins may view and edit customers, charge, add subscriptions and inventory, suspend,
re-enable and cancel subscriptions, refund and void transactions, cancel certificates, close
metered periods, manage payment instruments, finalize, void and credit invoices, redeem coupons
and read the billing records; only admins may blocklist a customer or lift a blocklisting, and
add or lift a blocklist entry. The ``system`` role is the host's own jobs (``SYSTEM_ACTOR``, what
the engine acts
as when a job or a read is called without an actor): renewals, the refund queue, reconciliation,
usage recording, issuing the due invoices, closing metered periods and reads; admins may run
those jobs too.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

import attrs

from ..decisions import Decision, Reason
from ..errors import InvalidTypeError, InvalidValueError

__all__ = [
    "DEFAULT_POLICY",
    "SYSTEM_ACTOR",
    "Action",
    "Actor",
    "PermissionDecision",
    "PermissionPolicy",
    "PermissionReason",
    "Role",
    "check",
]


class Role(enum.StrEnum):
    SUPPORT_AGENT = "support_agent"
    ADMIN = "admin"
    SYSTEM = "system"  # the host's own jobs and reads (``SYSTEM_ACTOR``)


class Action(enum.StrEnum):
    VIEW_CUSTOMER = "view_customer"
    EDIT_CUSTOMER = "edit_customer"
    REFUND_TRANSACTION = "refund_transaction"
    VOID_TRANSACTION = "void_transaction"
    CANCEL_SUBSCRIPTION = "cancel_subscription"
    RESEND_REFUND_EMAIL = "resend_refund_email"
    BLOCKLIST_CUSTOMER = "blocklist_customer"
    UNBLOCKLIST_CUSTOMER = "unblocklist_customer"
    CHARGE = "charge"
    ADD_SUBSCRIPTION = "add_subscription"
    CHANGE_INVENTORY = "change_inventory"
    SUSPEND_SUBSCRIPTION = "suspend_subscription"
    REENABLE_SUBSCRIPTION = "reenable_subscription"
    RENEW_SUBSCRIPTIONS = "renew_subscriptions"
    CANCEL_CERTIFICATE = "cancel_certificate"
    RECORD_USAGE = "record_usage"
    CLOSE_METERED_PERIOD = "close_metered_period"
    PROCESS_REFUND_QUEUE = "process_refund_queue"
    RECONCILE = "reconcile"
    DELIVER_EVENTS = "deliver_events"
    VIEW_BILLING = "view_billing"
    MANAGE_INSTRUMENTS = "manage_instruments"
    MANAGE_BLOCKLIST = "manage_blocklist"
    ISSUE_INVOICES = "issue_invoices"
    MANAGE_INVOICES = "manage_invoices"
    WRITE_OFF_INVOICES = "write_off_invoices"
    COLLECT_PAYMENTS = "collect_payments"
    RECORD_PAYMENT = "record_payment"


class PermissionReason(Reason):
    PERMISSION_DENIED = "permission_denied"
    UNKNOWN_ACTION = "unknown_action"


def _name(value: object, field: str) -> str:
    if not isinstance(value, str):
        raise InvalidTypeError(
            f"must be a str, not {type(value).__name__}", field=field, value=value
        )
    if not value:
        raise InvalidValueError("must not be empty", field=field, value=value)
    return str(value)


def _actor_id(value: object) -> str:
    return _name(value, "id")


def _role(value: object) -> str:
    return _name(value, "role")


def _labels(value: object) -> Mapping[str, str]:
    if not isinstance(value, Mapping):
        raise InvalidTypeError("must be a mapping of name to label", field="labels", value=value)
    return MappingProxyType({_name(k, "labels"): _name(v, f"labels.{k}") for k, v in value.items()})


@attrs.frozen(kw_only=True)
class Actor:
    """Who acts: an id and a role (``Role.SUPPORT_AGENT``, ``"admin"`` or a host's own)."""

    id: str = attrs.field(converter=_actor_id)
    role: str = attrs.field(converter=_role)


def _rules(value: object) -> Mapping[str, frozenset[str]]:
    if not isinstance(value, Mapping):
        raise InvalidTypeError(
            f"must be a mapping of action to roles, not {type(value).__name__}",
            field="rules",
            value=value,
        )
    out: dict[str, frozenset[str]] = {}
    for action, roles in value.items():
        key = _name(action, "rules")
        if isinstance(roles, str) or not isinstance(roles, (set, frozenset, tuple, list)):
            raise InvalidTypeError(
                "must be a collection of roles", field=f"rules.{key}", value=roles
            )
        out[key] = frozenset(_name(r, f"rules.{key}") for r in roles)
    return MappingProxyType(out)


@attrs.frozen(kw_only=True)
class PermissionPolicy:
    """``rules``: action -> the roles allowed to perform it. Immutable; ``allow`` extends it."""

    rules: Mapping[str, frozenset[str]] = attrs.field(converter=_rules, eq=False)
    labels: Mapping[str, str] = attrs.field(factory=dict, converter=_labels, eq=False)

    def allow(self, action: str, *roles: str) -> PermissionPolicy:
        """A new policy where ``roles`` may also perform ``action`` (a new action or a known one)."""
        key = _name(action, "action")
        rules = dict(self.rules)
        rules[key] = rules.get(key, frozenset()) | {_name(r, "roles") for r in roles}
        return attrs.evolve(self, rules=rules)

    def roles_for(self, action: str) -> frozenset[str]:
        return self.rules.get(action, frozenset())

    def label(self, name: str) -> str:
        return self.labels.get(name, name.replace("_", " "))


SYSTEM_ACTOR: Final = Actor(id="billing_core", role=Role.SYSTEM)
"""Who the engine acts as when a job (``process_refund_queue``, ``reconcile``, ``record_usage``)
or a read is called without ``actor=``: the host itself, checked against the policy like anyone."""

_BOTH: Final = (Role.SUPPORT_AGENT, Role.ADMIN)
_JOBS: Final = (Role.ADMIN, Role.SYSTEM)
DEFAULT_POLICY: Final = PermissionPolicy(
    rules={
        Action.VIEW_CUSTOMER: (*_BOTH, Role.SYSTEM),
        Action.EDIT_CUSTOMER: _BOTH,
        Action.REFUND_TRANSACTION: _BOTH,
        Action.VOID_TRANSACTION: _BOTH,
        Action.CANCEL_SUBSCRIPTION: _BOTH,
        Action.RESEND_REFUND_EMAIL: _BOTH,
        Action.BLOCKLIST_CUSTOMER: (Role.ADMIN,),
        Action.UNBLOCKLIST_CUSTOMER: (Role.ADMIN,),
        Action.CHARGE: _BOTH,
        Action.ADD_SUBSCRIPTION: _BOTH,
        Action.CHANGE_INVENTORY: _BOTH,
        Action.SUSPEND_SUBSCRIPTION: _BOTH,
        Action.REENABLE_SUBSCRIPTION: _BOTH,
        Action.CANCEL_CERTIFICATE: _BOTH,
        Action.CLOSE_METERED_PERIOD: (*_BOTH, Role.SYSTEM),
        Action.VIEW_BILLING: (*_BOTH, Role.SYSTEM),
        Action.RENEW_SUBSCRIPTIONS: _JOBS,
        Action.RECORD_USAGE: _JOBS,
        Action.PROCESS_REFUND_QUEUE: _JOBS,
        Action.RECONCILE: _JOBS,
        Action.MANAGE_INSTRUMENTS: _BOTH,
        Action.MANAGE_BLOCKLIST: (Role.ADMIN,),
        Action.ISSUE_INVOICES: _JOBS,
        Action.MANAGE_INVOICES: _BOTH,
        Action.WRITE_OFF_INVOICES: (Role.ADMIN,),
        Action.DELIVER_EVENTS: _JOBS,
        Action.COLLECT_PAYMENTS: _JOBS,
        Action.RECORD_PAYMENT: _BOTH,
    },
    labels={
        Action.BLOCKLIST_CUSTOMER: "blocklist a customer",
        Action.UNBLOCKLIST_CUSTOMER: "lift a customer's blocklisting",
        Action.REFUND_TRANSACTION: "refund a transaction",
        Action.VOID_TRANSACTION: "void a transaction",
        Action.VIEW_CUSTOMER: "view a customer",
        Action.EDIT_CUSTOMER: "edit a customer",
        Action.CANCEL_SUBSCRIPTION: "cancel a subscription",
        Action.RESEND_REFUND_EMAIL: "resend a refund email",
        Action.CHARGE: "charge a customer",
        Action.ADD_SUBSCRIPTION: "add a subscription",
        Action.CHANGE_INVENTORY: "change a subscription's inventory",
        Action.SUSPEND_SUBSCRIPTION: "suspend a subscription",
        Action.REENABLE_SUBSCRIPTION: "re-enable a subscription",
        Action.RENEW_SUBSCRIPTIONS: "renew subscriptions",
        Action.CANCEL_CERTIFICATE: "cancel a certificate",
        Action.RECORD_USAGE: "record usage",
        Action.CLOSE_METERED_PERIOD: "close a metered period",
        Action.PROCESS_REFUND_QUEUE: "run the refund retry queue",
        Action.RECONCILE: "reconcile unknown outcomes",
        Action.DELIVER_EVENTS: "deliver pending events to the listeners",
        Action.VIEW_BILLING: "read the billing records",
        Action.MANAGE_INSTRUMENTS: "manage a customer's payment instruments",
        Action.MANAGE_BLOCKLIST: "add or lift a blocklist entry",
        Action.ISSUE_INVOICES: "issue the due invoices",
        Action.MANAGE_INVOICES: "finalize, void and credit invoices and redeem coupons",
        Action.WRITE_OFF_INVOICES: "write an invoice off as uncollectible",
        Action.COLLECT_PAYMENTS: "collect the due invoices",
        Action.RECORD_PAYMENT: "record a payment made outside the gateway",
        Role.SUPPORT_AGENT: "support agent",
        Role.ADMIN: "admin",
        Role.SYSTEM: "system",
    },
)


@attrs.frozen(kw_only=True)
class PermissionDecision(Decision):
    """May ``actor`` perform ``action``; ``allowed_roles`` says who may."""

    reason: PermissionReason | None = None
    actor_id: str
    role: str
    action: str
    allowed_roles: frozenset[str] = frozenset()


def check(
    actor: Actor, action: str, policy: PermissionPolicy = DEFAULT_POLICY
) -> PermissionDecision:
    """May ``actor`` perform ``action`` under ``policy``? A denial is a decision, never a raise."""
    if not isinstance(actor, Actor):
        raise InvalidTypeError(
            f"must be an Actor, not {type(actor).__name__}", field="actor", value=actor
        )
    name = _name(action, "action")
    if not isinstance(policy, PermissionPolicy):
        raise InvalidTypeError(
            f"must be a PermissionPolicy, not {type(policy).__name__}", field="policy", value=policy
        )
    roles = policy.roles_for(name)
    what, who = policy.label(name), policy.label(actor.role)

    def decide(reason: PermissionReason | None, explanation: str) -> PermissionDecision:
        return PermissionDecision(
            allowed=reason is None,
            reason=reason,
            explanation=explanation,
            actor_id=actor.id,
            role=actor.role,
            action=name,
            allowed_roles=roles,
        )

    if name not in policy.rules:
        return decide(
            PermissionReason.UNKNOWN_ACTION,
            f"No role may {what}: the permission policy does not know this action.",
        )
    if actor.role in roles:
        return decide(None, f"{actor.id} ({who}) may {what}.")
    allowed = " or ".join(sorted(policy.label(r) for r in roles)) or "no role"
    return decide(
        PermissionReason.PERMISSION_DENIED,
        f"Only {allowed} may {what}; {actor.id} is {_article(who)} {who}.",
    )


def _article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"
