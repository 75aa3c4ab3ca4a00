"""No PII leaves through any log path, over the wire, for both exporters; and every registered
function's telemetry reaches Application Insights (the local ingestion stand-in) with the
documented dimensions.

Synthetic buyer data is built from random tokens, so finding one of those tokens in an envelope
or a captured log record can only mean the value leaked (whole or in part)."""

from __future__ import annotations

import json
import logging
import random
import re
import string
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import quote

import pytest
import requests
from azure.functions.queue import QueueMessage

from local.appinsights_server import IngestionServer
from local.appinsights_server import start as start_ingestion
from shared.app import runtime
from shared.app.runtime import Runtime
from shared.crypto.pii import Pii
from shared.errors import AppError
from shared.orders.messages import IssueInvoice, ShipOrder
from shared.retention.service import PurgeReport, TrackReport
from shared.settings import load_settings
from shared.telemetry.invocations import (
    EXPORTER_CALLS_HOME_OFF,
    INVOCATION_DIMENSIONS,
    TELEMETRY_LOGGER,
    AppTelemetry,
    TelemetryExport,
    configure_telemetry,
)
from shared.telemetry.message_failures import MessageFailures
from tests.log_capture import Capture
from tests.registry import registered

pytestmark = pytest.mark.integration

EXPORTERS = ("opentelemetry", "opencensus")
REF = "Qk3v_9aZ-01bcdEFghIJkl"
# Always present on an invocation record (`order_ref_rejected` only when code erred).
ALWAYS = INVOCATION_DIMENSIONS - {"order_ref_rejected"}
CYRILLIC = "абвгдежзиклмнопрстуфхцчшщэюя"
GREEK = "αβγδεζηθικλμνξοπρστυφχψω"
CJK = "的一是不了人我在有他这为之大来以个中上们"


@dataclass
class Buyer:
    values: list[str]
    tokens: set[str]


def synthetic_buyer(rng: random.Random) -> Buyer:
    tokens: set[str] = set()

    def word(alphabet: str = string.ascii_lowercase, n: int = 7) -> str:
        token = "".join(rng.choice(alphabet) for _ in range(n))
        tokens.add(token)
        return token

    def digits(n: int) -> str:
        token = "".join(rng.choice(string.digits) for _ in range(n))
        tokens.add(token)
        return token

    given = word().capitalize()
    family = "O'" + word().capitalize()
    cyrillic = word(CYRILLIC).capitalize()
    greek = word(GREEK)
    cjk = word(CJK, 3)
    street = f"{digits(4)} {word().capitalize()} Street, Apt {rng.randint(1, 99)}"
    city = word().capitalize()
    postal = digits(5)
    values = [
        f"{given} {family}",
        f"{cyrillic} {word(CYRILLIC).capitalize()}",
        f"{greek} {word(GREEK)}",
        cjk,
        f"{word()}.{word()}@{word()}.example",
        f"+44 {digits(4)} {digits(6)}",
        f"({digits(3)}) {digits(3)}-{digits(4)}",
        f"+49{digits(10)}",
        f"0{digits(3)}.{digits(3)}.{digits(4)}",
        street,
        f"{street}, {city}, ZZ {postal}",
        f"{digits(3)} rue {word()} {word()}",
    ]
    return Buyer(values=values, tokens=tokens)


def leaks(text: str, buyer: Buyer) -> list[str]:
    """The buyer's values, or distinctive tokens of them, found in `text`.

    Distinctive: every random word (any script), and digit runs of six or more (shorter ones
    occur in line numbers and timestamps by chance); a phone also counts by its digits alone."""
    lowered = text.lower()
    found = [v for v in buyer.values if v.lower() in lowered]
    for value in buyer.values:
        digits = re.sub(r"\D", "", value)
        if len(digits) >= 9 and re.search(rf"(?<!\d){digits}(?!\d)", text):
            found.append(value)
    for token in buyer.tokens:
        if token.isdigit():
            if len(token) >= 6 and re.search(rf"(?<!\d){token}(?!\d)", text):
                found.append(token)
            continue
        forms = {token.lower(), json.dumps(token)[1:-1].lower(), quote(token).lower()}
        found += [form for form in forms if form in lowered]
    return found


