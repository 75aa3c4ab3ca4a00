"""Local stand-ins for the USPS, FedEx and UPS APIs that karrio calls, on 127.0.0.1.

Each carrier gets its own HTTP server on a free port and answers the endpoints karrio
2026.1 uses: OAuth token, label purchase, void and tracking (USPS also its payment
authorisation). They are independent imitations of the carriers: they import nothing from the
app. For tests they

- record every request body they receive (`requests`), to prove what left the app;
- de-duplicate purchases on the customer reference karrio sends (USPS
  `packageDescription.customerReference`, FedEx `customerReferences` CUSTOMER_REFERENCE, UPS
  `TransactionReference.CustomerContext`): a repeated reference returns the first label. The
  real APIs do not promise this (docs/shipping.md); it is how the app's replay is tested;
- inject faults: `fail_next(n)` answers the next n purchases 503, `reject_next(n)` rejects the
  next n with the carrier's address error;
- return a real one-page PDF (UPS: an image in the format the request names, as UPS does, a
  4x6 in label at 203 dpi, landscape, with the tracking number as a Code 128 barcode; karrio
  turns it into a PDF). UPS's OAuth token says when it was issued (`issued_at`, epoch ms) and
  for how long it lasts, as UPS's does.

Start all three with `start()`, stop them with `stop()` (or use `running()`).
"""

from __future__ import annotations

import base64
import io
import itertools
import json
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Response = tuple[int, dict[str, Any] | str]

# A UPS label image: 4 x 6 in at 203 dpi (812 x 1218 px), black on white, sent landscape.
LABEL_DPI = 203
LABEL_SIZE_PX = (812, 1218)
BARCODE_BOX = (60, 780, 752, 980)  # left, top, right, bottom, portrait, before rotation
UPS_IMAGE_FORMATS = ("GIF", "PNG")


