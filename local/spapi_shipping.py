"""A local stand-in for the SP-API Shipping API v2 (Amazon Buy Shipping), on 127.0.0.1.

`ShippingV2StandIn.handle` answers /shipping/v2/... requests and returns None for any other
path, so the SP-API stand-in (local/spapi_server.py) can mount it beside its own routes;
`serve()` wraps it in a small server of its own (with an LWA token endpoint) for tests that
need only Buy Shipping. It imports nothing from the app.

Behaviour, after Amazon's model (shippingV2.json):
- getRates needs `channelDetails`; for channelType AMAZON it rates from the order and needs
  no `shipTo`. Every request body is recorded, so tests can prove no address was sent.
- purchaseShipment honours `x-amzn-IdempotencyKey`: a repeated key returns the first
  shipment and buys nothing more. `purchases` counts real purchases.
- Each rate's Amazon carrier is that of the shipping business the request assumes
  (`x-amzn-shipping-business-id`, the model's default AmazonShipping_UK): AmazonShipping_IT
  rates AMZN_IT. getTracking and cancelShipment know a shipment only under the business that
  bought it, and getTracking only with the `carrierId` of the rate bought.
- getTracking answers Delivered on the forward leg; `send_back(tracking_id, at)` makes it answer
  as Amazon's own getTracking example does: the forward leg Undeliverable, then a RETURNS leg
  (ReturnInitiated at `at`, Delivered back to the seller a day later), summary Delivered.
- `fail_next(n)` answers the next n purchases 503.

Amazon's model judges every exchange `handle` answers (`judge`, a
`local.amazon_models.ModelJudge`): the request the client sent and the JSON it is served.
"""

from __future__ import annotations

import base64
import itertools
import json
import threading
import urllib.parse
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from local.amazon_models import ModelJudge
from local.carrier_servers import label_pdf

Result = tuple[int, dict[str, str], bytes]
AMAZON_CARRIER = "AMZN"  # + the business's country: AMZN_US, AMZN_UK, ...
DEFAULT_BUSINESS = "AmazonShipping_UK"  # the model's default for the header
SERVICES = (
    ("std-us-swa-mfn", "Amazon Shipping Ground", AMAZON_CARRIER, "Amazon Shipping", 6.1),
    ("ups-ground", "UPS Ground", "UPS", "UPS", 8.4),
)


def _carrier_id(carrier: str, business: str) -> str:
    return f"{carrier}_{business.rsplit('_', 1)[-1]}" if carrier == AMAZON_CARRIER else carrier


