"""`ship_order`: buy exactly one label for a ready order, store it sealed, confirm to Amazon.

Design notes: docs/shipping.md ("Design notes: `shared.shipping.service`")."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol

from shared.errors import AppError, IntegrityFailure, TransientError, retry_delay
from shared.orders import integrity, lifecycle
from shared.orders.domain import Address, OrderItem
from shared.orders.messages import IssueInvoice, ShipOrder
from shared.orders.record import OrderPii, OrderRecord, PiiCipher, Stage
from shared.orders.repository import OrderRepository
from shared.shipping.carriers.base import (
    AddressProblem,
    Carrier,
    CarrierError,
    CarrierTimeout,
    CarrierUnavailable,
    Label,
    LabelItem,
    LabelRequest,
    Parcel,
    Recipient,
)
from shared.shipping.rules import NoRoute, ShippingRules
from shared.storage.blob_store import LabelStore, label_blob_name
from shared.telemetry.invocations import record_stage

INTENT = "intent"
SHIPPED = "shipped"
# Amazon's packageReferenceId is numeric; resubmitting the same one edits the confirmation,
# so a replayed confirmShipment cannot create a second package.
PACKAGE_REFERENCE = "1"

# Reason codes (docs/shipping.md and docs/operations.md).
INTENT_UNRESOLVED = "label_intent_unresolved"
PHONE_MISSING = "phone_missing"
ADDRESS_MISSING = "address_missing"
CARRIER_UNCONFIGURED = "carrier_unconfigured"


class ShipmentConfirmer(Protocol):
    """v0 confirmShipment; `shared.ingestion.spapi_gateway` implements it. `items` are
    (orderItemId, quantity) pairs. Raises `TransientError` on throttling or outage."""

    def confirm_shipment(
        self,
        *,
        seller_id: str,
        marketplace_id: str,
        order_id: str,
        package_reference: str,
        carrier_code: str,
        carrier_name: str,
        shipping_method: str,
        tracking_number: str,
        ship_date: datetime,
        items: Sequence[tuple[str, int]],
    ) -> object: ...


CarrierDirectory = Callable[[str], Mapping[str, Carrier]]
"""seller id -> that seller's carriers by rule name ("usps", "fedex", "ups", "amazon")."""


def new_intent_id() -> str:
    # 24 hex characters: unique, and within FedEx's 30-character customer reference.
    return secrets.token_hex(12)


def _recipient(address: Address, *, with_phone: bool) -> Recipient:
    """What the label needs of the address; the phone only for a carrier that requires it."""
    return Recipient(
        name=address.name,
        line1=address.line1,
        city=address.city,
        postal_code=address.postal_code,
        country_code=address.country_code,
        line2=address.line2,
        line3=address.line3,
        company=address.company,
        state_or_region=address.state_or_region,
        phone=address.phone if with_phone else None,
    )


def _stopped_while_buying(current: OrderRecord, shipment: Mapping[str, Any]) -> bool:
    """The order may no longer be confirmed shipped: cancelled, restricted, being erased, or
    no longer holding this purchase's intent."""
    held = current.shipment or {}
    return (
        current.stage is not Stage.READY
        or lifecycle.untouchable(current)
        or held.get("intentId") != shipment["intentId"]
    )


def _shipped_items(record: OrderRecord) -> list[OrderItem]:
    """The lines that ship: a line Amazon reports with quantity 0 (cancelled) is not one."""
    return [i for i in record.items if i.quantity > 0]


def _parcel_doc(parcel: Parcel) -> dict[str, str]:
    return {
        "weightKg": str(parcel.weight_kg),
        "lengthCm": str(parcel.length_cm),
        "widthCm": str(parcel.width_cm),
        "heightCm": str(parcel.height_cm),
    }


def _parcel(doc: Mapping[str, Any]) -> Parcel:
    return Parcel(
        Decimal(doc["weightKg"]), Decimal(doc["lengthCm"]), Decimal(doc["widthCm"]), Decimal(doc["heightCm"])
    )


def _purchased(intent: Mapping[str, Any], label: Label, blob: str, now: datetime) -> dict[str, Any]:
    # No personal data: this is also the label blob's metadata.
    return {
        **intent,
        "state": lifecycle.LABEL_PURCHASED,
        "carrier": label.carrier,
        "carrierName": label.carrier_name,
        "service": label.service,
        "trackingNumber": label.tracking_number,
        "shipmentId": label.shipment_id,
        **({"carrierId": label.carrier_id} if label.carrier_id else {}),
        "labelBlob": blob,
        "confirmedByCarrier": label.confirmed_by_carrier,
        "purchasedAt": now.isoformat(),
    }


