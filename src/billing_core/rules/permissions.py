"""Who may do what (SPEC 3.9, seed 002): actors with roles, actions allowed to roles.

Every action carries an ``Actor`` with a role. ``check(actor, action)`` answers with a
``PermissionDecision``: a support agent asking to blocklist a customer gets a denial
(``permission_denied``), not an exception. An action the policy does not know is denied too
(``unknown_action``): a policy fails closed.

Roles and actions are plain strings; ``Role`` and ``Action`` name the built-in ones (they are
``StrEnum``s, so they are strings too). Hosts add their own with ``PermissionPolicy.allow``::

    policy = DEFAULT_POLICY.allow("export_ledger", "admin", "accountant")

The default policy: support agents and admins may view and edit customers, refund and void
transactions, cancel subscriptions and resend refund emails; only admins may blocklist a customer
or lift a blocklisting.
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


class Action(enum.StrEnum):
    VIEW_CUSTOMER = "view_customer"
    EDIT_CUSTOMER = "edit_customer"
    REFUND_TRANSACTION = "refund_transaction"
    VOID_TRANSACTION = "void_transaction"
    CANCEL_SUBSCRIPTION = "cancel_subscription"
    RESEND_REFUND_EMAIL = "resend_refund_email"
    BLOCKLIST_CUSTOMER = "blocklist_customer"
    UNBLOCKLIST_CUSTOMER = "unblocklist_customer"


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


_BOTH: Final = (Role.SUPPORT_AGENT, Role.ADMIN)
DEFAULT_POLICY: Final = PermissionPolicy(
    rules={
        Action.VIEW_CUSTOMER: _BOTH,
        Action.EDIT_CUSTOMER: _BOTH,
        Action.REFUND_TRANSACTION: _BOTH,
        Action.VOID_TRANSACTION: _BOTH,
        Action.CANCEL_SUBSCRIPTION: _BOTH,
        Action.RESEND_REFUND_EMAIL: _BOTH,
        Action.BLOCKLIST_CUSTOMER: (Role.ADMIN,),
        Action.UNBLOCKLIST_CUSTOMER: (Role.ADMIN,),
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
        Role.SUPPORT_AGENT: "support agent",
        Role.ADMIN: "admin",
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
