"""AcmePay for billing_core: an example third-party payment gateway plugin.

A gateway plugin is an adapter: it turns billing_core's ``GatewayRequest`` into calls to the
processor's API and the processor's answers (and failures) into ``GatewayOutcome``s. The part
that matters is the mapping of failures: a connection that never opened is ``not_sent`` (safe to
retry), a timeout after the request left is ``unknown`` (reconcile, never retry blindly).

``FakeAcmeApi`` stands in for the processor's HTTP API so the example runs anywhere.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from billing_core.money import Money
from billing_core.plugins.hookspecs import hookimpl
from billing_core.plugins.protocols import (
    DECLINE_ALREADY_SETTLED,
    GatewayCapabilities,
    GatewayOutcome,
    GatewayRequest,
    OutcomeStatus,
    PaymentGateway,
)

__all__ = ["AcmeGateway", "FakeAcmeApi", "billing_core_payment_gateways"]


class AcmeError(Exception):
    """The processor refused: ``code`` is its reason."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class FakeAcmeApi:
    """The processor: charges settle a day after they are made; refunds need settlement."""

    def __init__(self, clock: Callable[[], datetime]) -> None:
        self.clock = clock
        self.charges: dict[str, dict[str, Any]] = {}
        self.answers: dict[str, dict[str, Any]] = {}  # idempotency key -> stored answer
        self.refusals: dict[str, AcmeError] = {}  # key -> the last refusal (decided anew on retry)
        self._ids = itertools.count(1)

    def post(self, path: str, key: str, body: dict[str, Any]) -> dict[str, Any]:
        stored = self.answers.get(key)
        if stored is not None:
            if stored["request"] != (path, body):
                raise AcmeError("key_reused", "this idempotency key was used for another request")
            previous: dict[str, Any] = stored["answer"]
            return previous
        try:
            answer: dict[str, Any] = getattr(self, "_" + path)(body)
        except AcmeError as error:
            self.refusals[key] = error
            raise
        self.refusals.pop(key, None)
        self.answers[key] = {"request": (path, body), "answer": answer}
        return answer

    def get(self, key: str) -> dict[str, Any] | None:
        stored = self.answers.get(key)
        return None if stored is None else self._fresh(stored["answer"])

    def _fresh(self, answer: dict[str, Any]) -> dict[str, Any]:
        charge = self.charges.get(answer["id"])
        return {**answer, "settled": bool(charge and self._settled(charge))}

    def _settled(self, charge: dict[str, Any]) -> bool:
        return not charge["voided"] and self.clock() >= charge["at"] + timedelta(days=1)

    def _charges(self, body: dict[str, Any]) -> dict[str, Any]:
        card = body.get("card")
        if card is not None and not card["active"]:
            raise AcmeError("card_inactive", f"card {card['token']} is inactive")
        if (
            card is not None
            and card["expires"]
            and card["expires"] < self.clock().date().isoformat()
        ):
            raise AcmeError("card_expired", f"card {card['token']} expired on {card['expires']}")
        charge_id = f"acme_{next(self._ids)}"
        self.charges[charge_id] = {
            "cents": body["cents"],
            "refunded": 0,
            "voided": False,
            "at": self.clock(),
        }
        return {"id": charge_id, "cents": body["cents"], "settled": False}

    def _voids(self, body: dict[str, Any]) -> dict[str, Any]:
        charge = self.charges[body["charge"]]
        if self._settled(charge):
            raise AcmeError(DECLINE_ALREADY_SETTLED, "the charge has settled: refund it")
        if charge["voided"] or body["cents"] != charge["cents"]:
            raise AcmeError("invalid_void", "only a whole, live charge can be voided")
        charge["voided"] = True
        return {"id": body["charge"], "cents": body["cents"], "settled": False}

    def _refunds(self, body: dict[str, Any]) -> dict[str, Any]:
        charge = self.charges[body["charge"]]
        if charge["voided"] or not self._settled(charge):
            raise AcmeError("not_settled", "only a settled charge can be refunded")
        if charge["refunded"] + body["cents"] > charge["cents"]:
            raise AcmeError("exceeds_charge", "that is more than is left of the charge")
        charge["refunded"] += body["cents"]
        return {"id": f"acme_re_{next(self._ids)}", "cents": body["cents"], "settled": True}