def label_image(tracking_number: str, image_format: str = "GIF") -> bytes:
    """A UPS label image: boxes where the addresses go (no buyer data) and the tracking number
    as a Code 128 barcode, drawn portrait and sent rotated to landscape, as UPS does."""
    from barcode import Code128
    from PIL import Image, ImageDraw

    image = Image.new("L", LABEL_SIZE_PX, 255)
    draw = ImageDraw.Draw(image)
    draw.rectangle((20, 20, 792, 1198), outline=0, width=4)
    for top in (60, 300, 540):
        draw.rectangle((60, top, 752, top + 180), outline=0, width=3)
    modules = Code128(tracking_number).build()[0]
    left, top, right, bottom = BARCODE_BOX
    width = max(1, (right - left) // len(modules))
    start = left + (right - left - width * len(modules)) // 2
    for i, bit in enumerate(modules):
        if bit == "1":
            draw.rectangle((start + i * width, top, start + (i + 1) * width - 1, bottom), fill=0)
    landscape = image.rotate(90, expand=True).convert("P")
    out = io.BytesIO()
    landscape.save(out, format=image_format)
    return out.getvalue()


def label_pdf(tracking_number: str) -> bytes:
    """A small valid one-page PDF naming the tracking number (no buyer data)."""
    text = f"BT /F1 18 Tf 36 200 Td (LABEL {tracking_number}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 288 432] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length " + str(len(text)).encode() + b" >>\nstream\n" + text + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    for offset in offsets:
        out += f"{offset:010d} 00000 n \n".encode()
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


@dataclass
class Recorded:
    method: str
    path: str
    body: Any


@dataclass
class CarrierStandIn:
    """State shared by one carrier's handler threads."""

    name: str
    requests: list[Recorded] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)  # reference -> tracking number
    voided: set[str] = field(default_factory=set)
    purchases: int = 0  # labels actually created (a replayed reference does not count)
    #: None: every label tracks as delivered at once (what the adapter tests need). A set (see
    #: `hold_deliveries`): only these tracking numbers are delivered, the others are in transit.
    delivered: set[str] | None = None
    #: Tracking numbers sent back to the shipper (`mark_returned`): FedEx and UPS report them
    #: with their return-to-shipper codes (RS), which karrio maps to `return_to_sender`.
    returned: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)
    #: The carrier's OAuth endpoint refuses every credential (revoked or mistyped), as the real
    #: carriers answer: 401 with their own error body.
    refuse_credentials: bool = False
    _fail: int = 0
    _reject: int = 0
    #: The status `fail_next` answers with.
    fail_status: int = 503
    _lose: int = 0
    _garble: bool = False
    #: Label answers lost so far (`lose_answers_next`).
    lost: int = 0
    _numbers: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    server: ThreadingHTTPServer | None = None
    thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        if self.server is None:
            raise RuntimeError("stand-in not started")
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def fail_next(self, n: int, status: int = 503) -> None:
        """The next n label purchases fail with `status` (nothing bought)."""
        with self.lock:
            self._fail = n
            self.fail_status = status

    def reject_next(self, n: int) -> None:
        with self.lock:
            self._reject = n

    def lose_answers_next(self, n: int, *, garbled: bool = False) -> None:
        """The next n labels are bought, then the connection closes before the answer, or
        (`garbled`) a proxy's unreadable page is answered instead of it: either way the caller
        cannot know whether it bought one."""
        with self.lock:
            self._lose = n
            self._garble = garbled

    def answer_lost(self, method: str, path: str, status: int) -> str | None:
        """How this answer to a label purchase is lost ("closed" or "garbled"; see
        `lose_answers_next`), or None."""
        with self.lock:
            if self._lose <= 0 or method != "POST" or status != 200 or not _is_label_path(path):
                return None
            self._lose -= 1
            self.lost += 1
            return "garbled" if self._garble else "closed"

    def hold_deliveries(self) -> None:
        """From now on a label tracks as in transit until `mark_delivered` names it."""
        with self.lock:
            self.delivered = set() if self.delivered is None else self.delivered

    def mark_delivered(self, tracking_number: str) -> bool:
        """The parcel arrived; False when this carrier never issued that number."""
        with self.lock:
            if tracking_number not in self.labels.values():
                return False
            if self.delivered is not None:
                self.delivered.add(tracking_number)
            return True

    def mark_returned(self, tracking_number: str) -> bool:
        """The parcel went back to the shipper, never delivered; False when this carrier never
        issued that number."""
        with self.lock:
            if tracking_number not in self.labels.values():
                return False
            self.returned.add(tracking_number)
            return True

    def in_transit(self, tracking_number: str) -> bool:
        with self.lock:
            return self.delivered is not None and tracking_number not in self.delivered

    def sent_back(self, tracking_number: str) -> bool:
        with self.lock:
            return tracking_number in self.returned

    def label_bodies(self) -> list[Any]:
        return [r.body for r in self.requests if r.method == "POST" and _is_label_path(r.path)]

    def purchase(self, reference: str | None, prefix: str) -> tuple[str, bool] | str:
        """Tracking number for `reference` and whether it is new, or a fault name."""
        with self.lock:
            if self._fail > 0:
                self._fail -= 1
                return "fail"
            if self._reject > 0:
                self._reject -= 1
                return "reject"
            if reference and reference in self.labels:
                return self.labels[reference], False
            number = f"{prefix}{next(self._numbers):010d}"
            if reference:
                self.labels[reference] = number
            self.purchases += 1
            return number, True


def _is_label_path(path: str) -> bool:
    return path.startswith(("/labels/v3/label", "/ship/v1/shipments", "/api/shipments/v2409/ship"))


def _find(value: Any, key: str) -> list[Any]:
    """Every value under `key` anywhere in a JSON document."""
    found: list[Any] = []
    if isinstance(value, dict):
        for k, v in value.items():
            if k == key:
                found.append(v)
            found.extend(_find(v, key))
    elif isinstance(value, list):
        for v in value:
            found.extend(_find(v, key))
    return found


# Each carrier's answer to refused client credentials (401), in its own error format.
REFUSED: dict[str, Any] = {
    "usps": {"error": "invalid_client", "error_description": "Client authentication failed"},
    "fedex": {
        "errors": [
            {"code": "NOT.AUTHORIZED.ERROR", "message": "The given client credentials were not valid."}
        ]
    },
    "ups": {"response": {"errors": [{"code": "250003", "message": "Invalid Access License number"}]}},
}


def _token(state: CarrierStandIn, __: Any) -> Response:
    if state.refuse_credentials:
        return 401, REFUSED[state.name]
    return 200, {"access_token": "local-token", "token_type": "Bearer", "expires_in": 3600}


