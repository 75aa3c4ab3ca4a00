"""Hypothesis fuzzing at every entry point: decoders, function shells, Amazon and carrier answers.

Properties (issue 11, item 3):
- a decoder or response parser lets only its typed `AppError` escape, with a fixed text;
- a queue-triggered function, for ANY body, either completes (handled, re-queued with a delay,
  or poisoned with a reason) or raises for a retry, and on the last dequeue (host.json
  maxDequeueCount) never raises: no crash loop, no message dropped without a reason;
- synthetic personal data ("Zq" + random letters) planted in the inputs never shows in an
  exception's str/repr, in a poison record's reason or metadata, or in any log record.
"""

from __future__ import annotations

import base64
import copy
import json
import logging
import string
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import azure.functions as func
import httpx
import pytest
from azure.functions.queue import QueueMessage
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sp_api.base._core import parse_response

from shared.app import runtime
from shared.errors import AppError, InvalidInput, OrderMappingError, TransientError
from shared.ingestion.amazon_orders import order_from_api
from shared.ingestion.notifications import NotificationRejected, parse_order_change
from shared.ingestion.spapi_gateway import SpApiGateway, _parse_rate, _parse_time
from shared.orders.messages import IssueInvoice, MalformedMessage, ShipOrder
from shared.privacy.service import parse_request
from shared.settings import Settings, load_settings
from shared.shipping.carriers import amazon as buy_shipping
from shared.shipping.carriers import karrio_adapter
from shared.shipping.carriers.base import (
    CarrierError,
    CarrierUnavailable,
    LabelRequest,
    Parcel,
    ShipFrom,
    ShipmentRef,
)
from shared.telemetry.invocations import AppTelemetry
from shared.telemetry.message_failures import MAX_DEQUEUE_COUNT, MessageFailures
from tests.registry import registered

START = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
SELLER = "A3TH9S8BH6GOGM"
REF = "AbCdEfGh12345678"
FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
FEW = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

# ---- synthetic PII and JSON mutation -------------------------------------------------------

# "Zq" + 10 random letters, read as a name: the space keeps a token from passing as an order
# reference or request id, which are pseudonymous and rightly appear in telemetry.
pii_tokens = st.text(string.ascii_letters, min_size=10, max_size=10).map(lambda s: f"Zq{s} Doe")
json_leaves = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
json_values = st.recursive(
    json_leaves | pii_tokens,
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=12) | pii_tokens, c, max_size=4),
    max_leaves=12,
)


def _paths(doc: object, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(doc, dict):
        for key, value in doc.items():
            yield from _paths(value, (*prefix, key))
    elif isinstance(doc, list):
        for index, value in enumerate(doc):
            yield from _paths(value, (*prefix, index))


@st.composite
def mutated(draw: st.DrawFn, base: object, tokens: list[str]) -> object:
    """`base` with 1-3 mutations: a field removed, replaced (junk, PII token, oversized,
    wrong type), or an extra field added; every planted token is appended to `tokens`."""
    doc = copy.deepcopy(base)
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(list(_paths(doc))))
        if not path:
            continue
        parent: Any = doc
        for step in path[:-1]:
            parent = parent[step]
        token = draw(pii_tokens)
        tokens.append(token)
        action = draw(st.sampled_from(["delete", "junk", "token", "oversize", "extra"]))
        if action == "delete":
            del parent[path[-1]]
        elif action == "junk":
            parent[path[-1]] = draw(json_values)
        elif action == "token":
            parent[path[-1]] = token
        elif action == "oversize":
            parent[path[-1]] = token * draw(st.sampled_from([10, 200, 7000]))
        elif isinstance(parent, dict):
            parent[token] = token
        else:
            parent.append({token: token})
    return doc


def _found(tokens: list[str], *texts: str) -> list[str]:
    return [t for t in tokens if any(t in text for text in texts)]


def _log_text(records: list[logging.LogRecord]) -> str:
    parts = []
    for record in records:
        parts.append(record.getMessage())
        parts.append(repr(getattr(record, "custom_dimensions", "")))
        parts.append(repr({k: v for k, v in vars(record).items() if k not in ("msg", "args", "exc_info")}))
        if record.exc_info and record.exc_info[1] is not None:
            parts.append(str(record.exc_info[1]) + repr(record.exc_info[1]))
    return "\n".join(parts)


def _assert_clean(tokens: list[str], exc: BaseException | None, caplog: pytest.LogCaptureFixture) -> None:
    texts = [_log_text(caplog.records)]
    if exc is not None:
        texts += [str(exc), repr(exc)]
    assert _found(tokens, *texts) == []


