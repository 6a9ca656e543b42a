"""Recording a gateway answer: a compare-and-set on the written-ahead state of the record.

Every flow reads a transaction (the sale, refund or void it wrote ahead, or the record the
queue or ``reconcile`` picked up), calls the gateway outside any store session, and then
records the answer. Meanwhile another entry point may have moved the record on: ``reconcile``
completed it, an agent voided the sale, a queue worker finished the refund. So every write
that records an answer goes through ``locked_if_unchanged``: it reads the record again under
its row lock and compares the stored status with the status the caller read before its gateway
call (``read.status``).

* Unchanged: the caller records its answer on the stored copy (never on its own pre-call copy).
* Moved on: nothing is written over it. A ``<kind>.late_answer`` audit line keeps the late
  answer and both statuses, and the caller reconciles the answer against what is stored: a
  late ``succeeded`` of a refund or void is still recorded once (the money moved; see
  ``refund_recording.record_success``), and so is one of a sale ``reconcile`` had failed; a late
  ``unknown``/``pending`` puts a sale or void ``reconcile`` had failed back in doubt (its lookup
  came before the gateway got the request: ``refund_recording._reopens``). Every other late answer is
  dropped: the stored state is newer (the gateway's own lookup, or a later call with the key).

A status alone cannot tell that an answer was recorded when it did not change it (a late
``unknown`` over the written-ahead ``unknown``): ``reconcile`` also compares the number of
answers recorded (``answers_recorded``) from before its lookup, so a lookup older than a late
answer decides nothing (the next ``reconcile`` asks again).

The queue adds its fencing token (``QueueEntry.held_by``) on top of this rule for its entry.
"""

from __future__ import annotations

from ..errors import NotFoundError
from ..model import Transaction
from ..plugins.protocols import GatewayOutcome, StoreSession
from .context import EngineContext

__all__ = ["answers_recorded", "locked_if_unchanged"]


def answers_recorded(s: StoreSession, record: Transaction) -> int:
    """How many answers have been recorded on ``record``: its ``<kind>.*`` audit lines other
    than the write-ahead. Every recording writes one in the session that writes the record, so
    the count is the record's version where its status is not: a late ``unknown`` answer leaves
    an ``unknown`` record ``unknown``. ``reconcile`` reads it before its lookup and writes its
    verdict only if no answer was recorded meanwhile (``locked_if_unchanged(answers=...)``)."""
    prefix = f"{record.kind.value}."
    return sum(
        1
        for e in s.audit_log(subject_id=record.id)
        if e.action.startswith(prefix) and e.action != f"{prefix}write_ahead"
    )


def locked_if_unchanged(
    ctx: EngineContext,
    s: StoreSession,
    read: Transaction,
    outcome: GatewayOutcome,
    *,
    actor: str,
    answers: int | None = None,
) -> tuple[Transaction, bool]:
    """The stored copy of ``read`` (row locked) and whether its status is still the one read
    before the gateway call (and, with ``answers``, no answer was recorded on it since
    ``answers_recorded`` said ``answers``); when not, the late ``outcome`` is audited here."""
    stored = s.get_transaction(read.id, lock=True)
    if stored is None:  # pragma: no cover - written ahead before the call, never deleted
        raise NotFoundError(f"no transaction {read.id!r}", field="transaction_id", value=read.id)
    if stored.status is read.status and (answers is None or answers_recorded(s, read) == answers):
        return stored, True
    ctx.audit(
        s,
        action=f"{read.kind.value}.late_answer",
        subject_id=read.id,
        actor=actor,
        detail={
            "answer": outcome.status.value,
            "reference": outcome.reference,
            "read_status": read.status.value,
            "stored_status": stored.status.value,
        },
    )
    return stored, False