# --- USPS (apis.usps.com v3) ---------------------------------------------------------------


def _usps_label(state: CarrierStandIn, body: Any) -> Response:
    refs = [r.get("referenceNumber") for r in _find(body, "customerReference") for r in r or []]
    outcome = state.purchase(refs[0] if refs else None, "9400")
    if outcome == "fail":
        return state.fail_status, {
            "error": {"code": str(state.fail_status), "message": "Service Unavailable"}
        }
    if outcome == "reject":
        return 400, {
            "apiVersion": "/labels/v3",
            "error": {
                "code": "400",
                "message": "Invalid address",
                "errors": [
                    {
                        "status": "400",
                        "code": "ADDRESS_NOT_FOUND",
                        "title": "Address Not Found",
                        "source": {"parameter": "toAddress"},
                    }
                ],
            },
        }
    number, _ = outcome  # type: ignore[misc]
    return 200, {
        "labelMetadata": {
            "labelAddress": {},
            "trackingNumber": number,
            "postage": 7.5,
            "SKU": "DPXX0XXXXX00010",
            "labelBrokerID": "",
            "routingInformation": "420",
        },
        "labelImage": base64.b64encode(label_pdf(number)).decode(),
    }


def _usps_tracking(state: CarrierStandIn, number: str) -> Response:
    if number not in state.labels.values():
        return 404, {"error": {"code": "404", "message": "not found"}}
    if state.in_transit(number):
        return 200, {
            "trackingNumber": number,
            "statusCategory": "In Transit",
            "status": "In Transit to Next Facility",
            "trackingEvents": [
                {"eventType": "In Transit", "eventTimestamp": "2026-01-08T10:00:00Z", "eventCode": "T1"}
            ],
        }
    return 200, {
        "trackingNumber": number,
        "statusCategory": "Delivered",
        "status": "Delivered",
        "trackingEvents": [
            {"eventType": "Delivered", "eventTimestamp": "2026-01-10T10:00:00Z", "eventCode": "01"}
        ],
    }


def _usps(state: CarrierStandIn, method: str, path: str, body: Any) -> Response:
    if method == "POST" and path == "/oauth2/v3/token":
        return _token(state, body)
    if method == "POST" and path == "/payments/v3/payment-authorization":
        return 200, {"paymentAuthorizationToken": "local-payment-token"}
    if method == "POST" and path == "/labels/v3/label":
        return _usps_label(state, body)
    if method == "DELETE" and path.startswith("/labels/v3/label/"):
        state.voided.add(path.rsplit("/", 1)[1])
        return 200, {"trackingNumber": path.rsplit("/", 1)[1], "status": "CANCELED"}
    if method == "GET" and path.startswith("/tracking/v3/tracking/"):
        return _usps_tracking(state, path.rsplit("/", 1)[1])
    return 404, {"error": {"code": "404", "message": "no such endpoint"}}


# --- FedEx (apis.fedex.com) ----------------------------------------------------------------


def _fedex_reference(body: Any) -> str | None:
    refs = [
        r.get("value")
        for refs in _find(body, "customerReferences")
        for r in refs or []
        if r.get("customerReferenceType") == "CUSTOMER_REFERENCE"
    ]
    return refs[0] if refs else None


def _fedex_ship(state: CarrierStandIn, body: Any) -> Response:
    outcome = state.purchase(_fedex_reference(body), "7700")
    if outcome == "fail":
        return state.fail_status, {
            "transactionId": "t",
            "errors": [{"code": "SERVICE.UNAVAILABLE.ERROR", "message": "unavailable"}],
        }
    if outcome == "reject":
        return 400, {
            "transactionId": "t",
            "errors": [{"code": "RECIPIENT.POSTALCODE.INVALID", "message": "invalid"}],
        }
    number, _ = outcome  # type: ignore[misc]
    service = (body.get("requestedShipment") or {}).get("serviceType", "FEDEX_GROUND")
    return 200, {
        "transactionId": "t",
        "output": {
            "transactionShipments": [
                {
                    "masterTrackingNumber": number,
                    "serviceType": service,
                    "pieceResponses": [
                        {
                            "trackingNumber": number,
                            "packageDocuments": [
                                {
                                    "contentType": "LABEL",
                                    "docType": "PDF",
                                    "encodedLabel": base64.b64encode(label_pdf(number)).decode(),
                                }
                            ],
                        }
                    ],
                }
            ]
        },
    }