def _stamp(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _json(status: int, payload: Any) -> Result:
    return status, {"Content-Type": "application/json"}, json.dumps(payload).encode()


def _error(status: int, code: str, message: str) -> Result:
    return _json(status, {"errors": [{"code": code, "message": message}]})


@dataclass
class Shipment:
    shipment_id: str
    tracking_id: str
    carrier_id: str
    order_id: str
    business: str


@dataclass
class ShippingV2StandIn:
    requests: list[tuple[str, str, Any]] = field(default_factory=list)
    tokens: dict[str, dict[str, Any]] = field(default_factory=dict)  # requestToken -> rate context
    by_key: dict[str, Shipment] = field(default_factory=dict)
    shipments: dict[str, Shipment] = field(default_factory=dict)
    cancelled: set[str] = field(default_factory=set)
    sent_back: dict[str, datetime] = field(default_factory=dict)  # tracking id -> return initiated
    purchases: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    _fail: int = 0
    _numbers: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    judge: ModelJudge = field(default_factory=ModelJudge.default)

    def fail_next(self, n: int) -> None:
        with self.lock:
            self._fail = n

    def send_back(self, tracking_id: str, at: datetime) -> bool:
        """The parcel was undeliverable and goes back to the seller from `at`; False when this
        stand-in never issued that tracking id."""
        with self.lock:
            if not any(s.tracking_id == tracking_id for s in self.shipments.values()):
                return False
            self.sent_back[tracking_id] = at
            return True

    def handle(  # noqa: PLR0917 - the signature local/spapi_server.py calls
        self,
        method: str,
        path: str,
        query: dict[str, list[str]],
        headers: dict[str, str],
        body: bytes,
        base_url: str,
    ) -> Result | None:
        if not path.startswith("/shipping/v2/"):
            return None
        result = self._answer(method, path, query, headers, body)
        self.judge.judge(
            method, path, query=query, headers=headers, body=body, status=result[0], response=result[2]
        )
        return result

    def _answer(
        self, method: str, path: str, query: dict[str, list[str]], headers: dict[str, str], body: bytes
    ) -> Result:
        lower = {k.lower(): v for k, v in headers.items()}
        if not lower.get("x-amz-access-token"):
            return _error(403, "Unauthorized", "access token missing")
        data = json.loads(body) if body else None
        business = lower.get("x-amzn-shipping-business-id") or DEFAULT_BUSINESS
        with self.lock:
            self.requests.append((method, path, data))
        if method == "POST" and path == "/shipping/v2/shipments/rates":
            return self._rates(data or {}, business)
        if method == "POST" and path == "/shipping/v2/shipments":
            return self._purchase(data or {}, lower.get("x-amzn-idempotencykey"), business)
        if method == "GET" and path == "/shipping/v2/tracking":
            return self._tracking(query, business)
        if method == "PUT" and path.endswith("/cancel"):
            return self._cancel(path.split("/")[-2], business)
        return _error(404, "NotFound", "no such operation in this stand-in")

    def _rates(self, data: dict[str, Any], business: str) -> Result:
        channel = data.get("channelDetails") or {}
        if channel.get("channelType") not in ("AMAZON", "EXTERNAL") or not data.get("packages"):
            return _error(400, "InvalidInput", "channelDetails and packages are required")
        order_id = (channel.get("amazonOrderDetails") or {}).get("orderId")
        if channel["channelType"] == "AMAZON" and not order_id:
            return _error(400, "InvalidInput", "amazonOrderDetails.orderId is required")
        if channel["channelType"] == "EXTERNAL" and not data.get("shipTo"):
            return _error(400, "InvalidInput", "shipTo is required for EXTERNAL")
        token = uuid.uuid4().hex
        rates = []
        for service_id, service_name, carrier, carrier_name, price in SERVICES:
            carrier_id = _carrier_id(carrier, business)
            rate_id = uuid.uuid4().hex
            rates.append(
                {
                    "rateId": rate_id,
                    "carrierId": carrier_id,
                    "carrierName": carrier_name,
                    "serviceId": service_id,
                    "serviceName": service_name,
                    "totalCharge": {"value": price, "unit": "USD"},
                    "promise": {},
                    "requiresAdditionalInputs": False,
                    "supportedDocumentSpecifications": [
                        {
                            "format": "PDF",
                            "size": {"width": 4, "length": 6, "unit": "INCH"},
                            "printOptions": [],
                        }
                    ],
                }
            )
            with self.lock:
                self.tokens[f"{token}/{rate_id}"] = {"carrierId": carrier_id, "orderId": order_id}
        return _json(200, {"payload": {"requestToken": token, "rates": rates, "ineligibleRates": []}})

    def _purchase(self, data: dict[str, Any], key: str | None, business: str) -> Result:
        with self.lock:
            if self._fail > 0:
                self._fail -= 1
                return _error(503, "ServiceUnavailable", "try again")
            if key and key in self.by_key:
                return _json(200, self._purchase_payload(self.by_key[key]))
            context = self.tokens.get(f"{data.get('requestToken')}/{data.get('rateId')}")
            if context is None or not data.get("requestedDocumentSpecification"):
                return _error(400, "InvalidInput", "unknown requestToken or rateId")
            number = next(self._numbers)
            shipment = Shipment(
                f"AMZSHIP{number:08d}",
                f"TBA{number:012d}",
                context["carrierId"],
                context["orderId"],
                business,
            )
            self.purchases += 1
            self.shipments[shipment.shipment_id] = shipment
            if key:
                self.by_key[key] = shipment
        return _json(200, self._purchase_payload(shipment))

    @staticmethod
    def _purchase_payload(shipment: Shipment) -> dict[str, Any]:
        contents = base64.b64encode(label_pdf(shipment.tracking_id)).decode()
        return {
            "payload": {
                "shipmentId": shipment.shipment_id,
                "promise": {},
                "packageDocumentDetails": [
                    {
                        "packageClientReferenceId": "1",
                        "trackingId": shipment.tracking_id,
                        "packageDocuments": [{"type": "LABEL", "format": "PDF", "contents": contents}],
                    }
                ],
            }
        }

    def _tracking(self, query: dict[str, list[str]], business: str) -> Result:
        tracking_id = (query.get("trackingId") or [""])[0]
        carrier_id = (query.get("carrierId") or [""])[0]
        with self.lock:
            found = [s for s in self.shipments.values() if s.tracking_id == tracking_id]
            back = self.sent_back.get(tracking_id)
        if not found or found[0].business != business:
            return _error(404, "NotFound", "unknown tracking id")
        if found[0].carrier_id != carrier_id:
            return _error(400, "InvalidInput", "carrierId is not the carrier of this shipment")
        if back is not None:
            return _json(200, {"payload": _returned(tracking_id, back)})
        return _json(
            200,
            {
                "payload": {
                    "trackingId": tracking_id,
                    "alternateLegTrackingId": "",
                    "promisedDeliveryDate": "2026-01-12T20:00:00Z",
                    "summary": {"status": "Delivered"},
                    "eventHistory": [
                        {
                            "eventCode": "Delivered",
                            "eventTime": "2026-01-10T10:00:00Z",
                            "shipmentType": "FORWARD",
                        }
                    ],
                }
            },
        )

    def _cancel(self, shipment_id: str, business: str) -> Result:
        shipment = self.shipments.get(shipment_id)
        if shipment is None or shipment.business != business:
            return _error(404, "NotFound", "unknown shipment")
        self.cancelled.add(shipment_id)
        return _json(200, {"payload": {}})


def _returned(tracking_id: str, at: datetime) -> dict[str, Any]:
    """getTracking of a parcel sent back from `at`, in the shape of Amazon's own example."""
    where = {"postalCode": "EX33 2JL", "countryCode": "GB"}  # the example's location
    events = [
        ("Undeliverable", at - timedelta(days=1), "FORWARD"),
        ("ReturnInitiated", at, "RETURNS"),
        ("Delivered", at + timedelta(days=1), "RETURNS"),
    ]
    return {
        "trackingId": tracking_id,
        "alternateLegTrackingId": "",
        "eventHistory": [
            {"eventCode": code, "location": where, "eventTime": _stamp(when), "shipmentType": leg}
            for code, when, leg in events
        ],
        "promisedDeliveryDate": _stamp(at),
        "summary": {
            "status": "Delivered",
            "trackingDetailCodes": {"forward": ["Rejected"], "returns": ["Signed"]},
        },
    }


def _handler(standin: ShippingV2StandIn) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            return

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            parts = urllib.parse.urlsplit(self.path)
            base_url = f"http://127.0.0.1:{self.server.server_address[1]}"
            if parts.path == "/auth/o2/token":
                result: Result | None = _json(
                    200, {"access_token": "Atza|local", "token_type": "bearer", "expires_in": 3600}
                )
            else:
                result = standin.handle(
                    self.command,
                    parts.path,
                    urllib.parse.parse_qs(parts.query),
                    dict(self.headers),
                    body,
                    base_url,
                )
            status, headers, payload = result or _error(404, "NotFound", "not a Shipping API path")
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_PUT = _serve

    return Handler


@dataclass
class Served:
    standin: ShippingV2StandIn
    server: ThreadingHTTPServer
    thread: threading.Thread

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def serve(standin: ShippingV2StandIn | None = None) -> Served:
    """Serve the stand-in (and an LWA token endpoint) on a free loopback port."""
    standin = standin or ShippingV2StandIn()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(standin))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="shipping-v2-standin", daemon=True)
    thread.start()
    return Served(standin, server, thread)


@contextmanager
def running() -> Iterator[Served]:
    served = serve()
    try:
        yield served
    finally:
        served.stop()
