"""Permissions: denials are decisions; hosts extend the policy."""

from __future__ import annotations

import pytest

from billing_core import InvalidTypeError, InvalidValueError
from billing_core.rules.permissions import (
    DEFAULT_POLICY,
    SYSTEM_ACTOR,
    Action,
    Actor,
    PermissionPolicy,
    PermissionReason,
    Role,
    check,
)

AGENT = Actor(id="u-7", role=Role.SUPPORT_AGENT)
ADMIN = Actor(id="u-1", role="admin")


def test_support_agent_cannot_blocklist() -> None:
    d = check(AGENT, Action.BLOCKLIST_CUSTOMER)
    assert (d.allowed, d.reason) == (False, PermissionReason.PERMISSION_DENIED)
    assert d.reason == "permission_denied"
    assert d.allowed_roles == frozenset({"admin"})
    assert d.explanation == "Only admin may blocklist a customer; u-7 is a support agent."


def test_admin_can_blocklist() -> None:
    d = check(ADMIN, "blocklist_customer")
    assert (d.allowed, d.reason) == (True, None)
    assert d.explanation == "u-1 (admin) may blocklist a customer."


ADMIN_ONLY = {
    Action.BLOCKLIST_CUSTOMER,
    Action.UNBLOCKLIST_CUSTOMER,
    Action.MANAGE_BLOCKLIST,
    Action.WRITE_OFF_INVOICES,
}
JOBS = {  # the host's jobs: admins and the system role (SYSTEM_ACTOR), not support agents
    Action.RENEW_SUBSCRIPTIONS,
    Action.RECORD_USAGE,
    Action.PROCESS_REFUND_QUEUE,
    Action.RECONCILE,
    Action.ISSUE_INVOICES,
    Action.DELIVER_EVENTS,
    Action.COLLECT_PAYMENTS,
}


@pytest.mark.parametrize("action", [a for a in Action if a not in ADMIN_ONLY | JOBS])
def test_both_roles_may_do_the_rest(action: Action) -> None:
    assert check(AGENT, action).allowed
    assert check(ADMIN, action).allowed


@pytest.mark.parametrize("action", sorted(JOBS))
def test_jobs_are_for_admins_and_the_system(action: Action) -> None:
    assert check(ADMIN, action).allowed
    assert check(SYSTEM_ACTOR, action).allowed
    denied = check(AGENT, action)
    assert (denied.allowed, denied.reason) == (False, "permission_denied")
    assert denied.explanation.startswith("Only admin or system may ")


def test_the_system_role_changes_nothing_by_hand() -> None:
    """The host's own actor runs jobs and reads, never a charge or a customer change."""
    allowed = {a for a in Action if check(SYSTEM_ACTOR, a).allowed}
    assert allowed == JOBS | {
        Action.CLOSE_METERED_PERIOD,
        Action.VIEW_BILLING,
        Action.VIEW_CUSTOMER,
    }


def test_unknown_roles_are_refused_everything() -> None:
    intern = Actor(id="u-5", role="intern")
    for action in Action:
        d = check(intern, action)
        assert (d.allowed, d.reason) == (False, "permission_denied"), action


def test_unknown_action_fails_closed() -> None:
    d = check(ADMIN, "launch_rocket")
    assert (d.allowed, d.reason) == (False, PermissionReason.UNKNOWN_ACTION)


def test_hosts_add_roles_and_actions() -> None:
    policy = DEFAULT_POLICY.allow("export_ledger", "accountant").allow(
        Action.BLOCKLIST_CUSTOMER, "fraud_analyst"
    )
    analyst = Actor(id="u-9", role="fraud_analyst")
    assert check(analyst, Action.BLOCKLIST_CUSTOMER, policy).allowed
    assert check(ADMIN, Action.BLOCKLIST_CUSTOMER, policy).allowed
    assert check(Actor(id="u-3", role="accountant"), "export_ledger", policy).allowed
    assert not check(ADMIN, "export_ledger", policy).allowed
    assert not check(analyst, Action.BLOCKLIST_CUSTOMER).allowed  # the default is unchanged
    custom = PermissionPolicy(rules={"x": ["a"]})
    assert check(Actor(id="u", role="a"), "x", custom).allowed
    assert "b may" not in check(Actor(id="u", role="b"), "x", custom).explanation


def test_bad_input_raises() -> None:
    with pytest.raises(InvalidValueError) as info:
        Actor(id="u", role="")
    assert info.value.field == "$.role"
    with pytest.raises(InvalidTypeError) as info2:
        check("u-7", "blocklist_customer")  # type: ignore[arg-type]
    assert info2.value.field == "$.actor"
    with pytest.raises(InvalidTypeError) as info3:
        check(AGENT, None)  # type: ignore[arg-type]
    assert info3.value.field == "$.action"
    with pytest.raises(InvalidTypeError):
        PermissionPolicy(rules={"x": "admin"})


def test_the_docs_table_is_the_default_policy() -> None:
    """docs/permissions.md lists every action, its engine calls and its default roles."""
    import re
    from pathlib import Path

    from billing_core.engine.guards import METHOD_ACTIONS

    text = (Path(__file__).parent.parent / "docs" / "permissions.md").read_text()
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) == 5 and cells[0] in set(Action):
            rows[cells[0]] = cells
    assert set(rows) == set(Action), "every action has a row"
    roles = ["support_agent", "admin", "system"]
    for action, (_, calls, *flags) in rows.items():
        expected = ["yes" if r in DEFAULT_POLICY.roles_for(action) else "no" for r in roles]
        assert flags == expected, action
        documented = set(re.findall(r"`(\w+)`", calls))
        assert {m for m, a in METHOD_ACTIONS.items() if a == action} <= documented, action