def _fedex_track(state: CarrierStandIn, body: Any) -> Response:
    numbers = [n.get("trackingNumber") for n in _find(body, "trackingNumberInfo")]
    results = [
        {
            "trackingNumber": n,
            "trackResults": [
                {
                    "trackingNumberInfo": {"trackingNumber": n},
                    **_fedex_status(_fedex_code(state, n)),
                }
            ],
        }
        for n in numbers
        if n in state.labels.values()
    ]
    return 200, {"transactionId": "t", "output": {"completeTrackResults": results}}


def _fedex_code(state: CarrierStandIn, number: str) -> str:
    if state.sent_back(number):
        return "RS"
    return "IT" if state.in_transit(number) else "DL"


def _fedex_status(code: str) -> dict[str, Any]:
    text = {"DL": "Delivered", "RS": "Return to shipper"}.get(code, "In transit")
    return {
        "latestStatusDetail": {"code": code, "derivedCode": code, "description": text},
        "scanEvents": [{"date": "2026-01-10T10:00:00+00:00", "eventType": code, "derivedStatusCode": code}],
    }


def _fedex(state: CarrierStandIn, method: str, path: str, body: Any) -> Response:
    if method == "POST" and path == "/oauth/token":
        return _token(state, body)
    if method == "POST" and path == "/ship/v1/shipments":
        return _fedex_ship(state, body)
    if method == "PUT" and path == "/ship/v1/shipments/cancel":
        state.voided.add(str(body.get("trackingNumber")))
        return 200, {"transactionId": "t", "output": {"cancelledShipment": True}}
    if method == "POST" and path == "/track/v1/trackingnumbers":
        return _fedex_track(state, body)
    return 404, {"errors": [{"code": "NOT.FOUND.ERROR", "message": "no such endpoint"}]}


# --- UPS (onlinetools.ups.com) -------------------------------------------------------------


def _ups_ship(state: CarrierStandIn, body: Any) -> Response:
    contexts = _find(body, "CustomerContext")
    outcome = state.purchase(contexts[0] if contexts else None, "1Z")
    if outcome == "fail":
        # UPS gateways answer outages with a plain-text page, not the JSON error envelope.
        return state.fail_status, "Service Unavailable"
    if outcome == "reject":
        return 400, {
            "response": {
                "errors": [{"code": "120202", "message": "Missing or invalid ship to StateProvinceCode"}]
            }
        }
    number, _ = outcome  # type: ignore[misc]
    # UPS answers in the image format the request names (LabelImageFormat.Code).
    asked = [str(c).upper() for c in _find(_find(body, "LabelImageFormat"), "Code")]
    image_format = asked[0] if asked and asked[0] in UPS_IMAGE_FORMATS else "GIF"
    image = base64.b64encode(label_image(number, image_format)).decode()
    return 200, {
        "ShipmentResponse": {
            "Response": {"ResponseStatus": {"Code": "1", "Description": "Success"}},
            "ShipmentResults": {
                "ShipmentIdentificationNumber": number,
                "PackageResults": [
                    {
                        "TrackingNumber": number,
                        "ShippingLabel": {"ImageFormat": {"Code": image_format}, "GraphicImage": image},
                    }
                ],
            },
        }
    }


def _ups_track(state: CarrierStandIn, number: str) -> Response:
    if number not in state.labels.values():
        return 200, {
            "trackResponse": {"shipment": [{"warnings": [{"code": "TW0001", "message": "not found"}]}]}
        }
    return 200, {
        "trackResponse": {
            "shipment": [
                {
                    "package": [
                        {
                            "trackingNumber": number,
                            **(
                                _UPS_RETURNED
                                if state.sent_back(number)
                                else _ups_status(delivered=not state.in_transit(number))
                            ),
                        }
                    ]
                }
            ]
        }
    }


def _ups_status(*, delivered: bool) -> dict[str, Any]:
    code, kind, text = ("011", "D", "Delivered") if delivered else ("005", "I", "In Transit")
    return {
        "currentStatus": {"code": code, "description": text},
        "activity": [
            {
                "date": "20260110",
                "time": "100000",
                "status": {"type": kind, "code": "KB" if delivered else "IP", "description": text},
            }
        ],
    }


