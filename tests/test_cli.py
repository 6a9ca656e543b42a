"""The operator CLI, end to end: ``python -m billing_core ...`` in subprocesses against SQLite and
PostgreSQL stores seeded through the engine.

Worker processes reach the test's payments through ``--plugin cli_gateway_plugin`` (a
``SharedGateway`` named ``shared`` whose ledger lives in the store's database), so the test can
count every gateway call the workers made.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import attrs
import pytest
import sqlalchemy as sa

import billing_core
from billing_core import BillingEngine, Customer, Money, Period, TransactionKind
from billing_core.cli import db, main
from billing_core.cli.leases import StepLeases
from billing_core.cli.schema import head_revision
from billing_core.engine import RefundOutcome
from billing_core.plugins.manager import Plugins
from billing_core.plugins.records import QueueState
from billing_core.plugins.sandbox_gateway import Fault
from billing_core.plugins.sql_store import SqlStore
from billing_core.rules.permissions import Actor
from billing_core.rules.refunds import assess_refund
from billing_core.testing.clock import ManualClock
from billing_core.testing.shared_gateway import SharedGateway

TESTS = Path(__file__).resolve().parent
ADMIN = Actor(id="ada", role="admin")
USD = "USD"
PLUGIN = ("--plugin", "cli_gateway_plugin", "--gateway", "shared")
HEAD = head_revision()
VERSIONS = Path(billing_core.__file__).parent / "plugins" / "migrations" / "versions"


def cli(
    *args: str, store: str | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "billing_core", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=_env(store),
    )


@attrs.frozen
class Ran:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def run(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Any:
    """``run(*args, store=...)``: the command in this process (``main``), for the checks that
    need no process of their own; the subprocess tests cover ``python -m billing_core``."""

    def run(*args: str, store: str | None = None) -> Ran:
        for key in [k for k in os.environ if k.startswith("BILLING_CORE_")]:
            monkeypatch.delenv(key)
        if store is not None:
            monkeypatch.setenv("BILLING_CORE_STORE", store)
        capsys.readouterr()
        try:
            code = main(list(args))
        except SystemExit as exited:
            code = int(exited.code or 0)
        out, err = capsys.readouterr()
        return Ran(returncode=code, stdout=out, stderr=err)

    return run


def _env(store: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BILLING_CORE_")}
    env["PYTHONPATH"] = str(TESTS)
    if store is not None:
        env["BILLING_CORE_STORE"] = store
    return env


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'billing.sqlite3'}"
    url: str = request.getfixturevalue("postgres_schema_url")
    return url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'billing.sqlite3'}"


@attrs.define
class Seeded:
    store: SqlStore
    gateway: SharedGateway
    engine: BillingEngine
    clock: ManualClock


@pytest.fixture
def seeded(store_url: str) -> Iterator[Seeded]:
    yield from _seed(store_url)


@pytest.fixture
def seeded_sqlite(sqlite_url: str) -> Iterator[Seeded]:
    yield from _seed(sqlite_url)


def _seed(url: str) -> Iterator[Seeded]:
    """A migrated store, the shared gateway on its database, and an engine on a clock that the
    test sets in the past (the CLI runs on the wall clock)."""
    clock = ManualClock(datetime.now(UTC).replace(microsecond=0))
    store = SqlStore(url)
    gateway = SharedGateway(store.engine, clock=clock, settle_after=timedelta(0))
    engine = BillingEngine(
        store=store, gateway=gateway, clock=clock, plugins=Plugins(clock=clock, entry_points=False)
    )
    engine.add_customer(Customer(id="c1", company="Acme Widgets"), actor=ADMIN)
    yield Seeded(store=store, gateway=gateway, engine=engine, clock=clock)
    gateway.close()
    store.close()


def due_subscriptions(s: Seeded, n: int) -> list[str]:
    """``n`` one-year subscriptions that started 400 days ago: each is due for renewal."""
    s.clock.set(datetime.now(UTC) - timedelta(days=400))
    ids = []
    for i in range(n):
        result = s.engine.add_subscription(
            "c1",
            term=Period.years(1),
            inventory={"dv": 1},
            unit_prices={"dv": Money("100.00", USD)},
            idempotency_key=f"sub-{i}",
            actor=ADMIN,
        )
        assert result.subscription_id is not None, result.explanation
        ids.append(result.subscription_id)
    return ids


def queued_refunds(s: Seeded, n: int) -> list[str]:
    """``n`` sales of 10.00 made 2 days ago, each with a refund of 4.00 declined then: queued,
    and due for its first retry since yesterday."""
    s.clock.set(datetime.now(UTC) - timedelta(days=2))
    sales = []
    for i in range(n):
        sale = s.engine.charge("c1", Money("10.00", USD), idempotency_key=f"p{i}", actor=ADMIN)
        assert sale.transaction_id is not None
        sales.append(sale.transaction_id)
    s.gateway.script("refund", [Fault.DECLINE] * n)
    for i, sale_id in enumerate(sales):
        first = s.engine.refund_transaction(
            sale_id, amount=Money("4.00", USD), idempotency_key=f"r{i}", actor=ADMIN
        )
        assert first.outcome is RefundOutcome.QUEUED, first.explanation
    s.gateway.clear_faults()
    return sales


def counted(output: str, step: str, key: str) -> int:
    """The sum of ``key`` over the lines a worker printed for ``step``."""
    total = 0
    for line in output.splitlines():
        if f" {step}: " in line and " so far " not in line and f"{key} " in line:
            total += int(line.split(f"{key} ")[1].split(",")[0].split(" ")[0])
    return total


# -- the command line ---------------------------------------------------------------------------
COMMANDS = [
    (),
    ("db",),
    ("db", "upgrade"),
    ("db", "current"),
    ("worker",),
    ("reconcile",),
    ("explain",),
    ("explain", "refund"),
    ("explain", "start"),
    ("customer",),
    ("customer", "show"),
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "billing-core")
def test_every_command_has_help(
    command: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main([*command, "--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: billing-core {' '.join(command)}".rstrip())
    assert "--store URL" in out, "the global options are listed on every command"


def test_python_dash_m_and_the_console_script() -> None:
    helped = cli("--help")
    assert helped.returncode == 0
    assert "Exit codes: 0 ok, 1 denied or not found, 2 bad usage" in " ".join(helped.stdout.split())
    script = Path(sys.executable).with_name("billing-core")
    assert script.exists(), "pyproject's [project.scripts] installs billing-core"
    assert subprocess.run([script, "--version"], capture_output=True, text=True).stdout.startswith(
        "billing-core 0."
    )


def test_bad_usage_and_bad_input_exit_2(sqlite_url: str, run: Any) -> None:
    assert cli("frobnicate").returncode == 2
    no_store = run("customer", "show", "c1")
    assert (no_store.returncode, no_store.stderr.strip()) == (
        2,
        "billing-core: no store: pass --store URL or set BILLING_CORE_STORE "
        "(e.g. sqlite:///billing.sqlite3) @ $.store",
    )
    misspelt = run("--setting", "sandbx=false", "customer", "show", "c1", store=sqlite_url)
    assert misspelt.returncode == 2
    assert "unknown setting 'sandbx' (did you mean 'sandbox'?)" in misspelt.stderr
    no_gateway = run("worker", "--once", store=sqlite_url)
    assert no_gateway.returncode == 2
    assert "name the gateway with --gateway NAME" in no_gateway.stderr
    assert run("worker", "--interval", "0", store=sqlite_url).returncode == 2


def test_an_unexpected_error_exits_3(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(_args: object) -> int:
        raise RuntimeError("the database fell over")

    monkeypatch.setattr(db, "_current", broken)
    assert main(["db", "current"]) == 3
    assert "RuntimeError: the database fell over" in capsys.readouterr().err


# -- db --------------------------------------------------------------------------------------------
def test_db_upgrade_and_current(store_url: str, run: Any) -> None:
    shown = sa.make_url(store_url).render_as_string(hide_password=True)
    assert sorted(p.stem[:4] for p in VERSIONS.glob("[0-9]*.py"))[-1] == HEAD
    before = run("db", "current", store=store_url)
    assert (before.returncode, before.stdout) == (
        1,
        f"{shown}: revision none, not the latest ({HEAD})\n",
    )
    refused = run("customer", "show", "c1", store=store_url)
    assert refused.returncode == 2
    assert f"schema is at revision none, not the latest {HEAD}: run `billing-core db upgrade`" in (
        refused.stderr
    )
    up = cli("db", "upgrade", store=store_url)
    assert (up.returncode, up.stdout) == (0, f"{shown}: upgraded from revision none to {HEAD}\n")
    again = run("db", "upgrade", "--store", store_url)  # global options may follow the command
    assert again.stdout == f"{shown}: already at revision {HEAD}, the latest\n"
    now = run("db", "current", store=store_url)
    assert (now.returncode, now.stdout) == (0, f"{shown}: revision {HEAD}, the latest\n")


def test_db_current_leaves_a_missing_sqlite_file_missing(tmp_path: Path, run: Any) -> None:
    path = tmp_path / "nothing.sqlite3"
    assert run("db", "current", store=f"sqlite:///{path}").returncode == 1
    assert not path.exists()


def test_db_commands_need_a_sql_store(run: Any) -> None:
    ran = run("db", "current", store="memory://")
    assert ran.returncode == 2
    assert "db commands work on a SQL store" in ran.stderr


# -- worker ----------------------------------------------------------------------------------------
SUBSCRIPTIONS = 12
REFUNDS = 12


def test_two_workers_share_one_database_and_do_nothing_twice(seeded: Seeded) -> None:
    subs = due_subscriptions(seeded, SUBSCRIPTIONS)
    sales = queued_refunds(seeded, REFUNDS)
    sent_before = seeded.gateway.received.copy()
    url = str(seeded.store.url.render_as_string(hide_password=False))
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "billing_core", *PLUGIN, "worker", "--once", "--batch", "5"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_env(url),
        )
        for _ in range(2)
    ]
    outputs = [w.communicate(timeout=120) for w in workers]
    for w, (out, err) in zip(workers, outputs, strict=True):
        assert w.returncode == 0, out + err
    both = "\n".join(out for out, _ in outputs)

    assert counted(both, "renewals", "renewed") == SUBSCRIPTIONS
    assert counted(both, "refund-queue", "claimed") == REFUNDS
    assert counted(both, "refund-queue", "succeeded") == REFUNDS
    sent = seeded.gateway.received - sent_before
    assert sent["sale"] == SUBSCRIPTIONS, "one renewal charge per subscription"
    assert sent["refund"] == REFUNDS, "one refund per queued entry"
    transactions = seeded.engine.transactions(customer_id="c1")
    for sub_id in subs:
        charges = [t for t in transactions if t.subscription_id == sub_id]
        assert len(charges) == 2, f"{sub_id}: the first term and one renewal"
        assert seeded.engine.subscription(sub_id).start > datetime.now(UTC).date() - timedelta(
            days=365
        )
    refunds = [t for t in transactions if t.kind is TransactionKind.REFUND]
    assert len(refunds) == REFUNDS
    assert {t.parent_id for t in refunds} == set(sales)
    assert all(t.refunded == Money("4.00", USD) for t in transactions if t.id in sales)
    assert {e.state for e in seeded.engine.refund_queue()} == {QueueState.SUCCEEDED}


def test_worker_stops_gracefully_on_sigterm(seeded_sqlite: Seeded) -> None:
    url = str(seeded_sqlite.store.url.render_as_string(hide_password=False))
    worker = subprocess.Popen(
        [sys.executable, "-m", "billing_core", *PLUGIN, "worker", "--interval", "30"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(url),
    )
    assert worker.stdout is not None
    lines = []
    for line in worker.stdout:  # the first pass ends with its last step; then it sleeps 30 s
        lines.append(line)
        if line.startswith("pass 1 events:"):  # events is the last of DEFAULT_STEPS
            break
    started = time.monotonic()
    worker.send_signal(signal.SIGTERM)
    out, err = worker.communicate(timeout=20)
    assert worker.returncode == 0, err
    assert time.monotonic() - started < 10, "the pause between passes is cut short"
    assert lines[0].startswith("worker worker:")
    assert lines[0].endswith(
        "gateway shared (live), steps renewals, refund-queue, reconcile, events, every 30 s\n"
    )
    assert out == "stopping (SIGTERM): finishing the current step\nstopped after 1 pass\n"


def test_sigterm_mid_step_finishes_the_batch_and_skips_the_rest(seeded_sqlite: Seeded) -> None:
    due = 40
    queued_refunds(seeded_sqlite, due)
    url = str(seeded_sqlite.store.url.render_as_string(hide_password=False))
    worker = subprocess.Popen(
        [sys.executable, "-m", "billing_core", *PLUGIN, "worker", "--once", "--batch", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(url),
    )
    assert worker.stdout is not None
    for line in worker.stdout:
        if " so far " in line:  # the refund queue is working through its batches
            worker.send_signal(signal.SIGTERM)
            break
    out, err = worker.communicate(timeout=60)
    assert worker.returncode == 0, err
    assert "stopping (SIGTERM): finishing the current step\n" in out
    assert "reconcile" not in out, "the rest of the pass is skipped"
    claimed = counted(out, "refund-queue", "claimed")
    assert 0 < claimed < due
    entries = seeded_sqlite.engine.refund_queue()
    assert sum(e.state is QueueState.SUCCEEDED for e in entries) == claimed
    assert not [e for e in entries if e.state is QueueState.CLAIMED], "no claim left half done"


def test_worker_steps_and_a_held_lease(seeded_sqlite: Seeded, run: Any) -> None:
    url = str(seeded_sqlite.store.url.render_as_string(hide_password=False))
    due_subscriptions(seeded_sqlite, 2)
    leases = StepLeases(
        seeded_sqlite.store,
        owner="worker:elsewhere:1",
        seconds=600,
        clock=lambda: datetime.now(UTC),
    )
    assert leases.take("charges") is not None  # another worker renews or reconciles
    held = run(*PLUGIN, "worker", "--once", "--steps", "renewals,reconcile", store=url)
    assert (held.returncode, held.stdout.splitlines()[1:]) == (
        0,
        [
            "pass 1 renewals: skipped, worker:elsewhere:1 holds the lease",
            "pass 1 reconcile: skipped, worker:elsewhere:1 holds the lease",
            "stopped after 1 pass",
        ],
    )
    alone = run(*PLUGIN, "reconcile", store=url)
    assert (alone.returncode, alone.stdout) == (
        1,
        "reconcile: skipped, worker:elsewhere:1 holds the lease\n",
    )
    leases.release("charges")
    free = run(*PLUGIN, "worker", "--once", "--steps", "reconcile,renewals", store=url)
    lines = free.stdout.splitlines()
    assert lines[1].startswith("pass 1 renewals: renewed 2, expired 0 (")
    assert lines[2].startswith("pass 1 reconcile: checked 0, resolved 0, still unknown 0 (")
    assert leases.holder("charges") is None, "released after each step"
    bad = run(*PLUGIN, "worker", "--once", "--steps", "renewal", store=url)
    assert bad.returncode == 2
    assert (
        "no worker step 'renewal'; the steps are renewals, refund-queue, reconcile, events"
        in bad.stderr
    )


def test_reconcile_prints_checked_resolved_and_still_unknown(seeded: Seeded) -> None:
    seeded.gateway.script("sale", [Fault.TIMEOUT_AFTER_SEND, Fault.TIMEOUT_BEFORE_SEND])
    lost = seeded.engine.charge("c1", Money("5.00", USD), idempotency_key="lost", actor=ADMIN)
    never = seeded.engine.charge("c1", Money("6.00", USD), idempotency_key="never", actor=ADMIN)
    seeded.gateway.script("lookup", [None, Fault.TIMEOUT_AFTER_SEND])  # the second stays unknown
    url = str(seeded.store.url.render_as_string(hide_password=False))
    ran = cli(*PLUGIN, "reconcile", store=url)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout == (
        f"reconcile: checked 2, resolved 1, still unknown 1\n  still unknown: {never.transaction_id}\n"
    )
    assert seeded.engine.transaction(str(lost.transaction_id)).status == "completed"


# -- explain -----------------------------------------------------------------------------------------
def test_explain_start_prints_the_rules_sentence(run: Any) -> None:
    args = ("explain", "start", "--term", "P1Y", "--price", "100.00", "--currency", USD)
    allowed = run(*args, "--start", "2026-05-21", "--today", "2026-11-21")
    assert (allowed.returncode, allowed.stdout) == (
        0,
        "start 2026-05-21: allowed, charge 49.59 USD for 2026-05-21 to 2027-05-21\n"
        "Backdated 184 days to 2026-05-21: the 1 year term runs 2026-05-21 to 2027-05-21, so 181 "
        "of its 365 days remain from today (2026-11-21); the charge is 181/365 of 100.00 USD = "
        "49.59 USD.\n",
    )
    denied = run(*args, "--start", "2025-11-21", "--today", "2026-11-21", "--json")
    assert denied.returncode == 1
    decision = json.loads(denied.stdout)
    assert (decision["allowed"], decision["reason"], decision["earliest_start"]) == (
        False,
        "backdate_limit_exceeded",
        "2025-11-22",
    )
    bad = run(*args, "--start", "2026-02-30")
    assert (bad.returncode, bad.stderr) == (
        2,
        "billing-core: must be an ISO 8601 date such as 2026-11-21, not '2026-02-30' @ $.start\n",
    )
    price = run(*args[:-4], "--price", "ten", "--currency", USD, "--start", "2026-05-21")
    assert price.returncode == 2 and price.stderr.endswith(" @ $.price\n"), price.stderr


def test_explain_refund_reads_the_transaction(seeded_sqlite: Seeded, run: Any) -> None:
    s = seeded_sqlite
    s.clock.set(datetime.now(UTC) - timedelta(days=40))
    old = s.engine.charge("c1", Money("49.00", USD), idempotency_key="old", actor=ADMIN)
    s.clock.set(datetime.now(UTC) - timedelta(hours=1))
    new = s.engine.charge("c1", Money("10.00", USD), idempotency_key="new", actor=ADMIN)
    url = str(s.store.url.render_as_string(hide_password=False))

    expired = cli("explain", "refund", str(old.transaction_id), store=url)
    expected = assess_refund(
        s.engine.transaction(str(old.transaction_id)), now=datetime.now(UTC)
    ).explanation
    assert (expired.returncode, expired.stdout) == (
        1,
        f"{old.transaction_id}: denied (window_expired)\n{expected}\n",
    )
    assert "40 days ago" in expected
    allowed = run("explain", "refund", str(new.transaction_id), "--amount", "4.00", store=url)
    assert allowed.returncode == 0
    assert allowed.stdout.startswith(f"{new.transaction_id}: allowed, refund 4.00 USD\n")
    too_fine = run("explain", "refund", str(new.transaction_id), "--amount", "4.001", store=url)
    assert too_fine.returncode == 2 and too_fine.stderr.endswith(" @ $.amount\n")
    missing = run("explain", "refund", "tx-nope", store=url)
    assert (missing.returncode, missing.stderr) == (
        1,
        "billing-core: no transaction 'tx-nope' @ $.transaction_id\n",
    )
    assert s.engine.transaction(str(new.transaction_id)).refunded == Money("0.00", USD)


# -- customer show -----------------------------------------------------------------------------------
def test_customer_show_in_text_and_json(seeded: Seeded, run: Any) -> None:
    s = seeded
    sub_id = due_subscriptions(s, 1)[0]
    s.clock.set(datetime.now(UTC) - timedelta(days=300))
    s.engine.add_inventory(
        sub_id, certificate_type="dv", quantity=2, idempotency_key="more", actor=ADMIN
    )
    sale = queued_refunds(s, 1)[0]
    url = str(s.store.url.render_as_string(hide_password=False))

    text = cli("customer", "show", "c1", store=url)
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    start = (datetime.now(UTC) - timedelta(days=400)).date()
    assert lines[0] == "Customer c1: Acme Widgets (UTC)"
    assert lines[1] == "Subscriptions: 1"
    assert lines[2] == (
        f"  {sub_id}  active  P1Y term {start} to {Period.years(1).after(start)}, auto-renews; "
        "dv x3 at 100.00 USD"
    )
    assert lines[3].startswith("    next invoice: 1 line, ")
    assert lines[4] == "Transactions: 3"
    assert f"  {sale}  " in text.stdout and "refunded" not in text.stdout
    assert lines[-2] == "Refund queue: 1"
    assert f"  4.00 USD for {sale}  queued, 1 attempt, next " in lines[-1]

    data = json.loads(run("customer", "show", "c1", "--json", store=url).stdout)
    assert data["customer"]["company"] == "Acme Widgets"
    assert [sub["id"] for sub in data["subscriptions"]] == [sub_id]
    assert len(data["subscriptions"][0]["next_invoice"]) == 1
    assert [t["amount"]["amount"] for t in data["transactions"]] == ["100.00", "10.00", "4.00"]
    assert [e["state"] for e in data["refund_queue"]] == ["queued"]

    missing = run("customer", "show", "c2", store=url)
    assert (missing.returncode, missing.stderr) == (
        1,
        "billing-core: no customer 'c2' @ $.customer_id\n",
    )
