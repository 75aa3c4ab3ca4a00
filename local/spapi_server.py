"""A Selling Partner API stand-in on 127.0.0.1: LWA tokens, Orders v2026-01-01, v0 confirmShipment.

An independent imitation of Amazon's service (it imports nothing from `shared/`), used by tests,
`make run` and `make bench`. It speaks HTTPS with a throw-away CA (trustme), because
python-amazon-sp-api builds the Host header as `endpoint[8:]`, i.e. assumes `https://`: serving
TLS lets the real client run unmodified, with certificate verification on (`ca_file`).

What it imitates, from Amazon's models (orders_2026-01-01.json, ordersV0.json):
- `POST /auth/o2/token` (refresh_token grant) -> `access_token`, `expires_in`.
- `GET /orders/2026-01-01/orders` (searchOrders): exactly one of createdAfter/lastUpdatedAfter,
  optional ...Before (at least two minutes before now; the default), marketplaceIds (<= 50),
  fulfilledBy, fulfillmentStatuses, maxResultsPerPage 1..100, paginationToken (24 h),
  includedData (datasets not asked for are stripped); 400 with `{"errors": [...]}` otherwise.
- `GET /orders/2026-01-01/orders/{orderId}` (getOrder), 404 for an unknown order.
- `POST /orders/v0/orders/{orderId}/shipmentConfirmation` (confirmShipment): 204; every call is
  recorded, so tests can count duplicates; the order becomes SHIPPED with a package.
- A token bucket per access token and operation with Amazon's default rate and burst, refilled
  on a SIMULATED clock that tests and the runner advance; 429 `QuotaExceeded` when empty;
  `x-amzn-RateLimit-Limit` on every response.
- Fault injection: `fail_next(operation, status, count)`.

Extra handlers (Shipping v2, Feeds, ... stand-ins) are tried, in order, before a 404.

Amazon's own models judge every exchange this stand-in answers itself (`judge`, a
`local.amazon_models.ModelJudge`): the request the client sent and the JSON it is served. The
extra handlers judge theirs; pass one judge to all of them to keep one list of violations.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import copy
import hashlib
import hmac
import json
import shutil
import ssl
import tempfile
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qs, unquote, urlsplit

import trustme

from local.amazon_models import ModelJudge

Response = tuple[int, dict[str, str], bytes]

SEARCH_ORDERS = "searchOrders"
GET_ORDER = "getOrder"
CONFIRM_SHIPMENT = "confirmShipment"
ORDERS_PATH = "/orders/2026-01-01/orders"
CONFIRM_PREFIX = "/orders/v0/orders/"
CONFIRM_SUFFIX = "/shipmentConfirmation"
TOKEN_PATH = "/auth/o2/token"  # noqa: S105 - a URL path, not a secret

DATASETS = (
    "BUYER",
    "RECIPIENT",
    "PROCEEDS",
    "EXPENSE",
    "PROMOTION",
    "CANCELLATION",
    "FULFILLMENT",
    "PACKAGES",
    "TAX",
    "PAYMENT",
    "FULFILLMENT_ORDERS",
)
# Which parts of an order (and of each order item) each `includedData` dataset adds.
ORDER_PARTS = {
    "BUYER": "buyer",
    "RECIPIENT": "recipient",
    "PROCEEDS": "proceeds",
    "FULFILLMENT": "fulfillment",
    "PACKAGES": "packages",
    "TAX": "tax",
    "PAYMENT": "payment",
    "FULFILLMENT_ORDERS": "fulfillmentOrders",
}
ITEM_PARTS = {
    "PROCEEDS": "proceeds",
    "EXPENSE": "expense",
    "PROMOTION": "promotion",
    "CANCELLATION": "cancellation",
    "FULFILLMENT": "fulfillment",
    "TAX": "tax",
}
FULFILLMENT_STATUSES = (
    "PENDING_AVAILABILITY",
    "PENDING",
    "UNSHIPPED",
    "PARTIALLY_SHIPPED",
    "SHIPPED",
    "CANCELLED",
    "UNFULFILLABLE",
)
PACKAGE_STATUSES = ("PENDING", "IN_TRANSIT", "SHIPPED", "DELIVERED", "CANCELLED", "UNDELIVERABLE")
SEARCH_LAG = timedelta(minutes=2)  # "...Before must be at least two minutes before the request"
TOKEN_LIFETIME = timedelta(hours=24)
MAX_PAGE = 100
QUOTA_MESSAGE = "You exceeded your quota for the requested resource."
MAX_MARKETPLACES = 50

# Signs the stand-in's access tokens so any instance accepts them: python-amazon-sp-api caches
# access tokens process-wide by refresh token, so a token from an earlier stand-in gets reused.
_TOKEN_KEY = b"spapi-stand-in-not-a-secret"


@dataclass(frozen=True)
class Plan:
    rate: float  # requests per second
    burst: int


DEFAULT_PLANS: Mapping[str, Plan] = {
    SEARCH_ORDERS: Plan(0.0056, 20),
    GET_ORDER: Plan(0.5, 30),
    CONFIRM_SHIPMENT: Plan(2.0, 10),
}


class ExtraHandler(Protocol):
    def handle(  # noqa: PLR0917 - the signature every extra handler shares
        self,
        method: str,
        path: str,
        query: dict[str, list[str]],
        headers: dict[str, str],
        body: bytes,
        base_url: str,
    ) -> Response | None: ...


class SimClock:
    """Simulated time: moves only when `advance` or `set` is called."""

    def __init__(self, start: datetime) -> None:
        self._now = start
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> datetime:
        with self._lock:
            self._now += timedelta(seconds=seconds)
            return self._now

    def set(self, when: datetime) -> None:
        with self._lock:
            if when < self._now:
                raise ValueError("the simulated clock does not go backwards")
            self._now = when


@dataclass
class _Bucket:
    tokens: float
    at: datetime

    def take(self, now: datetime, plan: Plan) -> bool:
        elapsed = max(0.0, (now - self.at).total_seconds())
        self.tokens = min(float(plan.burst), self.tokens + elapsed * plan.rate)
        self.at = max(self.at, now)
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


@dataclass
class _Cursor:
    ids: list[str]
    offset: int
    before_key: str
    before: str
    expires: datetime


@dataclass
class Confirmation:
    order_id: str
    body: dict[str, Any]
    at: datetime


class BadRequest(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_time(value: str, name: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest(f"{name} is not an ISO 8601 date-time") from None
    if parsed.tzinfo is None:
        raise BadRequest(f"{name} needs a time zone")
    return parsed


def _list_param(query: Mapping[str, list[str]], name: str) -> list[str]:
    return [part for raw in query.get(name, []) for part in raw.split(",") if part]


def _one(query: Mapping[str, list[str]], name: str) -> str | None:
    values = query.get(name)
    return values[-1] if values else None


def _json(status: int, body: object, headers: Mapping[str, str] | None = None) -> Response:
    out = {"content-type": "application/json", "x-amzn-RequestId": str(uuid.uuid4())}
    out.update(headers or {})
    return status, out, json.dumps(body).encode()


def _errors(status: int, code: str, message: str, headers: Mapping[str, str] | None = None) -> Response:
    return _json(status, {"errors": [{"code": code, "message": message, "details": ""}]}, headers)


def _rate_text(rate: float) -> str:
    return f"{rate:g}"


class SpApiStandIn:
    """The stand-in's state and behaviour; `start()` serves it over HTTPS on a free port."""

    def __init__(
        self,
        orders: Iterable[Mapping[str, Any]] = (),
        *,
        clock: Callable[[], datetime] | None = None,
        handlers: Sequence[ExtraHandler] = (),
        plans: Mapping[str, Plan] | None = None,
        lwa_clients: Mapping[str, str] | None = None,
        judge: ModelJudge | None = None,
    ) -> None:
        """`judge`: checks every exchange against Amazon's models (by default a new judge with
        the models beside the repository)."""
        self.judge = judge if judge is not None else ModelJudge.default()
        self.clock: Callable[[], datetime] = clock or SimClock(datetime(2026, 11, 1, tzinfo=UTC))
        self.handlers: list[ExtraHandler] = list(handlers)
        self.plans: dict[str, Plan] = dict(plans or DEFAULT_PLANS)
        #: client id -> the secrets LWA accepts for it now (two while a rotation's old one lives).
        self._lwa_clients = {k: {v} for k, v in lwa_clients.items()} if lwa_clients is not None else None
        #: Token requests LWA refused for a client secret it does not accept.
        self.token_refusals = 0
        self._lock = threading.RLock()
        self._orders: dict[str, dict[str, Any]] = {}
        self._buckets: dict[tuple[str, str], _Bucket] = {}
        self._cursors: dict[str, _Cursor] = {}
        self._faults: dict[str, deque[int]] = {}
        #: Requests per operation (every answer, 429s and faults included).
        self.calls: Counter[str] = Counter()
        #: 429s answered because a bucket was empty (faults not counted).
        self.throttled: Counter[str] = Counter()
        self.confirmations: list[Confirmation] = []
        self.token_requests = 0
        #: Called with a copy of an order each time it changes (the notifications stand-in,
        #: local/spapi_notifications.py, turns status changes into ORDER_CHANGE). Must not block.
        self.order_listeners: list[Callable[[dict[str, Any]], None]] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._tmp: Path | None = None
        self.url = ""
        self.ca_file = ""
        self.add_orders(orders)

    # ---- orders ---------------------------------------------------------------------------

    def add_orders(self, orders: Iterable[Mapping[str, Any]]) -> None:
        with self._lock:
            for order in orders:
                self._orders[str(order["orderId"])] = copy.deepcopy(dict(order))

    def load(self, source: Path | str | Mapping[str, Any]) -> int:
        """Add the orders of a searchOrders response body (a dict, or a path to its JSON)."""
        body = source if isinstance(source, Mapping) else json.loads(Path(source).read_text())
        orders = body["orders"]
        self.add_orders(orders)
        return len(orders)

    def order(self, order_id: str) -> dict[str, Any]:
        with self._lock:
            return copy.deepcopy(self._orders[order_id])

    def order_ids(self) -> list[str]:
        with self._lock:
            return list(self._orders)

    def _touch(self, order: dict[str, Any]) -> None:
        order["lastUpdatedTime"] = _iso(self.clock())
        for listener in self.order_listeners:
            listener(copy.deepcopy(order))

    def set_fulfillment_status(self, order_id: str, status: str) -> None:
        if status not in FULFILLMENT_STATUSES:
            raise ValueError("unknown fulfillment status")
        with self._lock:
            order = self._orders[order_id]
            order.setdefault("fulfillment", {})["fulfillmentStatus"] = status
            self._touch(order)

    def set_package_status(self, order_id: str, status: str, package_reference: str | None = None) -> None:
        """Set the status of one package (all packages when no reference is given)."""
        if status not in PACKAGE_STATUSES:
            raise ValueError("unknown package status")
        with self._lock:
            order = self._orders[order_id]
            for package in order.get("packages") or []:
                if package_reference in (None, package.get("packageReferenceId")):
                    package["packageStatus"] = {"status": status, "detailedStatus": status}
            self._touch(order)

    # ---- clock, budgets, faults -------------------------------------------------------------

    def now(self) -> datetime:
        return self.clock()

    def advance(self, seconds: float) -> datetime:
        if not isinstance(self.clock, SimClock):
            raise TypeError("advance() needs the stand-in's SimClock")
        return self.clock.advance(seconds)

    def fail_next(self, operation: str, status: int, count: int = 1) -> None:
        """Answer the next `count` requests of `operation` with `status` (429 or 5xx)."""
        with self._lock:
            self._faults.setdefault(operation, deque()).extend([status] * count)

    def recover(self, operation: str) -> None:
        """Drop the faults still queued for `operation`: its outage is over."""
        with self._lock:
            self._faults.pop(operation, None)

    def _admit(self, operation: str, token: str) -> Response | None:
        plan = self.plans[operation]
        limit = {"x-amzn-RateLimit-Limit": _rate_text(plan.rate)}
        with self._lock:
            self.calls[operation] += 1
            faults = self._faults.get(operation)
            if faults:
                status = faults.popleft()
                if status == 429:
                    return _errors(429, "QuotaExceeded", QUOTA_MESSAGE, limit)
                return _errors(status, "InternalFailure", "We encountered an internal error.", limit)
            now = self.clock()
            bucket = self._buckets.setdefault((token, operation), _Bucket(float(plan.burst), now))
            if not bucket.take(now, plan):
                self.throttled[operation] += 1
                return _errors(429, "QuotaExceeded", QUOTA_MESSAGE, limit)
        return None

    # ---- LWA --------------------------------------------------------------------------------

    @staticmethod
    def _access_token(client_id: str, refresh_token: str) -> str:
        subject = hashlib.sha256(f"{client_id}\n{refresh_token}".encode()).hexdigest()[:24]
        mac = hmac.new(_TOKEN_KEY, subject.encode(), hashlib.sha256).digest()
        return f"Atza|standin.{subject}.{base64.urlsafe_b64encode(mac[:18]).decode()}"

    @staticmethod
    def _grantless_token(client_id: str, scope: str) -> str:
        """An LWA client_credentials token ("Atc|" as Amazon's), for grantless operations."""
        subject = hashlib.sha256(f"{client_id}\n{scope}".encode()).hexdigest()[:24]
        mac = hmac.new(_TOKEN_KEY, f"grantless:{subject}".encode(), hashlib.sha256).digest()
        return f"Atc|standin.{subject}.{base64.urlsafe_b64encode(mac[:18]).decode()}"

    @staticmethod
    def grantless_token_valid(token: str) -> bool:
        parts = token.removeprefix("Atc|standin.").split(".")
        if not token.startswith("Atc|standin.") or len(parts) != 2:
            return False
        mac = hmac.new(_TOKEN_KEY, f"grantless:{parts[0]}".encode(), hashlib.sha256).digest()
        return hmac.compare_digest(parts[1], base64.urlsafe_b64encode(mac[:18]).decode())

    @classmethod
    def seller_token_valid(cls, token: str) -> bool:
        return cls._token_valid(token)

    @staticmethod
    def _token_valid(token: str) -> bool:
        parts = token.removeprefix("Atza|standin.").split(".")
        if not token.startswith("Atza|standin.") or len(parts) != 2:
            return False
        mac = hmac.new(_TOKEN_KEY, parts[0].encode(), hashlib.sha256).digest()
        return hmac.compare_digest(parts[1], base64.urlsafe_b64encode(mac[:18]).decode())

    def _secret_accepted(self, client_id: str, secret: str) -> bool:
        with self._lock:
            if self._lwa_clients is None:
                return True
            if secret in self._lwa_clients.get(client_id, set()):
                return True
            self.token_refusals += 1
            return False

    def accept_secret(self, client_id: str, secret: str) -> None:
        """LWA accepts `secret` for the client from now on (a rotation's new secret)."""
        with self._lock:
            if self._lwa_clients is not None:
                self._lwa_clients.setdefault(client_id, set()).add(secret)

    def retire_secret(self, client_id: str, secret: str) -> None:
        """LWA refuses `secret` from now on (a rotated secret at its expiry)."""
        with self._lock:
            if self._lwa_clients is not None:
                self._lwa_clients.get(client_id, set()).discard(secret)

    def _token(self, body: bytes) -> Response:
        form = {k: v[-1] for k, v in parse_qs(body.decode("utf-8", errors="replace")).items()}
        with self._lock:
            self.token_requests += 1
        if form.get("grant_type") == "client_credentials":
            return self._client_credentials(form)
        if form.get("grant_type") != "refresh_token":
            return _json(400, {"error": "unsupported_grant_type", "error_description": "grant_type"})
        client_id, secret, refresh = (
            form.get(k, "") for k in ("client_id", "client_secret", "refresh_token")
        )
        if not client_id or not secret or not refresh:
            return _json(400, {"error": "invalid_request", "error_description": "missing parameter"})
        if not self._secret_accepted(client_id, secret):
            return _json(
                401, {"error": "invalid_client", "error_description": "Client authentication failed"}
            )
        return _json(
            200,
            {
                "access_token": self._access_token(client_id, refresh),
                "refresh_token": refresh,
                "token_type": "bearer",
                "expires_in": 3600,
            },
        )

    def _client_credentials(self, form: Mapping[str, str]) -> Response:
        """Grantless operations' token (Notifications' destinations): client credentials and a
        `sellingpartnerapi::` scope, no seller's refresh token."""
        client_id, secret, scope = (form.get(k, "") for k in ("client_id", "client_secret", "scope"))
        if not client_id or not secret or not scope.startswith("sellingpartnerapi::"):
            return _json(400, {"error": "invalid_request", "error_description": "missing parameter"})
        if not self._secret_accepted(client_id, secret):
            return _json(
                401, {"error": "invalid_client", "error_description": "Client authentication failed"}
            )
        token = self._grantless_token(client_id, scope)
        return _json(200, {"access_token": token, "scope": scope, "token_type": "bearer", "expires_in": 3600})

    # ---- Orders -----------------------------------------------------------------------------

    @staticmethod
    def _shape(order: Mapping[str, Any], datasets: set[str]) -> dict[str, Any]:
        shaped = {k: copy.deepcopy(v) for k, v in order.items() if k not in ORDER_PARTS.values()}
        for dataset, key in ORDER_PARTS.items():
            if dataset in datasets and order.get(key) is not None:
                shaped[key] = copy.deepcopy(order[key])
        items = []
        for item in order.get("orderItems") or []:
            kept = {k: copy.deepcopy(v) for k, v in item.items() if k not in ITEM_PARTS.values()}
            for dataset, key in ITEM_PARTS.items():
                if dataset in datasets and item.get(key) is not None:
                    kept[key] = copy.deepcopy(item[key])
            items.append(kept)
        shaped["orderItems"] = items
        return shaped

    @staticmethod
    def _datasets(query: Mapping[str, list[str]]) -> set[str]:
        datasets = set(_list_param(query, "includedData"))
        unknown = datasets - set(DATASETS)
        if unknown:
            raise BadRequest("includedData has an unknown value")
        return datasets

    def _window(self, query: Mapping[str, list[str]], now: datetime) -> tuple[str, datetime, datetime]:
        created_after, updated_after = _one(query, "createdAfter"), _one(query, "lastUpdatedAfter")
        created_before, updated_before = _one(query, "createdBefore"), _one(query, "lastUpdatedBefore")
        if (created_after is None) == (updated_after is None):
            raise BadRequest("Exactly one of createdAfter and lastUpdatedAfter is required")
        if created_after is not None and (updated_before is not None):
            raise BadRequest("lastUpdatedBefore cannot be combined with createdAfter")
        if updated_after is not None and (created_before is not None):
            raise BadRequest("createdBefore cannot be combined with lastUpdatedAfter")
        key = "createdTime" if created_after is not None else "lastUpdatedTime"
        after_text = created_after if created_after is not None else updated_after
        before_text = created_before if created_after is not None else updated_before
        after = _parse_time(str(after_text), "after")
        latest = now - SEARCH_LAG
        before = _parse_time(before_text, "before") if before_text is not None else latest
        if before > latest:
            raise BadRequest("The before date must be at least two minutes before the request time")
        if before < after:
            raise BadRequest("The before date must not be earlier than the after date")
        return key, after, before

    def _matches(
        self, query: Mapping[str, list[str]], key: str, after: datetime, before: datetime
    ) -> list[str]:
        marketplaces = set(_list_param(query, "marketplaceIds"))
        if len(marketplaces) > MAX_MARKETPLACES:
            raise BadRequest("marketplaceIds has more than 50 values")
        by = set(_list_param(query, "fulfilledBy"))
        if by - {"MERCHANT", "AMAZON"}:
            raise BadRequest("fulfilledBy has an unknown value")
        statuses = set(_list_param(query, "fulfillmentStatuses"))
        if statuses - set(FULFILLMENT_STATUSES):
            raise BadRequest("fulfillmentStatuses has an unknown value")
        found: list[tuple[datetime, str]] = []
        for order_id, order in self._orders.items():
            when = _parse_time(str(order[key]), key)
            fulfillment = order.get("fulfillment") or {}
            if not after <= when <= before:
                continue
            if marketplaces and (order.get("salesChannel") or {}).get("marketplaceId") not in marketplaces:
                continue
            if by and fulfillment.get("fulfilledBy", "MERCHANT") not in by:
                continue
            if statuses and fulfillment.get("fulfillmentStatus") not in statuses:
                continue
            found.append((when, order_id))
        return [order_id for _, order_id in sorted(found)]

    def _page_size(self, query: Mapping[str, list[str]]) -> int:
        raw = _one(query, "maxResultsPerPage")
        if raw is None:
            return MAX_PAGE
        try:
            size = int(raw)
        except ValueError:
            raise BadRequest("maxResultsPerPage must be an integer") from None
        if not 1 <= size <= MAX_PAGE:
            raise BadRequest("maxResultsPerPage must be between 1 and 100")
        return size

    def _search(self, query: Mapping[str, list[str]]) -> Response:
        now = self.clock()
        datasets = self._datasets(query)
        size = self._page_size(query)
        key, after, before = self._window(query, now)
        with self._lock:
            token = _one(query, "paginationToken")
            if token is not None:
                cursor = self._cursors.pop(token, None)
                if cursor is None or cursor.expires < now:
                    raise BadRequest("paginationToken is invalid or expired")
            else:
                ids = self._matches(query, key, after, before)
                before_key = "createdBefore" if key == "createdTime" else "lastUpdatedBefore"
                cursor = _Cursor(ids, 0, before_key, _iso(before), now + TOKEN_LIFETIME)
            page_ids = cursor.ids[cursor.offset : cursor.offset + size]
            body: dict[str, Any] = {
                "orders": [self._shape(self._orders[i], datasets) for i in page_ids],
                cursor.before_key: cursor.before,
            }
            if cursor.offset + size < len(cursor.ids):
                next_token = uuid.uuid4().hex
                self._cursors[next_token] = _Cursor(
                    cursor.ids, cursor.offset + size, cursor.before_key, cursor.before, cursor.expires
                )
                body["pagination"] = {"nextToken": next_token}
        return _json(200, body)

    def _get_order(self, order_id: str, query: Mapping[str, list[str]]) -> Response:
        datasets = self._datasets(query)
        with self._lock:
            order = self._orders.get(order_id)
            if order is None:
                return _errors(404, "NotFound", "The requested order was not found.")
            return _json(200, {"order": self._shape(order, datasets)})

    def _confirm(self, order_id: str, body: bytes) -> Response:
        try:
            data = json.loads(body or b"{}")
        except ValueError:
            raise BadRequest("body is not JSON") from None
        package = data.get("packageDetail") if isinstance(data, dict) else None
        if not isinstance(data, dict) or not data.get("marketplaceId") or not isinstance(package, dict):
            raise BadRequest("marketplaceId and packageDetail are required")
        required = ("packageReferenceId", "carrierCode", "trackingNumber", "shipDate", "orderItems")
        if any(not package.get(k) for k in required):
            raise BadRequest("packageDetail lacks a required field")
        _parse_time(str(package["shipDate"]), "shipDate")
        with self._lock:
            order = self._orders.get(order_id)
            if order is None:
                return _errors(404, "NotFound", "The requested order was not found.")
            self.confirmations.append(Confirmation(order_id, data, self.clock()))
            order.setdefault("fulfillment", {})["fulfillmentStatus"] = "SHIPPED"
            packages = [
                p
                for p in order.get("packages") or []
                if p.get("packageReferenceId") != package["packageReferenceId"]
            ]
            packages.append(
                {
                    "packageReferenceId": str(package["packageReferenceId"]),
                    "packageStatus": {"status": "SHIPPED"},
                    "carrier": package.get("carrierName") or package["carrierCode"],
                    "trackingNumber": package["trackingNumber"],
                    "shipTime": package["shipDate"],
                }
            )
            if package.get("shippingMethod"):  # Amazon omits what it was not told (never null)
                packages[-1]["shippingService"] = str(package["shippingMethod"])
            order["packages"] = packages
            self._touch(order)
        return 204, {"x-amzn-RequestId": str(uuid.uuid4())}, b""

    # ---- dispatch ---------------------------------------------------------------------------

    def _operation(self, method: str, path: str) -> tuple[str, str] | None:
        if method == "GET" and path == ORDERS_PATH:
            return SEARCH_ORDERS, ""
        if method == "GET" and path.startswith(ORDERS_PATH + "/"):
            order_id = unquote(path[len(ORDERS_PATH) + 1 :])
            return (GET_ORDER, order_id) if order_id and "/" not in order_id else None
        if method == "POST" and path.startswith(CONFIRM_PREFIX) and path.endswith(CONFIRM_SUFFIX):
            return CONFIRM_SHIPMENT, unquote(path[len(CONFIRM_PREFIX) : -len(CONFIRM_SUFFIX)])
        return None

    def _run(self, operation: str, subject: str, query: Mapping[str, list[str]], body: bytes) -> Response:
        if operation == SEARCH_ORDERS:
            return self._search(query)
        if operation == GET_ORDER:
            return self._get_order(subject, query)
        return self._confirm(subject, body)

    def dispatch(
        self, method: str, target: str, headers: Mapping[str, str], body: bytes, base_url: str
    ) -> Response:
        parts = urlsplit(target)
        path, query = parts.path, parse_qs(parts.query, keep_blank_values=True)
        if method == "POST" and path == TOKEN_PATH:
            return self._token(body)  # LWA, which no SP-API model describes
        if self._operation(method, path) is None:
            lowered = {k.lower(): v for k, v in headers.items()}
            for handler in self.handlers:
                answer = handler.handle(method, path, query, lowered, body, base_url)
                if answer is not None:
                    return answer  # judged by the handler
        answer = self._answer(method, path, query, headers, body)
        self.judge.judge(
            method, path, query=query, headers=headers, body=body, status=answer[0], response=answer[2]
        )
        return answer

    def _answer(
        self,
        method: str,
        path: str,
        query: Mapping[str, list[str]],
        headers: Mapping[str, str],
        body: bytes,
    ) -> Response:
        found = self._operation(method, path)
        if found is None:
            return _errors(404, "NotFound", "Resource not found.")
        operation, subject = found
        limit = {"x-amzn-RateLimit-Limit": _rate_text(self.plans[operation].rate)}
        token = next((v for k, v in headers.items() if k.lower() == "x-amz-access-token"), "")
        if not self._token_valid(token):
            return _errors(403, "Unauthorized", "Access to requested resource is denied.", limit)
        refused = self._admit(operation, token)
        if refused is not None:
            return refused
        try:
            status, out, payload = self._run(operation, subject, query, body)
        except BadRequest as exc:
            status, out, payload = _errors(400, "InvalidInput", exc.message)
        return status, {**out, **limit}, payload

    # ---- serving ----------------------------------------------------------------------------

    def start(self, handlers: Sequence[ExtraHandler] = ()) -> str:
        """Serve HTTPS on 127.0.0.1 on a free port; returns the base URL (also `self.url`)."""
        self.handlers.extend(handlers)
        self._tmp = Path(tempfile.mkdtemp(prefix="spapi-standin-"))
        ca = trustme.CA()
        cert = ca.issue_cert("127.0.0.1", "localhost")
        ca_path = self._tmp / "ca.pem"
        ca.cert_pem.write_to_path(str(ca_path))
        self.ca_file = str(ca_path)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        cert.configure_cert(context)
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        server.daemon_threads = True
        # Handshake in the request thread (on first read), not in the accept loop.
        server.socket = context.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
        self._server = server
        self.url = f"https://127.0.0.1:{server.server_address[1]}"
        self._thread = threading.Thread(target=server.serve_forever, name="spapi-standin", daemon=True)
        self._thread.start()
        return self.url

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def __enter__(self) -> SpApiStandIn:
        if self._server is None:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _handler_for(stand_in: SpApiStandIn) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _serve(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length) if length else b""
            headers = {k: v for k, v in self.headers.items()}
            status, out, payload = stand_in.dispatch(self.command, self.path, headers, body, stand_in.url)
            self.send_response(status)
            for name, value in out.items():
                if name.lower() != "content-length":
                    self.send_header(name, value)
            self.send_header("content-length", str(len(payload)))
            self.end_headers()
            if payload and self.command != "HEAD":
                self.wfile.write(payload)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

        def log_message(self, format: str, *args: Any) -> None:
            return

    return Handler


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Serve the SP-API stand-in until interrupted.")
    parser.add_argument("--orders", type=Path, help="a searchOrders response body ({'orders': [...]})")
    args = parser.parse_args(argv)
    # On the command line simulated time follows the wall clock, from now.
    started_wall, started = time.monotonic(), datetime.now(UTC)
    stand_in = SpApiStandIn(clock=lambda: started + timedelta(seconds=time.monotonic() - started_wall))
    if args.orders:
        stand_in.load(args.orders)
    url = stand_in.start()
    print(json.dumps({"SPAPI_ENDPOINT": url, "LWA_ENDPOINT": url + TOKEN_PATH, "CA_FILE": stand_in.ca_file}))
    with contextlib.suppress(KeyboardInterrupt):
        threading.Event().wait()
    stand_in.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