# A parcel returned to the shipper: UPS's status type RS, newest activity first.
_UPS_RETURNED: dict[str, Any] = {
    "currentStatus": {"code": "RS", "description": "Returned to Shipper"},
    "activity": [
        {
            "date": "20260112",
            "time": "080000",
            "status": {"type": "RS", "code": "RS", "description": "Returned to Shipper"},
        },
        {
            "date": "20260111",
            "time": "150000",
            "status": {"type": "X", "code": "RF", "description": "Refused by the receiver"},
        },
    ],
}


def _ups(state: CarrierStandIn, method: str, path: str, body: Any) -> Response:
    if method == "POST" and path == "/security/v1/oauth/token" and state.refuse_credentials:
        return 401, REFUSED["ups"]
    if method == "POST" and path == "/security/v1/oauth/token":
        return 200, {
            "access_token": "local-token",
            "token_type": "Bearer",
            "issued_at": str(int(time.time() * 1000)),
            "expires_in": "14399",
            "status": "approved",
        }
    if method == "POST" and path == "/api/shipments/v2409/ship":
        return _ups_ship(state, body)
    if method == "DELETE" and path.startswith("/api/shipments/v2409/void/cancel/"):
        state.voided.add(path.rsplit("/", 1)[1])
        return 200, {"VoidShipmentResponse": {"Response": {"ResponseStatus": {"Code": "1"}}}}
    if method == "GET" and path.startswith("/api/track/v1/details/"):
        return _ups_track(state, path.rsplit("/", 1)[1])
    return 404, {"response": {"errors": [{"code": "404", "message": "no such endpoint"}]}}


Route = Callable[[CarrierStandIn, str, str, Any], Response]
ROUTES: dict[str, Route] = {"usps": _usps, "fedex": _fedex, "ups": _ups}


def _handler(state: CarrierStandIn, route: Route) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            return  # request lines would carry tracking numbers to stderr

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            path = urllib.parse.urlsplit(self.path).path
            body = _decode(raw, self.headers.get("Content-Type") or "")
            with state.lock:
                state.requests.append(Recorded(self.command, path, body))
            status, payload = route(state, self.command, path, body)
            lost = state.answer_lost(self.command, path, status)
            if lost == "closed":
                self.close_connection = True
                return
            if lost == "garbled":
                payload = "<html><body>upstream answered</body></html>"
            data = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
            self.send_response(status)
            ctype = "text/plain" if isinstance(payload, str) else "application/json"
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_DELETE = _serve

    return Handler


def _decode(raw: bytes, content_type: str) -> Any:
    if not raw:
        return None
    text = raw.decode("utf-8", "replace")
    if "x-www-form-urlencoded" in content_type.lower():
        return dict(urllib.parse.parse_qsl(text))
    try:
        return json.loads(text)
    except ValueError:
        return text


def start_one(name: str) -> CarrierStandIn:
    state = CarrierStandIn(name)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state, ROUTES[name]))
    server.daemon_threads = True
    state.server = server
    state.thread = threading.Thread(target=server.serve_forever, name=f"{name}-standin", daemon=True)
    state.thread.start()
    return state


@dataclass
class CarrierServers:
    usps: CarrierStandIn
    fedex: CarrierStandIn
    ups: CarrierStandIn

    def all(self) -> dict[str, CarrierStandIn]:
        return {"usps": self.usps, "fedex": self.fedex, "ups": self.ups}

    def endpoints(self) -> dict[str, str]:
        """The CARRIER_ENDPOINTS app setting that points the app at these stand-ins."""
        return {name: s.base_url for name, s in self.all().items()}


def start() -> CarrierServers:
    return CarrierServers(start_one("usps"), start_one("fedex"), start_one("ups"))


def stop(servers: CarrierServers) -> None:
    for state in servers.all().values():
        if state.server is not None:
            state.server.shutdown()
            state.server.server_close()
        if state.thread is not None:
            state.thread.join(timeout=5)


@contextmanager
def running() -> Iterator[CarrierServers]:
    servers = start()
    try:
        yield servers
    finally:
        stop(servers)