@pytest.fixture(autouse=True)
def _no_calls_home(monkeypatch: pytest.MonkeyPatch) -> None:
    # The exporters' own usage statistics and remote configuration go to Microsoft endpoints;
    # tests stay on loopback.
    for name, value in EXPORTER_CALLS_HOME_OFF.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def ingestion(tmp_path: Path) -> Iterator[IngestionServer]:
    server = start_ingestion(tmp_path / "telemetry.jsonl")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def capture() -> Iterator[Capture]:
    handler = Capture()
    root = logging.getLogger()
    old_level = root.level
    root.setLevel(logging.DEBUG)
    root.addHandler(handler)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)


@pytest.fixture(params=EXPORTERS)
def exporter(request: pytest.FixtureRequest, ingestion: IngestionServer) -> Iterator[TelemetryExport]:
    settings = SimpleNamespace(
        telemetry_exporter=request.param, appinsights_connection_string=ingestion.connection_string
    )
    export = configure_telemetry(settings, offline_storage=False, export_interval_s=0.2)  # type: ignore[arg-type]
    try:
        yield export
    finally:
        export.shutdown()


class CarrierRejected(AppError):
    code = "carrier_rejected"


def pipeline_step(buyer: Buyer, ingestion: IngestionServer) -> None:
    """Behaves like a careless step: libraries log the buyer's data every way they do."""
    pii = [Pii(v) for v in buyer.values]
    name, email, address = pii[0].reveal(), pii[4].reveal(), pii[10].reveal()
    logging.getLogger("sp_api.base.client").debug("response %s", json.dumps({"buyer": name}))
    logging.getLogger("sp_api.base.client").warning("order has buyer %s <%s>", name, email)
    logging.getLogger("karrio.providers.ups").error(
        "rate request failed: %s", json.dumps({"to": [p.reveal() for p in pii]})
    )
    logging.getLogger("azure.core.pipeline.policies").warning(
        "Request URL: 'https://x.example/?q=%s'", quote(address)
    )
    logging.getLogger("urllib3.connectionpool").warning("Retrying %s", f"/label?phone={pii[5].reveal()}")
    logging.getLogger("azure_functions_worker").info("processing for %s", pii[1].reveal())
    logging.getLogger("shared.shipping.service").info(
        "ship", extra={"custom_dimensions": {"to": address, "who": pii[3]}, "payload": {"p": pii[6].reveal()}}
    )
    logging.info("root logger sees %s / %s", pii[2].reveal(), pii[7].reveal(), stack_info=True)
    # A real library call: urllib3/requests log the URL (with PII in its query) at DEBUG.
    requests.get(ingestion.url + "missing", params={"name": name, "addr": address}, timeout=5)
    try:
        try:
            raise KeyError(pii[8].reveal())
        except KeyError as inner:
            logging.getLogger("karrio").exception("lookup of %s failed", pii[9].reveal())
            raise ValueError(f"address rejected: {address} ({email})") from inner
    except ValueError as exc:
        raise CarrierRejected(f"for {name} at {pii[11].reveal()}") from exc


def test_no_pii_leaves_through_any_log_path(
    exporter: TelemetryExport, ingestion: IngestionServer, capture: Capture
) -> None:
    buyer = synthetic_buyer(random.Random())
    telemetry = AppTelemetry()
    with pytest.raises(AppError) as raised, telemetry.invocation("ship_order") as record:
        record.order(REF)
        pipeline_step(buyer, ingestion)
    assert raised.value.code == "carrier_rejected"
    assert not leaks("".join(traceback.format_exception(raised.value)), buyer)
    exporter.flush()

    envelopes = ingestion.envelopes()
    raw = ingestion.out.read_text(encoding="utf-8")
    assert not leaks(raw, buyer), "PII reached the ingestion endpoint"
    assert not leaks(capture.text(), buyer), "PII reached a log handler"
    # The test is not vacuous: the failure and the library records did arrive.
    failures = [e for e in envelopes if _properties(e).get("event") == "invocation"]
    assert len(failures) == 1
    props = _properties(failures[0])
    assert failures[0]["name"] == "Microsoft.ApplicationInsights.Exception"
    assert props["error_code"] == "carrier_rejected"
    assert str(props["order_ref"]) == REF
    assert len(envelopes) >= 6
    assert len(capture.records) >= 8


def _properties(envelope: dict[str, Any]) -> dict[str, Any]:
    props: dict[str, Any] = envelope.get("data", {}).get("baseData", {}).get("properties", {})
    return props


# ---- every registered function ---------------------------------------------------------


class Out:
    def __init__(self) -> None:
        self.value: Any = None

    def set(self, value: Any) -> None:
        self.value = value

    def get(self) -> Any:
        return self.value