class AcmeGateway:
    """The adapter: billing_core's ``PaymentGateway`` protocol on top of the AcmePay API."""

    name = "acme"
    capabilities = GatewayCapabilities(
        authorizations=False, payouts=False, currencies=frozenset({"USD"})
    )

    def __init__(self, api: FakeAcmeApi) -> None:
        self.api = api
        self.requests: dict[str, GatewayRequest] = {}

    def _post(self, path: str, request: GatewayRequest, **body: Any) -> GatewayOutcome:
        cents = request.amount.minor_units
        try:
            answer = self.api.post(path, request.idempotency_key, {"cents": cents, **body})
        except AcmeError as error:
            return GatewayOutcome(
                status=OutcomeStatus.DECLINED,
                decline_code=error.code,
                message=str(error),
                amount=request.amount,
            )
        except ConnectionRefusedError as error:  # never left this machine
            return GatewayOutcome(status=OutcomeStatus.NOT_SENT, message=str(error))
        except TimeoutError as error:  # may have reached AcmePay: reconcile with lookup
            return GatewayOutcome(status=OutcomeStatus.UNKNOWN, message=str(error))
        self.requests[request.idempotency_key] = request
        return self._outcome(answer, request.amount.currency)

    @staticmethod
    def _outcome(answer: Mapping[str, Any], currency: str) -> GatewayOutcome:
        return GatewayOutcome(
            status=OutcomeStatus.SUCCEEDED,
            reference=answer["id"],
            amount=Money.from_minor_units(answer["cents"], currency),
            settled=answer["settled"],
        )

    def _refuse(self, request: GatewayRequest) -> GatewayOutcome:
        return GatewayOutcome(
            status=OutcomeStatus.DECLINED,
            decline_code="unsupported",
            message=f"AcmePay cannot {request.operation.value}",
        )

    def sale(self, request: GatewayRequest) -> GatewayOutcome:
        if not self.capabilities.supports_currency(request.amount.currency):
            return GatewayOutcome(
                status=OutcomeStatus.DECLINED,
                decline_code="currency",
                message=f"AcmePay takes no {request.amount.currency}",
            )
        card = request.instrument
        if card is None:  # AcmePay charges the customer's card on file
            return self._post("charges", request)
        expires = card.expires_on.isoformat() if card.expires_on else None
        body = {"token": card.id, "active": card.active, "expires": expires}
        return self._post("charges", request, card=body)

    def void(self, request: GatewayRequest) -> GatewayOutcome:
        return self._post("voids", request, charge=request.parent_reference)

    def refund(self, request: GatewayRequest) -> GatewayOutcome:
        return self._post("refunds", request, charge=request.parent_reference)

    def authorize(self, request: GatewayRequest) -> GatewayOutcome:
        return self._refuse(request)

    def capture(self, request: GatewayRequest) -> GatewayOutcome:
        return self._refuse(request)

    def payout(self, request: GatewayRequest) -> GatewayOutcome:
        return self._refuse(request)

    def lookup(self, transaction_id: str, idempotency_key: str) -> GatewayOutcome:
        answer = self.api.get(idempotency_key)
        request = self.requests.get(idempotency_key)
        refusal = self.api.refusals.get(idempotency_key)
        if answer is None and refusal is not None:
            return GatewayOutcome(
                status=OutcomeStatus.DECLINED, decline_code=refusal.code, message=str(refusal)
            )
        if answer is None or request is None:
            return GatewayOutcome(status=OutcomeStatus.NOT_SENT, message="AcmePay never saw it")
        return self._outcome(answer, request.amount.currency)


@hookimpl
def billing_core_payment_gateways(
    clock: Callable[[], datetime], settings: Mapping[str, Any]
) -> Iterable[PaymentGateway]:
    """billing_core asks every plugin for its gateways; this one offers AcmePay."""
    return [AcmeGateway(FakeAcmeApi(clock))]
