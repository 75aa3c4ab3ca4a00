"""The ingestion world: `IngestionService` against an in-process SP-API stand-in (no sockets)
and a memory store that logs every write, on one simulated clock.

`StandInGateway` sends the gateway's requests straight to `SpApiStandIn.dispatch`, so paging,
`includedData`, the token buckets and 429 bodies are the stand-in's own; the wire and the
python-amazon-sp-api client are covered by tests/integration/test_spapi_*.py.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from local.amazon_models import ModelJudge
from local.sample_orders import generate
from local.spapi_server import SimClock, SpApiStandIn
from shared.ingestion.rate_budget import GET_ORDER, SEARCH_ORDERS, RateBudget
from shared.ingestion.service import IngestionService
from shared.ingestion.spapi_gateway import (
    INCLUDED_DATA,
    FetchedOrder,
    SearchPage,
    SpApiNotFound,
    SpApiRejected,
    SpApiThrottled,
    SpApiUnavailable,
)
from shared.orders.messages import ShipOrder
from shared.settings import Settings, load_settings
from shared.storage.document_store import ORDERS, STATE, Document
from tests.fakes import FakeCipher, MemoryDocumentStore
from tests.worlds import order_repository

START = datetime(2026, 11, 1, tzinfo=UTC)
SELLER = "A1SELLER"
DE, FR = "A1PA6795UKMFR9", "A13V1IB3VIYZZH"


def settings(marketplaces: tuple[str, ...] = (DE, FR)) -> Settings:
    return load_settings(
        {
            "STORAGE": "UseDevelopmentStorage=true",
            "COSMOS_ENDPOINT": "https://127.0.0.1:1",
            "KEY_VAULT_URL": "https://127.0.0.1:1",
            "SELLERS": json.dumps(
                [{"sellerId": SELLER, "marketplaceIds": list(marketplaces), "refreshTokenSecret": "rt"}]
            ),
        }
    )


class FakeRefs:
    def ref(self, order_id: str) -> str:
        return hmac.new(b"test", order_id.encode(), hashlib.sha256).hexdigest()[:32]


class WriteLog(MemoryDocumentStore):
    """Records every order write as (id, amazonUpdatedAt, stage)."""

    def __init__(self) -> None:
        super().__init__()
        self.order_writes: list[tuple[str, str, str]] = []
        self.state_writes: list[str] = []

    def _log(self, container: str, doc: Document) -> None:
        if container == ORDERS:
            self.order_writes.append((doc["id"], doc["amazonUpdatedAt"], doc["stage"]))
        if container == STATE:
            self.state_writes.append(doc["id"])

    def create(self, container: str, doc: Document) -> Document:
        created = super().create(container, doc)
        self._log(container, doc)
        return created

    def replace(self, container: str, doc: Document, etag: str) -> Document:
        replaced = super().replace(container, doc, etag)
        self._log(container, doc)
        return replaced


class StandInGateway:
    """The gateway's contract, answered by the stand-in's request handler in-process."""

    def __init__(self, stand_in: SpApiStandIn) -> None:
        self.stand_in = stand_in
        self.token = SpApiStandIn._access_token("app", "refresh")

    def _get(self, path: str, params: Mapping[str, Any], operation: str) -> dict[str, Any]:
        target = f"{path}?{urlencode(params, doseq=True)}"
        status, headers, body = self.stand_in.dispatch(
            "GET", target, {"x-amz-access-token": self.token}, b"", ""
        )
        rate = float(headers["x-amzn-RateLimit-Limit"])
        if status == 429:
            raise SpApiThrottled(operation, 1 / rate, rate)
        if status == 404:
            raise SpApiNotFound(operation)
        if 400 <= status < 500:
            raise SpApiRejected(operation)
        if status >= 500:
            raise SpApiUnavailable(operation)
        data: dict[str, Any] = json.loads(body)
        data["_rate"] = rate
        return data

    def search_orders(
        self,
        seller_id: str,
        marketplace_ids: Any,
        *,
        last_updated_after: datetime,
        pagination_token: str | None = None,
    ) -> SearchPage:
        params: dict[str, Any] = {
            "lastUpdatedAfter": last_updated_after.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "marketplaceIds": ",".join(marketplace_ids),
            "fulfilledBy": "MERCHANT",
            "maxResultsPerPage": 100,
            "includedData": ",".join(INCLUDED_DATA),
        }
        if pagination_token:
            params["paginationToken"] = pagination_token
        data = self._get("/orders/2026-01-01/orders", params, SEARCH_ORDERS)
        before = data.get("lastUpdatedBefore")
        return SearchPage(
            orders=data["orders"],
            next_token=(data.get("pagination") or {}).get("nextToken"),
            last_updated_before=datetime.fromisoformat(before.replace("Z", "+00:00")) if before else None,
            rate=data["_rate"],
        )

    def get_order(self, seller_id: str, order_id: str) -> FetchedOrder:
        params = {"includedData": ",".join(INCLUDED_DATA)}
        data = self._get(f"/orders/2026-01-01/orders/{order_id}", params, GET_ORDER)
        return FetchedOrder(data["order"], data["_rate"])


class World:
    """A stand-in, a store and the service, sharing one simulated clock. `scheduled` writes
    orders under the app's retention schedule (`tests.worlds.order_repository`); it is off by
    default because it changes what the tests see: an order Amazon reports delivered is then
    stored as delivered (not shipped), and an order shipped elsewhere gets its first delivery
    check at once (test_ingestion_privacy_state applies the schedule itself to show that)."""

    def __init__(
        self,
        orders: list[dict[str, Any]],
        marketplaces: tuple[str, ...] = (DE, FR),
        poll_interval: timedelta = timedelta(minutes=5),
        *,
        scheduled: bool = False,
    ) -> None:
        self.clock = SimClock(START)
        # No model judge: Amazon's models judge the stand-in's exchanges where the result is
        # checked (integration tests, `make run`); here it was work whose verdict nobody read.
        self.stand_in = SpApiStandIn(orders, clock=self.clock, judge=ModelJudge.off())
        self.store = WriteLog()
        self.repo = order_repository(self.store, self.clock if scheduled else None)
        self.cipher = FakeCipher()
        self.refs = FakeRefs()
        self.settings = settings(marketplaces)
        self.service = IngestionService(
            self.settings,
            repository=self.repo,
            store=self.store,
            cipher=self.cipher,
            refs=self.refs,
            gateway=StandInGateway(self.stand_in),
            budget=RateBudget(self.store),
            poll_interval=poll_interval,
            backfill=timedelta(days=45),
        )

    def now(self) -> datetime:
        return self.clock()

    def poll(self) -> list[ShipOrder]:
        return list(self.service.poll(self.clock()))

    def stored(self) -> dict[str, Document]:
        return {d["id"]: d for d in self.store.scan(ORDERS)}

    def ref(self, order_id: str) -> str:
        return self.refs.ref(order_id)


def orders_in(
    count: int, *, seed: int = 3, statuses: dict[str, float] | None = None, **kw: Any
) -> list[dict[str, Any]]:
    return generate(
        count,
        seed=seed,
        start=START - timedelta(days=30),
        span=timedelta(days=25),
        marketplaces=(DE, FR),
        statuses=statuses,
        **kw,
    )


def one_order(status: str, **kw: Any) -> dict[str, Any]:
    return orders_in(1, statuses={status: 1.0}, afn_share=0.0, **kw)[0]


def notification(
    order: Mapping[str, Any],
    *,
    notification_id: str = "n-1",
    seller: str = SELLER,
    fulfillment: str = "MFN",
    change_time: str | None = "2026-10-31T23:00:00Z",
    marketplace: str | None = None,
) -> bytes:
    body = {
        "NotificationVersion": "1.0",
        "NotificationType": "ORDER_CHANGE",
        "PayloadVersion": "1.0",
        "EventTime": "2026-10-31T23:00:01Z",
        "Payload": {
            "OrderChangeNotification": {
                "NotificationLevel": "OrderLevel",
                "SellerId": seller,
                "AmazonOrderId": order["orderId"],
                "OrderChangeType": "OrderStatusChange",
                "OrderChangeTrigger": {"TimeOfOrderChange": change_time, "ChangeReason": "OrderStatusChange"},
                "Summary": {
                    "MarketplaceId": marketplace or order["salesChannel"]["marketplaceId"],
                    "OrderStatus": "Unshipped",
                    "PurchaseDate": order["createdTime"],
                    "DestinationPostalCode": "12345",
                    "FulfillmentType": fulfillment,
                    "OrderType": "StandardOrder",
                    "OrderItems": [
                        {"OrderItemId": "1", "SellerSKU": "SKU", "SupplySourceId": None, "Quantity": 1}
                    ],
                },
            }
        },
        "NotificationMetadata": {
            "ApplicationId": "app",
            "SubscriptionId": "sub",
            "PublishTime": "2026-10-31T23:00:01Z",
            "NotificationId": notification_id,
        },
    }
    return json.dumps(body).encode()


def amazon_changes(world: World, order_id: str, status: str) -> None:
    """Amazon changes the order's status, with time passing before and after."""
    world.clock.advance(300)
    world.stand_in.set_fulfillment_status(order_id, status)
    world.clock.advance(300)