class ShippingService:
    """Implements `shared.app.runtime.Shipping`."""

    def __init__(  # noqa: PLR0917 - one collaborator each, wired once by the composition root
        self,
        orders: OrderRepository,
        cipher: PiiCipher,
        rules: ShippingRules,
        carriers: CarrierDirectory,
        labels: LabelStore,
        confirmer: ShipmentConfirmer,
        *,
        new_id: Callable[[], str] = new_intent_id,
    ) -> None:
        self._orders = orders
        self._cipher = cipher
        self._rules = rules
        self._carriers = carriers
        self._labels = labels
        self._confirmer = confirmer
        self._new_id = new_id

    def ship(self, request: ShipOrder, now: datetime) -> Sequence[IssueInvoice]:
        try:
            return self._ship(request, now)
        except TransientError as failure:
            if retry_delay(failure) is not None:
                raise  # throttled: the host re-queues the message with the wait it was told
            # Not poisoned: the order is tried again after the back-off, until its ship-by date.
            scheduled = self._retry_later(request.ref, now)
            if scheduled is None:
                raise  # a label purchase under way (its replay decides), or the store is down
            if scheduled.stage is Stage.ATTENTION:
                return self._outcome(str(scheduled.attention), [])
            return self._outcome(f"retry_{failure.code}"[:40], [])

    def _ship(self, request: ShipOrder, now: datetime) -> Sequence[IssueInvoice]:
        record = self._orders.get(request.ref)
        if record is None or record.being_erased:
            # Purged or erased: a label an earlier delivery of this message stored after the
            # order's files were deleted must not outlive it.
            self._labels.delete(request.ref)
        if record is None:
            return self._outcome("order_not_found", [])
        reason = lifecycle.shipping_skip_reason(record)
        if reason == "already_shipped" and record.shipment is None:
            return self._outcome("shipped_elsewhere", [])  # not by this app: nothing to invoice
        if reason == "already_shipped":
            # A redelivery after the final write: hand invoicing the order again (it decides).
            return self._outcome(reason, [IssueInvoice(record.ref)] if record.invoice is None else [])
        if reason is not None:
            return self._outcome(reason, [])
        try:
            return self._ship_ready(record, now)
        except IntegrityFailure:
            # Its buyer data or label failed authentication: flagged, never retried.
            integrity.flag(self._orders, record.ref)
            return self._outcome(integrity.INTEGRITY_FAILURE, [])

    def _ship_ready(self, record: OrderRecord, now: datetime) -> Sequence[IssueInvoice]:
        carriers = self._carriers(record.seller_id)
        state = (record.shipment or {}).get("state")
        try:
            if state == lifecycle.LABEL_PURCHASED:
                return self._finish(record, now, recorded=True)
            if state == INTENT:
                record = self._replay(record, carriers, now)
            else:
                record = self._buy(record, carriers, now)
        except (CarrierError, NoRoute) as problem:
            # Refused (the address, the request, the account): trying again cannot help. On a
            # replay an earlier try may have bought a label: its intent stays for the person.
            return self._attention(record.ref, problem.code, keep_intent=state == INTENT)
        return self._finish(record, now, recorded=False)

    # --- steps ---------------------------------------------------------------------------

    def _buy(self, record: OrderRecord, carriers: Mapping[str, Carrier], now: datetime) -> OrderRecord:
        choice = self._rules.choose(
            record.marketplace_id, record.ship_country, record.service_level, record.items, set(carriers)
        )
        carrier = carriers[choice.carrier]
        pii = self._open(record)
        if pii.ship_to is None:
            raise AddressProblem("no address", code=ADDRESS_MISSING)
        if carrier.requires_phone and not pii.ship_to.phone:
            raise AddressProblem("carrier needs a phone", code=PHONE_MISSING)
        intent = {
            "state": INTENT,
            "intentId": self._new_id(),
            "carrier": choice.carrier,
            "service": choice.service,
            "rule": choice.rule,
            "parcel": _parcel_doc(choice.parcel),
            "createdAt": now.isoformat(),
        }
        stored = self._write_intent(record, intent, now)
        if stored is None:
            raise TransientError("order changed while shipping", code="shipment_race")
        shipment = stored.shipment or {}
        if shipment.get("intentId") != intent["intentId"]:
            # Another delivery of the same message wrote its intent first: let it finish.
            raise TransientError("another delivery is shipping this order", code="shipment_in_progress")
        return self._purchase(stored, carrier, pii, now, replaying=False)

    def _replay(self, record: OrderRecord, carriers: Mapping[str, Carrier], now: datetime) -> OrderRecord:
        shipment = record.shipment or {}
        stored = self._labels.purchase(record.ref)
        if stored is not None and stored.get("intentId") == shipment.get("intentId"):
            return record.evolve(shipment=dict(stored))  # bought and stored before the crash
        carrier = carriers.get(str(shipment.get("carrier")))
        if carrier is None:
            raise AddressProblem("carrier no longer configured", code=CARRIER_UNCONFIGURED)
        if not carrier.replay_safe:
            raise AddressProblem("label may exist; not buying twice", code=INTENT_UNRESOLVED)
        return self._purchase(record, carrier, self._open(record), now, replaying=True)

    def _purchase(
        self, record: OrderRecord, carrier: Carrier, pii: OrderPii, now: datetime, *, replaying: bool
    ) -> OrderRecord:
        """The order with its label, bought and stored with its purchase (not yet written).
        `replaying`: its intent was written by an earlier try, whose purchase may have gone
        through."""
        shipment = record.shipment or {}
        intent_id = str(shipment["intentId"])
        label_request = LabelRequest(
            idempotency_key=intent_id,
            service=str(shipment["service"]),
            ship_from=self._rules.ship_from,
            parcel=_parcel(shipment["parcel"]),
            ship_date=now.date(),
            # Buy Shipping rates from the address Amazon holds: it gets none from us.
            recipient=(
                None
                if carrier.name == "amazon" or pii.ship_to is None
                else _recipient(pii.ship_to, with_phone=carrier.requires_phone)
            ),
            amazon_order_id=pii.order_id,
            items=tuple(LabelItem(i.order_item_id, i.quantity) for i in _shipped_items(record)),
            marketplace_id=record.marketplace_id,
        )
        try:
            label = carrier.create_label(label_request)
        except CarrierUnavailable as failure:
            in_doubt = replaying or isinstance(failure, CarrierTimeout)
            self._purchase_failed(record.ref, intent_id, failure, now, in_doubt=in_doubt)
            raise
        purchased = _purchased(shipment, label, label_blob_name(record.ref), now)
        return record.evolve(shipment=self._labels.put(record.ref, label.document, purchased, now))

    def _finish(self, record: OrderRecord, now: datetime, *, recorded: bool) -> Sequence[IssueInvoice]:
        """Confirm to Amazon and write the order shipped. A purchase not yet on the order
        (`recorded` False: it is beside the label) is written on its own when that cannot
        happen, so any person sees what was bought."""
        shipment = dict(record.shipment or {})
        if not shipment.get("confirmedByCarrier"):
            # Read again before telling Amazon: the order may have been cancelled, restricted or
            # erased while the carrier sold the label (one read, against a false confirmation).
            latest = self._orders.get(record.ref)
            if latest is None or _stopped_while_buying(latest, shipment):
                return self._stopped(record.ref, latest, shipment, recorded=recorded)
            record = latest
            try:
                self._confirm(record, shipment)
            except Exception:
                # The retry ships, or finds the order gone or erased and deletes the label.
                if not recorded:
                    with contextlib.suppress(AppError):  # the confirmation's error is the news
                        self._write_purchase(record.ref, str(shipment["intentId"]), shipment)
                raise

        def shipped(current: OrderRecord) -> OrderRecord | None:
            if _stopped_while_buying(current, shipment):
                return None
            now_shipment = current.shipment or {}
            if now_shipment.get("state") not in (INTENT, lifecycle.LABEL_PURCHASED):
                return None
            # The unshipped order's deadline, and the TTL from it, may fall before the parcel
            # arrives: the lifecycle drops both and sets the first delivery check instead.
            shipment_now = {**shipment, "state": SHIPPED, "shippedAt": now.isoformat()}
            return lifecycle.shipped(current, shipment=shipment_now, ttl=None)

        # `record` carries the etag of the intent's write (or of the read that found it).
        final = self._orders.update_from(record, shipped)
        if final is None or final.stage is not Stage.SHIPPED:
            return self._stopped(
                record.ref, final, shipment, recorded=recorded, outcome="changed_before_shipped"
            )
        return self._outcome("shipped", [IssueInvoice(record.ref)])

    def _confirm(self, record: OrderRecord, shipment: Mapping[str, Any]) -> None:
        pii = self._open(record)
        self._confirmer.confirm_shipment(
            seller_id=record.seller_id,
            marketplace_id=record.marketplace_id,
            order_id=pii.order_id,
            package_reference=PACKAGE_REFERENCE,
            carrier_code=str(shipment["carrierName"]),
            carrier_name=str(shipment["carrierName"]),
            shipping_method=str(shipment["service"]),
            tracking_number=str(shipment["trackingNumber"]),
            ship_date=datetime.fromisoformat(str(shipment["purchasedAt"])),
            items=[(i.order_item_id, i.quantity) for i in _shipped_items(record)],
        )

    # --- state writes (compare-and-swap through OrderRepository: update_from writes over the
    # record in hand and re-reads only on a conflict) -----------------------------------------

    def _write_intent(
        self, record: OrderRecord, intent: Mapping[str, Any], now: datetime
    ) -> OrderRecord | None:
        def change(current: OrderRecord) -> OrderRecord | None:
            if current.stage is not Stage.READY or current.shipment:
                return None
            return lifecycle.purchase_started(current, intent, now)

        return self._orders.update_from(record, change)

    def _stopped(
        self,
        ref: str,
        latest: OrderRecord | None,
        shipment: Mapping[str, Any],
        *,
        recorded: bool,
        outcome: str = "stopped_before_confirm",
    ) -> Sequence[IssueInvoice]:
        """An order stopped while its label was bought is not (or no longer) written shipped.
        Gone or being erased: the label, which holds the buyer's address, goes with it.
        Cancelled, restricted or changed: the purchase is put on the order (if it is not yet),
        so a person sees the label to void."""
        if latest is None or latest.being_erased:
            self._labels.delete(ref)
            return self._outcome("order_erased_while_shipping", [])
        if not recorded:
            self._write_purchase(ref, str(shipment["intentId"]), shipment)
        return self._outcome(outcome, [])

    def _write_purchase(self, ref: str, intent_id: str, purchased: Mapping[str, Any]) -> None:
        def change(current: OrderRecord) -> OrderRecord | None:
            shipment = current.shipment or {}
            if shipment.get("intentId") != intent_id or shipment.get("state") != INTENT:
                return None
            return current.evolve(shipment=dict(purchased))

        self._orders.update(ref, change)

    def _purchase_failed(
        self, ref: str, intent_id: str, failure: CarrierUnavailable, now: datetime, *, in_doubt: bool
    ) -> None:
        """The carrier was unavailable; the order goes back in the redrive's index. Nothing
        bought: the intent is cleared. Maybe bought (a timeout, or any failure of a purchase
        asked again after one): the intent stays, so the next try asks with the same key (the
        replay). A throttled try's message is re-queued by the host with its wait; the index
        holds it only as a lost message would be."""
        throttled = retry_delay(failure) is not None

        def change(current: OrderRecord) -> OrderRecord | None:
            shipment = current.shipment or {}
            if shipment.get("intentId") != intent_id or shipment.get("state") != INTENT:
                return None
            if not in_doubt:
                current = current.evolve(shipment=None)
            if throttled:
                return lifecycle.ship_again_at(current, now + lifecycle.RESEND_AFTER, now)
            return lifecycle.shipping_failed(current, now)

        self._orders.update(ref, change)

    def _retry_later(self, ref: str, now: datetime) -> OrderRecord | None:
        """After a transient failure: the order in the redrive's index for another try (or,
        past its ship-by date, with a person); None if it cannot be. A failed purchase has
        scheduled it already; an intent it did not schedule may be another delivery's, running."""

        def change(current: OrderRecord) -> OrderRecord | None:
            if not lifecycle.may_ship_again(current) or lifecycle.failure_recorded(current, now):
                return None
            if (current.shipment or {}).get("state") == INTENT:
                return None
            return lifecycle.shipping_failed(current, now)

        try:
            updated = self._orders.update(ref, change)
        except AppError:
            return None  # the store is down too: the host's redelivery, then the redrive
        return updated if updated is not None and lifecycle.failure_recorded(updated, now) else None

    def _attention(self, ref: str, code: str, *, keep_intent: bool) -> Sequence[IssueInvoice]:
        def change(current: OrderRecord) -> OrderRecord | None:
            if current.stage is not Stage.READY:
                return None
            # A known-unbought intent is dropped; one that may have a label stays for the person.
            keep = current.shipment if keep_intent else None
            return lifecycle.needs_attention(current, code, shipment=keep)

        self._orders.update(ref, change)
        return self._outcome(code, [])

    # --- helpers -------------------------------------------------------------------------

    def _open(self, record: OrderRecord) -> OrderPii:
        if record.pii is None:
            raise AddressProblem("no sealed data", code=ADDRESS_MISSING)
        return self._cipher.open(record.ref, record.pii)

    @staticmethod
    def _outcome(outcome: str, result: list[IssueInvoice]) -> list[IssueInvoice]:
        # The outcome (a reason code) becomes the invocation's stage in telemetry.
        record_stage(outcome)
        return result