# ---- valid bases the mutations start from --------------------------------------------------


def _notification(model: Callable[[str], dict[str, Any]]) -> dict[str, Any]:
    example: dict[str, Any] = model("OrderChangeNotification.json")["examples"][0]
    return example


def _privacy_request() -> dict[str, Any]:
    return {"requestId": "req-12345678", "type": "delete", "ref": REF}


def _encodings(doc: object) -> st.SearchStrategy[bytes]:
    text = json.dumps(doc)
    return st.sampled_from([text.encode(), text.encode("utf-16"), text.encode("utf-32")])


arbitrary_bodies = (
    st.binary(max_size=300)
    | st.text(max_size=300).map(str.encode)
    | json_values.map(lambda v: json.dumps(v).encode())
    | st.integers(1, 70_000).map(lambda n: ("[" * n).encode())
    | st.integers(1, 70_000).map(lambda n: ('{"a":' * (n // 5) + "1" + "}" * (n // 5)).encode())
    | st.integers(65_000, 70_000).map(lambda n: b" " * n + b"{}")
)


# ---- 1. queue message decoders -------------------------------------------------------------

DECODERS: list[tuple[Callable[[bytes], object], type[InvalidInput]]] = [
    (ShipOrder.decode, MalformedMessage),
    (IssueInvoice.decode, MalformedMessage),
    (parse_request, InvalidInput),
    (parse_order_change, NotificationRejected),
]


@pytest.mark.parametrize(("decode", "error"), DECODERS, ids=lambda d: getattr(d, "__qualname__", ""))
@FUZZ
@given(body=arbitrary_bodies, data=st.data())
def test_decoders_reject_any_body_with_their_typed_error(
    decode: Callable[[bytes], object], error: type[InvalidInput], body: bytes, data: st.DataObject
) -> None:
    as_text = data.draw(st.booleans())
    try:
        decode(body.decode("utf-8", errors="replace") if as_text else body)
    except error as exc:
        assert exc.code and str(exc).startswith(exc.code)


@FUZZ
@given(data=st.data())
def test_stage_and_privacy_messages_with_mutated_fields(
    data: st.DataObject, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.clear()
    tokens: list[str] = []
    cases: list[tuple[Callable[[bytes], object], type[InvalidInput], object]] = [
        (ShipOrder.decode, MalformedMessage, {"ref": REF}),
        (IssueInvoice.decode, MalformedMessage, {"ref": REF, "kind": "credit_note"}),
        (parse_request, InvalidInput, _privacy_request()),
    ]
    decode, error, base = data.draw(st.sampled_from(cases))
    doc = data.draw(mutated(base, tokens))
    raised: BaseException | None = None
    with caplog.at_level(logging.DEBUG):
        try:
            decode(data.draw(_encodings(doc)))
        except error as exc:
            raised = exc
    _assert_clean(tokens, raised, caplog)


def test_privacy_request_errors_do_not_quote_a_ref_or_id() -> None:
    token = "ZqPersonalValue"
    for doc in (
        {"requestId": token + "!", "type": "delete", "ref": REF},
        {"requestId": "req-12345678", "type": token, "ref": REF},
        {"requestId": "req-12345678", "type": "delete", "ref": token + "@x"},
        {"requestId": "req-12345678", "type": "access", "ref": REF, "recipientKey": token},
        {
            "requestId": "req-12345678",
            "type": "access",
            "ref": REF,
            "recipientKey": base64.b64encode(b"\x30\x03"),
        },
    ):
        with pytest.raises(InvalidInput) as info:  # a bad ref raises MalformedMessage
            parse_request(json.dumps(doc, default=bytes.decode))
        assert token not in str(info.value) + repr(info.value)


@FUZZ
@given(data=st.data())
def test_order_change_with_missing_extra_or_oversized_fields(
    data: st.DataObject, amazon_model: Callable[[str], dict[str, Any]], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.clear()
    tokens: list[str] = []
    doc = data.draw(mutated(_notification(amazon_model), tokens))
    raised: BaseException | None = None
    with caplog.at_level(logging.DEBUG):
        try:
            change = parse_order_change(data.draw(_encodings(doc)))
        except NotificationRejected as exc:
            raised = exc
        else:
            # What the pipeline uses next must work: the dedupe key names a Cosmos document.
            assert len(change.dedupe_key) == 40
            change.order_id.encode()
            change.seller_id.encode()
    _assert_clean(tokens, raised, caplog)


# ---- 2. the function shells, end to end with fakes ------------------------------------------


class RecordingSender:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str, int]] = []

    def send(
        self, queue: str, body: str, visibility_timeout_s: int = 0, time_to_live_s: int | None = None
    ) -> None:
        self.sent.append((queue, body, visibility_timeout_s))


class Throttled(TransientError):
    code = "fuzz_throttled"

    def __init__(self, retry_after_s: float) -> None:
        super().__init__("throttled")
        self.retry_after_s = retry_after_s


OUTCOMES: dict[str, Callable[[], Exception] | None] = {
    "ok": None,
    "throttled": lambda: Throttled(2.5),
    "transient": lambda: TransientError("dependency down"),
    "invalid": lambda: InvalidInput("the order cannot be processed"),
    "bug": lambda: RuntimeError("unexpected"),
}


@dataclass
class Services:
    """Fakes of the runtime's services that decode with the real decoders, then act out the
    outcome the test drew for what comes after decoding."""

    outcome: str = "ok"
    calls: list[str] = field(default_factory=list)

    def _after_decode(self, name: str) -> None:
        self.calls.append(name)
        make = OUTCOMES[self.outcome]
        if make is not None:
            raise make()

    def handle_notification(self, body: bytes, dequeue_count: int, now: datetime) -> list[ShipOrder]:
        change = parse_order_change(body)
        _ = change.dedupe_key  # the real service names its marker document with it
        self._after_decode("ingest")
        return [ShipOrder(REF)]

    def poll(self, now: datetime) -> list[ShipOrder]:
        return []

    def past_ship_by(self, now: datetime) -> int:
        return 2

    def ship(self, request: ShipOrder, now: datetime) -> list[IssueInvoice]:
        self._after_decode("ship")
        return [IssueInvoice(request.ref)]

    def issue(self, request: IssueInvoice, now: datetime) -> None:
        self._after_decode("invoice")

    def handle(self, body: bytes, now: datetime) -> None:
        parse_request(body)
        self._after_decode("privacy")


class OutStub:
    def __init__(self) -> None:
        self.value: object = None

    def set(self, value: object) -> None:
        self.value = value

    def get(self) -> object:
        return self.value


def _settings() -> Settings:
    return load_settings(
        {
            "STORAGE": "UseDevelopmentStorage=true",
            "COSMOS_ENDPOINT": "https://127.0.0.1:1",
            "KEY_VAULT_URL": "https://127.0.0.1:1",
            "SELLERS": json.dumps(
                [{"sellerId": SELLER, "marketplaceIds": ["ATVPDKIKX0DER"], "refreshTokenSecret": "rt"}]
            ),
        }
    )


@pytest.fixture(scope="module")
def shells() -> dict[str, Callable[..., None]]:
    return {fn.get_function_name(): fn.get_user_function() for fn in registered()}


@pytest.fixture
def installed() -> Iterator[tuple[Services, RecordingSender]]:
    services, sender = Services(), RecordingSender()
    runtime.install(
        runtime.Runtime(
            settings=_settings(),
            clock=lambda: START,
            telemetry=AppTelemetry(),
            failures=MessageFailures(sender),
            ingestion=services,
            shipping=services,
            invoicing=services,
            retention=services,  # type: ignore[arg-type]  # timers are not fuzzed here
            privacy=services,
        )
    )
    yield services, sender
    runtime.install(None)


QUEUE_FUNCTIONS = {
    "ingest_notification": ("order-notifications", True),
    "ship_order": ("shipments", True),
    "issue_invoice": ("invoices", False),
    "handle_privacy_request": ("privacy-requests", False),
}


@st.composite
def shell_bodies(draw: st.DrawFn, name: str, notification: dict[str, Any], tokens: list[str]) -> bytes:
    valid = {
        "ingest_notification": notification,
        "ship_order": {"ref": REF},
        "issue_invoice": {"ref": REF, "kind": "invoice"},
        "handle_privacy_request": _privacy_request(),
    }[name]
    kind = draw(st.sampled_from(["valid", "mutated", "arbitrary"]))
    if kind == "arbitrary":
        return draw(arbitrary_bodies)
    doc = valid if kind == "valid" else draw(mutated(valid, tokens))
    return draw(_encodings(doc))


def _invoke(shell: Callable[..., None], name: str, msg: func.QueueMessage) -> None:
    if QUEUE_FUNCTIONS[name][1]:
        shell(msg, OutStub())
    else:
        shell(msg)


@pytest.mark.parametrize("name", sorted(QUEUE_FUNCTIONS))
@FEW
@given(data=st.data())
def test_any_body_completes_or_retries_and_never_crash_loops(
    *,
    name: str,
    data: st.DataObject,
    shells: dict[str, Callable[..., None]],
    installed: tuple[Services, RecordingSender],
    amazon_model: Callable[[str], dict[str, Any]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    services, sender = installed
    sender.sent.clear()
    caplog.clear()
    tokens: list[str] = []
    queue = QUEUE_FUNCTIONS[name][0]
    body = data.draw(shell_bodies(name, _notification(amazon_model), tokens))
    services.outcome = data.draw(st.sampled_from(sorted(OUTCOMES)))
    dequeue = data.draw(st.sampled_from([1, 2, MAX_DEQUEUE_COUNT - 1, MAX_DEQUEUE_COUNT]))
    msg = QueueMessage(id="fuzz-msg", body=body, dequeue_count=dequeue)
    raised: BaseException | None = None
    with caplog.at_level(logging.DEBUG):
        try:
            _invoke(shells[name], name, msg)
        except Exception as exc:
            raised = exc
    if raised is not None:
        assert dequeue < MAX_DEQUEUE_COUNT, f"raised on the last dequeue: {type(raised).__name__}"
        assert not isinstance(raised, InvalidInput), "bad input must be poisoned, not retried"
    poisoned = [json.loads(b) for q, b, _ in sender.sent if q == f"{queue}-poison"]
    for record in poisoned:
        assert isinstance(record["reason"], str) and record["reason"]
        assert record["queue"] == queue and record["dequeueCount"] == dequeue
        metadata = {k: v for k, v in record.items() if k != "body"}
        # The body is kept as it came (queue bodies hold refs and enums only, by design).
        assert _found(tokens, json.dumps(metadata)) == []
    requeued = [s for s in sender.sent if s[0] == queue]
    for _, requeued_body, delay in requeued:
        # The same text, as the handlers' parser decodes it (a UTF-16 body is re-sent as text).
        assert delay > 0 and requeued_body == body.decode(json.detect_encoding(body))
    handled = raised is None and not poisoned and not requeued
    assert handled <= (services.outcome == "ok" or not services.calls)
    assert raised is not None or poisoned or requeued or services.calls
    _assert_clean(tokens, raised, caplog)


# ---- 3. Amazon order JSON mapping (beyond tests/unit/test_amazon_orders.py) ----------------


def _rich_order(token: Callable[[], str]) -> dict[str, Any]:
    """Every personal field the mapper keeps carries a planted token."""
    return {
        "orderId": "028-1111111-2222222",
        "createdTime": "2026-11-01T10:00:00Z",
        "lastUpdatedTime": "2026-11-01T11:00:00Z",
        "salesChannel": {"channelName": "AMAZON", "marketplaceId": "A1PA6795UKMFR9"},
        "fulfillment": {
            "fulfillmentStatus": "UNSHIPPED",
            "fulfilledBy": "MERCHANT",
            "fulfillmentServiceLevel": "Standard",
            "shipByWindow": {"latestDateTime": "2026-11-03T10:00:00Z"},
        },
        "buyer": {"buyerName": token(), "buyerEmail": token() + "@example.com", "buyerCompanyName": token()},
        "recipient": {
            "deliveryAddress": {
                "name": token(),
                "addressLine1": token(),
                "addressLine2": token(),
                "city": token(),
                "postalCode": token(),
                "countryCode": "DE",
                "phone": token(),
                "stateOrRegion": token(),
            }
        },
        "orderItems": [
            {
                "orderItemId": "1",
                "quantityOrdered": 2,
                "product": {
                    "asin": "B0",
                    "sellerSku": "S",
                    "price": {"unitPrice": {"amount": "9.99", "currencyCode": "EUR"}},
                },
                "proceeds": {
                    "breakdowns": [{"type": "TAX", "subtotal": {"amount": "1.90", "currencyCode": "EUR"}}]
                },
            }
        ],
        "tax": {
            "taxRegistrations": [
                {"entityType": "BUYER", "taxRegistrationType": "VAT", "taxRegistrationNumber": token()}
            ]
        },
        "packages": [{"packageReferenceId": "1", "packageStatus": {"status": "IN_TRANSIT"}}],
    }


@FUZZ
@given(data=st.data())
def test_order_mapping_with_mutated_fields_keeps_pii_out_of_errors(
    data: st.DataObject, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.clear()
    tokens: list[str] = []

    def token() -> str:
        value = data.draw(pii_tokens)
        tokens.append(value)
        return value

    raw = data.draw(mutated(_rich_order(token), tokens))
    raised: BaseException | None = None
    with caplog.at_level(logging.DEBUG):
        try:
            order = order_from_api(raw, SELLER)
        except OrderMappingError as exc:
            raised = exc
        else:
            # Buyer values stay Pii: the mapped order's repr shows none of them.
            buyer_tokens = [t for t in tokens if t not in json.dumps(raw.get("orderItems", ""))]
            assert _found(buyer_tokens, repr(order.buyer), repr(order.ship_to)) == []
    _assert_clean(tokens, raised, caplog)


# ---- 4. SP-API responses through the library's own parsing ---------------------------------


class LibraryParsedClient:
    """An Orders client whose answer is an httpx.Response parsed by python-amazon-sp-api's
    own `parse_response`, as the real client does after the HTTP call."""

    def __init__(self, response: httpx.Response) -> None:
        self._response = response

    def _answer(self) -> Any:
        return parse_response(self._response, method="GET")

    def search_orders(self, **_params: Any) -> Any:
        return self._answer()

    def get_order(self, _order_id: str, **_params: Any) -> Any:
        return self._answer()

    def close(self) -> None:
        return None


def _gateway(client: LibraryParsedClient) -> SpApiGateway:
    gateway = SpApiGateway(
        _settings(), lambda _seller: {"refresh_token": "r", "lwa_app_id": "a", "lwa_client_secret": "s"}
    )
    gateway._build = lambda _seller, _version: client  # type: ignore[method-assign]
    return gateway


def _order_payloads(tokens: list[str]) -> st.SearchStrategy[object]:
    good_search = {
        "orders": [{"orderId": "028-1111111-2222222"}],
        "lastUpdatedBefore": "2026-11-01T10:00:00Z",
    }
    good_get = {"order": {"orderId": "028-1111111-2222222"}}
    error_body = {"errors": [{"code": "QuotaExceeded", "message": "You exceeded your quota", "details": ""}]}
    return st.one_of(
        json_values,
        st.sampled_from([good_search, good_get, error_body]).flatmap(lambda b: mutated(b, tokens)),
        st.builds(lambda p: {"payload": p}, json_values),
        st.builds(lambda e: {"errors": e}, json_values),
        st.builds(lambda t: {**good_search, "nextToken": t}, json_values),
    )


headers = st.dictionaries(
    st.sampled_from(["x-amzn-RateLimit-Limit", "x-amzn-RequestId", "Retry-After", "content-type"]),
    st.sampled_from(["0.0167", "5", "0", "-1", "nan", "inf", "1e309", "", "abc"])
    | st.text(string.printable, max_size=12),
)


@FUZZ
@given(data=st.data())
def test_spapi_answers_map_to_typed_errors_only(
    data: st.DataObject, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.clear()
    tokens: list[str] = []
    status = data.draw(st.sampled_from([200, 200, 400, 403, 404, 409, 413, 429, 500, 502, 503, 504]))
    if data.draw(st.booleans()):
        content = json.dumps(data.draw(_order_payloads(tokens))).encode()
    else:
        content = data.draw(arbitrary_bodies)
    response = httpx.Response(status, content=content, headers=data.draw(headers))
    gateway = _gateway(LibraryParsedClient(response))
    operation = data.draw(st.sampled_from(["search", "get"]))
    raised: BaseException | None = None
    with caplog.at_level(logging.DEBUG):
        try:
            if operation == "search":
                page = gateway.search_orders(SELLER, ["ATVPDKIKX0DER"], last_updated_after=START)
                assert isinstance(page.orders, list)
                assert page.next_token is None or (isinstance(page.next_token, str) and page.next_token)
                assert page.rate is None or page.rate > 0
            else:
                fetched = gateway.get_order(SELLER, "028-1111111-2222222")
                assert isinstance(fetched.order, dict)
        except AppError as exc:
            raised = exc
    _assert_clean(tokens, raised, caplog)


@given(headers | json_values | st.builds(httpx.Headers, headers))
def test_rate_header_parsing_never_raises(value: object) -> None:
    rate = _parse_rate(value)
    assert rate is None or rate > 0


@given(json_values | st.text(string.digits + "-:TZ+.", max_size=40))
def test_time_parsing_never_raises(value: object) -> None:
    parsed = _parse_time(value)
    assert parsed is None or parsed.tzinfo is not None


# ---- 5. carrier responses ------------------------------------------------------------------


def _label_request() -> LabelRequest:
    from datetime import date

    return LabelRequest(
        idempotency_key="intent-1234",
        ship_from=ShipFrom(name="Shop", line1="Dock 1", city="Town", postal_code="12345", country_code="US"),
        recipient=None,
        parcel=Parcel(
            weight_kg=Decimal("1.0"), length_cm=Decimal(20), width_cm=Decimal(15), height_cm=Decimal(10)
        ),
        service=buy_shipping.ANY_SERVICE,
        ship_date=date(2026, 11, 2),
        items=(),
        amazon_order_id="028-1111111-2222222",
    )


class ScriptedShippingApi:
    def __init__(self, rates: object, purchase: object, tracking: object) -> None:
        self._rates, self._purchase, self._tracking = rates, purchase, tracking

    def get_rates(self, body: Any) -> Any:
        return self._rates

    def purchase_shipment(self, body: Any, idempotency_key: str) -> Any:
        return self._purchase

    def cancel_shipment(self, shipment_id: str) -> Any:
        return {}

    def get_tracking(self, tracking_id: str, carrier_id: str) -> Any:
        return self._tracking


GOOD_RATES = {
    "requestToken": "token-1",
    "rates": [
        {
            "rateId": "r1",
            "serviceId": "std",
            "carrierId": "AMZN_US",
            "carrierName": "Amazon",
            "totalCharge": {"value": 5.2},
        },
        {"rateId": "r2", "serviceId": "exp", "carrierId": "UPS", "totalCharge": {"value": 9.9}},
    ],
}
GOOD_PURCHASE = {
    "shipmentId": "shp-1",
    "packageDocumentDetails": [
        {
            "trackingId": "TBA1",
            "packageDocuments": [{"type": "LABEL", "format": "PDF", "contents": "JVBERi0="}],
        }
    ],
}
GOOD_TRACKING = {
    "summary": {"status": "Delivered"},
    "eventHistory": [{"eventCode": "Delivered", "eventTime": "2026-11-03T10:00:00Z"}],
}


@FUZZ
@given(data=st.data())
def test_buy_shipping_answers_map_to_typed_errors_only(
    data: st.DataObject, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.clear()
    tokens: list[str] = []
    answers = [
        data.draw(st.one_of(mutated(good, tokens), json_values))
        for good in (GOOD_RATES, GOOD_PURCHASE, GOOD_TRACKING)
    ]
    carrier = buy_shipping.AmazonBuyShipping(ScriptedShippingApi(*answers))  # type: ignore[arg-type]
    raised: BaseException | None = None
    with caplog.at_level(logging.DEBUG):
        try:
            if data.draw(st.booleans()):
                label = carrier.create_label(_label_request())
                assert label.tracking_number and label.shipment_id
            else:
                info = carrier.track(ShipmentRef("shp-1", "TBA1", carrier_id="AMZN_US"))
                assert info.status in (
                    "delivered",
                    "returned",
                    "in_transit",
                    "pending",
                    "exception",
                    "unknown",
                )
        except (CarrierError, CarrierUnavailable) as exc:
            raised = exc
    _assert_clean(tokens, raised, caplog)


@dataclass
class KarrioMessage:
    """The attributes of karrio's `Message` that `_error_codes` reads."""

    code: object
    level: object = "error"
    details: object = None
    message: str = ""


karrio_messages = st.lists(
    st.builds(
        KarrioMessage,
        code=st.none()
        | st.text(max_size=30)
        | st.integers()
        | st.dictionaries(st.just("code"), st.text(max_size=12)),
        level=st.sampled_from([None, "error", "warning", "info"]),
        details=st.none() | st.dictionaries(st.sampled_from(["source", "x"]), json_values),
        message=pii_tokens,
    ),
    max_size=5,
)


@FUZZ
@given(carrier=st.sampled_from(sorted(karrio_adapter.CARRIER_NAMES)), messages=karrio_messages)
def test_karrio_messages_classify_to_typed_errors_without_their_text(
    carrier: str, messages: list[KarrioMessage]
) -> None:
    codes = karrio_adapter._error_codes(messages)
    error = karrio_adapter._classify(carrier, codes)
    assert isinstance(error, CarrierError | CarrierUnavailable)
    assert _found([m.message for m in messages], str(error), repr(error), " ".join(codes)) == []