class Timer:
    past_due = False


class Services:
    """Simple fakes for every service the functions call."""

    def poll(self, now: datetime) -> list[ShipOrder]:
        return [ShipOrder(ref=REF)]

    def past_ship_by(self, now: datetime) -> int:
        return 2

    def handle_notification(self, body: bytes, dequeue_count: int, now: datetime) -> list[ShipOrder]:
        return [ShipOrder(ref=REF)]

    def ship(self, request: ShipOrder, now: datetime) -> list[IssueInvoice]:
        return [IssueInvoice(ref=request.ref)]

    def issue(self, request: IssueInvoice, now: datetime) -> None:
        return None

    def track(self, now: datetime) -> TrackReport:
        return TrackReport(rescheduled=2)

    def purge(self, now: datetime) -> PurgeReport:
        return PurgeReport(shredded_epochs=["2026-w09"])

    def handle(self, body: bytes, now: datetime) -> None:
        return None


class Sender:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str, int]] = []

    def send(
        self, queue: str, body: str, visibility_timeout_s: int = 0, time_to_live_s: int | None = None
    ) -> None:
        self.sent.append((queue, body, visibility_timeout_s))


def _settings() -> Any:
    return load_settings(
        {
            "STORAGE": "UseDevelopmentStorage=true",
            "COSMOS_ENDPOINT": "https://127.0.0.1:1/",
            "KEY_VAULT_URL": "https://127.0.0.1:1/",
            "SELLERS": '[{"sellerId": "A1SELLER", "marketplaceIds": ["A1PA6795UKMFR9"], '
            '"refreshTokenSecret": "refresh-token-A1SELLER"}]',
        }
    )


def _arguments(fn: Any) -> dict[str, Any]:
    args: dict[str, Any] = {}
    body = json.dumps({"ref": REF}).encode()
    for binding in fn.get_bindings():
        if binding.type == "queueTrigger":
            args[binding.name] = QueueMessage(id=f"id-{fn.get_function_name()}", body=body, dequeue_count=1)
        elif binding.type == "timerTrigger":
            args[binding.name] = Timer()
        elif binding.type == "queue":
            args[binding.name] = Out()
    return args


@pytest.fixture
def fake_runtime() -> Iterator[None]:
    services = Services()
    runtime.install(
        Runtime(
            settings=_settings(),
            clock=lambda: datetime(2026, 3, 1, tzinfo=UTC),
            telemetry=AppTelemetry(),
            ingestion=services,
            shipping=services,
            invoicing=services,
            retention=services,
            privacy=services,
            failures=MessageFailures(Sender()),
        )
    )
    try:
        yield
    finally:
        runtime.install(None)


@pytest.mark.usefixtures("fake_runtime")
def test_every_registered_function_reaches_the_capture(
    exporter: TelemetryExport, ingestion: IngestionServer
) -> None:
    functions = registered()
    assert functions
    for fn in functions:
        fn.get_user_function()(**_arguments(fn))
    exporter.flush()

    received = {
        str(_properties(e)["operation"]): _properties(e)
        for e in ingestion.envelopes()
        if _properties(e).get("event") == "invocation"
    }
    assert set(received) == {fn.get_function_name() for fn in functions}
    for name, props in received.items():
        assert set(props) >= ALWAYS, name
        assert props["outcome"] == "success", name
        assert props["invocation_id"], name
    assert received["ship_order"]["order_ref"] == REF
    assert received["issue_invoice"]["order_ref"] == REF
    assert str(received["ship_order"]["dequeue_count"]) == "1"
    assert str(received["purge_expired"]["count_shredded_epochs"]) == "1"
    assert str(received["track_deliveries"]["count_rescheduled"]) == "2"
    assert str(received["poll_orders"]["count_ready_to_ship"]) == "1"


def test_heartbeat_reaches_the_capture(exporter: TelemetryExport, ingestion: IngestionServer) -> None:
    AppTelemetry().heartbeat(datetime(2026, 3, 1, tzinfo=UTC))
    exporter.flush()
    beats = [e for e in ingestion.envelopes() if _properties(e).get("event") == "heartbeat"]
    assert len(beats) == 1
    assert _properties(beats[0])["heartbeat_utc"] == "2026-03-01T00:00:00+00:00"
    assert logging.getLogger(TELEMETRY_LOGGER).getEffectiveLevel() == logging.INFO
