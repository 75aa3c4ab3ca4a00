"""The whole app, locally: every stand-in started, the runtime built from real settings, and a
driver that plays the world around it on a simulated clock (issue 11, `make run`).

`Pipeline(orders, out)` is a context manager. Entering it starts Azurite and the Cosmos
emulator (subprocesses, stopped by pid), the Key Vault, SP-API (with the Shipping v2 and Feeds
handlers), carrier and Application Insights stand-ins (threads of this process), seeds the
vault, creates containers and queues, builds the app's `Runtime` with `build_runtime` on a
`SimClock` the SP-API stand-in shares, and installs it. `run()` then advances the clock timer by
timer, drives the registered functions through `LocalHost`, and plays one scenario per order:

- amazon_delivered: some days after the shipment Amazon reports the package DELIVERED;
- carrier_delivered: some days after the shipment the carrier's tracking says delivered;
- carrier_returned: some days after the shipment the carrier sends the parcel back to the
  seller (return to shipper): the order is returned, never delivered;
- never_confirmed: nobody reports a delivery, so the hard bound applies;
- cancelled: the buyer cancels before the first poll sees the order.

Everything lands in OUT (see `local/run.py`). Stage counts come from what the app left behind
(audit records, documents, blobs, Amazon's record of confirmations), not from the scenarios.

One `ModelJudge` (`self.judge`, local/amazon_models.py) is shared by the SP-API, Shipping v2 and
Feeds stand-ins: Amazon's models judge every request the app sends them and every answer they
give, and the run keeps one list of violations and one count of exchanges judged.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from azure.core.exceptions import ResourceExistsError
from azure.cosmos import CosmosClient
from azure.storage.blob import BlobServiceClient
from azure.storage.queue import QueueServiceClient

from local import appinsights_server, aws_emulator, carrier_servers, emulators, keyvault_server
from local.amazon_models import ModelJudge
from local.function_host import LocalHost
from local.spapi_feeds import FeedsStandIn
from local.spapi_notifications import NotificationsStandIn
from local.spapi_server import SimClock, SpApiStandIn
from local.spapi_shipping import ShippingV2StandIn

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = ("amazon_delivered", "carrier_delivered", "never_confirmed", "cancelled", "carrier_returned")
BLOB_CONTAINERS = ("labels", "invoices", "exports", "invoice-archive")
# The immutable audit trail (Bicep gives it a time-based immutability policy in Azure): created,
# not listed by `blobs()`, since its records outlive the orders they describe.
AUDIT_CONTAINER = "audit"
DATABASE = "fulfilment"
SELLER_ID = "A1LOCALSELLER"
MARKETPLACE_COUNTRIES = {
    "A1PA6795UKMFR9": "DE",
    "A13V1IB3VIYZZH": "FR",
    "APJ6JRA9NG5V4": "IT",
    "A1RKKUPIHCS9HS": "ES",
    "A1F83G8C2ARO7P": "GB",
    "ATVPDKIKX0DER": "US",
}
# Days from Amazon's record of the shipment to the delivery report the world gives.
AMAZON_DELIVERY_DAYS = 2
CARRIER_DELIVERY_DAYS = 3
DRAIN_ROUND = timedelta(seconds=5)


def scenario(index: int) -> str:
    """The world's behaviour for the order at `index` in the input: every path, evenly."""
    return SCENARIOS[index % len(SCENARIOS)]


def shipping_rules(orders: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """SHIPPING_RULES covering every SKU and every ship-to country in the orders; the carrier is
    picked by service level so each karrio carrier (USPS, FedEx, UPS) ships some orders."""
    skus = {
        str(item["product"]["sellerSku"]): {"weightKg": 0.5, "package": "small"}
        for order in orders
        for item in order.get("orderItems") or []
    }
    ship_to = {
        str(country)
        for order in orders
        if (country := ((order.get("recipient") or {}).get("deliveryAddress") or {}).get("countryCode"))
    }
    countries = sorted(set(MARKETPLACE_COUNTRIES.values()) | ship_to)
    return {
        "shipFrom": {
            "name": "Dispatch",
            "company": "Muster Handel GmbH",
            "line1": "Hauptstrasse 1",
            "city": "Berlin",
            "stateOrRegion": "BE",
            "postalCode": "10115",
            "countryCode": "DE",
            "phone": "3012345678",
        },
        "packages": {"small": {"lengthCm": 20, "widthCm": 15, "heightCm": 10, "tareKg": 0.1}},
        "skus": skus,
        "rules": [
            {
                "name": "fast",
                "countries": countries,
                "serviceLevels": ["NEXT_DAY", "SECOND_DAY"],
                "carrier": "fedex",
                "service": "fedex_international_priority",
            },
            {
                "name": "expedited",
                "countries": countries,
                "serviceLevels": ["EXPEDITED"],
                "carrier": "ups",
                "service": "ups_worldwide_expedited",
            },
            {
                "name": "standard",
                "countries": countries,
                # USPS refuses these international parcels (carrier_refused_usps): US only.
                "carrier": "ups",
                "service": "ups_standard",
            },
        ],
    }


SELLER_PROFILE = {
    "legalName": "Muster Handel GmbH",
    "address": {"lines": ["Hauptstrasse 1"], "postalCode": "10115", "city": "Berlin", "countryCode": "DE"},
    "vatIds": {"DE": "DE123456789", "GB": "GB123456789", "FR": "FR00123456789", "IT": "IT12345678901"},
    "series": {"invoice": "INV", "creditNote": "CN"},
}

# Placeholder credentials of the local stand-ins, which accept any plausible value.
CARRIER_SECRETS = {
    "carrier-usps": {
        "client_id": "local-usps",
        "client_secret": "local",
        "account_number": "1000",
        "CRID": "1",
        "MID": "2",
        "manifest_MID": "3",
    },
    # FedEx tracking authenticates with its own key pair: without it every track is a source error.
    "carrier-fedex": {
        "api_key": "local-fedex",
        "secret_key": "local",
        "account_number": "2000",
        "track_api_key": "local-fedex-track",
        "track_secret_key": "local",
    },
    "carrier-ups": {"client_id": "local-ups", "client_secret": "local", "account_number": "3000"},
}


@dataclass
class Schedules:
    """NCRONTAB schedules for the timers. Hourly by default: over ~30 simulated days the
    5-minute poll of local.settings.sample.json would be 8,640 polls; see docs."""

    poll: str = "0 0 * * * *"
    track: str = "0 0 * * * *"
    purge: str = "0 0 * * * *"
    #: On the poll's hour, so the driver takes no extra steps.
    drain: str = "0 0 * * * *"


@dataclass
class WorldState:
    """What the driver did to the world, per Amazon order id."""

    scenario: dict[str, str] = field(default_factory=dict)
    reported: set[str] = field(default_factory=set)


@dataclass
class Observed:
    """What the app left behind, gathered while it ran (blobs vanish at purge)."""

    labels: Counter[str] = field(default_factory=Counter)  # ref -> label blobs seen
    invoices: Counter[str] = field(default_factory=Counter)  # ref -> invoice blobs seen
    invoice_files: set[str] = field(default_factory=set)
    snapshot_taken: bool = False


def _parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def start_time(orders: Sequence[Mapping[str, Any]]) -> datetime:
    """An hour after the last order changed: the first poll's backfill sees every order."""
    latest = max(_parse(str(o["lastUpdatedTime"])) for o in orders)
    return (latest + timedelta(hours=1)).replace(minute=0, second=0, microsecond=0)


class Pipeline:
    def __init__(
        self,
        orders: Sequence[Mapping[str, Any]],
        out: Path,
        *,
        schedules: Schedules | None = None,
        log_level: int = logging.DEBUG,
        wrap_store: Callable[[Any], Any] | None = None,
        carriers_replay_safe: bool = False,
        key_vault_options: Mapping[str, Any] | None = None,
        blobs_on_disk: bool = False,
        notifications: bool = False,
        expire_poison: bool = False,
    ) -> None:
        """`blobs_on_disk`: Azurite keeps its data in the run's temporary folder, not in memory
        (for runs of thousands of orders). `wrap_store`, `carriers_replay_safe` and
        `key_vault_options` are for fault injection
        (tests/integration/test_fault_injection.py): `wrap_store` receives the counting store
        and returns the store the app uses (the driver keeps observing through the counting
        one); `key_vault_options` are added to the app's Key Vault client options.
        `expire_poison`: poison messages expire on the simulated clock, as in Azure (make run);
        off, every poison message stays for a test's evidence of what was poisoned."""
        self.orders = [dict(o) for o in orders]
        self.out = out
        self.schedules = schedules or Schedules()
        self.log_level = log_level
        self._wrap_store = wrap_store
        self._carriers_replay_safe = carriers_replay_safe
        self._extra_vault_options = dict(key_vault_options or {})
        self._blobs_on_disk = blobs_on_disk
        #: Amazon's ORDER_CHANGE path: the AWS emulator (moto) with the seller's stack from
        #: infra/aws/notifications.yaml, `ops notifications subscribe` against the SP-API
        #: stand-in, which then sends each order's status changes to the SQS queue, and
        #: drain_notifications at :05 (before the hourly poll) moving them to order-notifications.
        self.notifications = notifications
        self._expire_poison = expire_poison
        if notifications and schedules is None:
            self.schedules.drain = "0 5 * * * *"
        self.amazon: NotificationsStandIn | None = None
        self.subscribed: list[dict[str, Any]] = []
        self.clock = SimClock(start_time(self.orders))
        self.world = WorldState({str(o["orderId"]): scenario(i) for i, o in enumerate(self.orders)})
        self.observed = Observed()
        self._stack = contextlib.ExitStack()

    # ---- start / stop -----------------------------------------------------------------------

    def __enter__(self) -> Pipeline:
        try:
            self._start()
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def _start(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / "invoices").mkdir(exist_ok=True)
        work = Path(self._stack.enter_context(tempfile.TemporaryDirectory(prefix="local-run-")))
        self._attach_log()
        blob_dir = work / "azurite" if self._blobs_on_disk else None
        self.emulators = self._stack.enter_context(emulators.running(work / "emulator-logs", blob_dir))
        self.vault = keyvault_server.start(work / "kv")
        self._stack.callback(self.vault.stop)
        self.judge = ModelJudge.default()
        self.shipping_v2 = ShippingV2StandIn(judge=self.judge)
        self.feeds = FeedsStandIn(judge=self.judge)
        self.spapi = SpApiStandIn(clock=self.clock, handlers=[self.shipping_v2, self.feeds], judge=self.judge)
        if self.notifications:
            self.aws = self._stack.enter_context(aws_emulator.running(work / "emulator-logs"))
            self.aws_stack = self.aws.deploy_notifications(SELLER_ID)
            self.amazon = NotificationsStandIn(
                SELLER_ID, clock=self.clock, deliver=self.aws.send, judge=self.judge
            )
            self.spapi.handlers.append(self.amazon)
            self.spapi.order_listeners.append(self.amazon.observe)
        self.spapi.add_orders(self._cancel_before_ingest(self.orders))
        self.spapi.start()
        self._stack.callback(self.spapi.stop)
        self.carriers = carrier_servers.start()
        self._stack.callback(carrier_servers.stop, self.carriers)
        for carrier in self.carriers.all().values():
            carrier.hold_deliveries()
        self.insights = appinsights_server.start(self.out / "telemetry.jsonl")
        self._stack.callback(self.insights.stop)
        self._trust_stand_ins(work)
        self.env = self._settings()
        self._prepare_storage()
        self._build()
        if self.amazon is not None:
            self._subscribe()

    def _attach_log(self) -> None:
        from shared.telemetry.redaction import install_redaction

        handler = logging.FileHandler(self.out / "app.log", encoding="utf-8")
        handler.setLevel(logging.NOTSET)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
        root = logging.getLogger()
        previous = root.level
        root.addHandler(handler)
        root.setLevel(self.log_level)
        install_redaction()

        def detach() -> None:
            root.removeHandler(handler)
            root.setLevel(previous)
            handler.close()

        self._stack.callback(detach)

    def _cancel_before_ingest(self, orders: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for order in orders:
            if self.world.scenario[str(order["orderId"])] == "cancelled":
                order.setdefault("fulfillment", {})["fulfillmentStatus"] = "CANCELLED"
        return orders

    def _trust_stand_ins(self, work: Path) -> None:
        """The requests-based SDKs read REQUESTS_CA_BUNDLE, httpx (python-amazon-sp-api 2.x and
        the invoicing client) SSL_CERT_FILE. The bundle holds only the stand-ins' CAs: the run
        talks to loopback only, and urllib3 re-reads the file on every new TLS connection
        (cosmosdb-server closes each one), which with certifi's ~150 roots cost ~40 ms a call.
        For the same reason the exporter's own calls to Microsoft are off (its usage statistics
        and its remote-configuration thread, docs/operations.md): they would leave the machine."""
        from shared.telemetry.invocations import EXPORTER_CALLS_HOME_OFF

        bundle = work / "ca-bundle.pem"
        bundle.write_text("\n".join([Path(self.spapi.ca_file).read_text(), self.vault.ca_path.read_text()]))
        wanted = {
            **dict.fromkeys(("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE"), str(bundle)),
            **EXPORTER_CALLS_HOME_OFF,
        }
        previous = {name: os.environ.get(name) for name in wanted}
        os.environ.update(wanted)

        def restore() -> None:
            for name, value in previous.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value

        self._stack.callback(restore)

    def marketplaces(self) -> list[str]:
        return sorted({str(o["salesChannel"]["marketplaceId"]) for o in self.orders})

    def _settings(self) -> dict[str, str]:
        env = dict(self.emulators.app_settings())
        sellers = [
            {
                "sellerId": SELLER_ID,
                "marketplaceIds": self.marketplaces(),
                "region": "eu",
                "refreshTokenSecret": f"refresh-token-{SELLER_ID}",
            }
        ]
        env.update(
            {
                "AzureWebJobsStorage": env["STORAGE"],
                "COSMOS_DATABASE": DATABASE,
                "KEY_VAULT_URL": self.vault.url + "/",
                "SELLERS": json.dumps(sellers),
                "LWA_CLIENT_ID_SECRET": "lwa-client-id",
                "LWA_CLIENT_SECRET_SECRET": "lwa-client-secret",
                "LWA_ROTATION": "auto",
                "SPAPI_ENDPOINT": self.spapi.url,
                "LWA_ENDPOINT": self.spapi.url + "/auth/o2/token",
                "SPAPI_VERIFY_TLS": "true",
                "POLL_ORDERS_SCHEDULE": self.schedules.poll,
                "TRACK_DELIVERIES_SCHEDULE": self.schedules.track,
                "PURGE_EXPIRED_SCHEDULE": self.schedules.purge,
                "DRAIN_NOTIFICATIONS_SCHEDULE": self.schedules.drain,
                "RETENTION_DAYS": "7",
                "KEY_EPOCH_DAYS": "7",
                "COSMOS_BACKUP_RETENTION_DAYS": "7",
                "KEY_VAULT_SOFT_DELETE_DAYS": "7",
                "DELIVERY_GRACE_DAYS": "3",
                "TELEMETRY_EXPORTER": "opentelemetry",
                "APPLICATIONINSIGHTS_CONNECTION_STRING": self.insights.connection_string,
                "SHIPPING_RULES": json.dumps(shipping_rules(self.orders)),
                "CARRIER_ENDPOINTS": json.dumps(self.carriers.endpoints()),
                "CARRIERS": json.dumps({n.removeprefix("carrier-"): {"secret": n} for n in CARRIER_SECRETS}),
                "SELLER_PROFILE": json.dumps(SELLER_PROFILE),
                "INVOICE_MARKETPLACES": ",".join(m for m in self.marketplaces() if m != "ATVPDKIKX0DER"),
                "INVOICE_ARCHIVE_YEARS": "{}",
            }
        )
        if self.notifications:
            env.update(self.aws.app_settings({SELLER_ID: self.aws_stack}))
        return env

    def _subscribe(self) -> None:
        """`ops notifications subscribe`, as an operator runs it; then Amazon announces every
        order it holds (the notifications it sent when they were placed)."""
        import io

        from ops import cli
        from shared.app.composition import LocalOverrides

        out = io.StringIO()
        overrides = LocalOverrides(
            credential=self.vault.credential(), key_vault_options=self._vault_options()
        )
        if cli.main(["notifications", "subscribe"], env=self.env, out=out, overrides=overrides) != 0:
            raise RuntimeError("ops notifications subscribe failed against the stand-in")
        self.subscribed = json.loads(out.getvalue())
        assert self.amazon is not None  # noqa: S101 - _start made it
        self.amazon.announce([self.spapi.order(order_id) for order_id in self.spapi.order_ids()])

    def secret_store(self) -> Any:
        from shared.crypto.key_vault import AzureSecretStore

        return AzureSecretStore.connect(self.vault.url, self.vault.credential(), **self._vault_options())

    def _vault_options(self) -> dict[str, Any]:
        return {"verify_challenge_resource": False, "connection_verify": str(self.vault.ca_path)}

    def _prepare_storage(self) -> None:
        from shared.app.keys import init_keys
        from shared.storage.document_store import ensure_local_containers

        secrets = self.secret_store()
        secrets.set("lwa-client-id", "amzn1.application-oa2-client.local")
        secrets.set("lwa-client-secret", "local-lwa-secret")
        secrets.set(f"refresh-token-{SELLER_ID}", "Atzr|local-refresh-token")
        for name, value in CARRIER_SECRETS.items():
            secrets.set(name, json.dumps(value))
        init_keys(secrets)  # the deployment step: the app never makes its keys
        cosmos = CosmosClient(
            self.env["COSMOS_ENDPOINT"], credential=self.env["COSMOS_KEY"], connection_verify=False
        )
        ensure_local_containers(cosmos, DATABASE)
        self.blob_service = BlobServiceClient.from_connection_string(self.env["STORAGE"])
        for container in (*BLOB_CONTAINERS, AUDIT_CONTAINER):
            with contextlib.suppress(ResourceExistsError):
                self.blob_service.create_container(container)
        self.queue_service = QueueServiceClient.from_connection_string(self.env["STORAGE"])

    def _build(self) -> None:
        from shared.app import composition, runtime
        from shared.crypto.envelope import EnvelopeCipher
        from shared.crypto.key_epochs import KeyEpochs
        from shared.crypto.secrets import OrderBytesSealer
        from shared.storage.document_store import CountingStore, DocumentStore
        from tests.registry import registered

        self.host = LocalHost(registered(), self.env, self.queue_service, ROOT / "host.json", self.clock)
        self.host.create_queues()
        counted: list[CountingStore] = []

        def counting(inner: DocumentStore) -> DocumentStore:
            counted.append(CountingStore(inner))
            return self._wrap_store(counted[0]) if self._wrap_store else counted[0]

        overrides = composition.LocalOverrides(
            credential=self.vault.credential(),
            key_vault_options={**self._vault_options(), **self._extra_vault_options},
            queue_sender=self.host,
            carriers_replay_safe=self._carriers_replay_safe,
            wrap_store=counting,
        )
        self.runtime = composition.build_runtime(self.env, self.clock, overrides)
        self.store = counted[0]
        runtime.install(self.runtime)
        self._stack.callback(runtime.install, None)
        self._stack.callback(self._flush_telemetry)
        epochs = KeyEpochs(self.secret_store(), self.clock, epoch_days=int(self.env["KEY_EPOCH_DAYS"]))
        self.invoice_sealer = OrderBytesSealer(EnvelopeCipher(epochs))

    def _flush_telemetry(self) -> None:
        from opentelemetry import _logs

        provider = _logs.get_logger_provider()
        flush = getattr(provider, "force_flush", None)
        if flush is not None:
            flush(10_000)

    # ---- the world --------------------------------------------------------------------------

    def play_world(self) -> None:
        """Report deliveries whose time has come, from Amazon's record of each shipment."""
        now = self.clock()
        for confirmation in list(self.spapi.confirmations):
            order_id = confirmation.order_id
            if order_id in self.world.reported:
                continue
            kind = self.world.scenario.get(order_id)
            package = confirmation.body["packageDetail"]
            if kind == "amazon_delivered":
                if now >= confirmation.at + timedelta(days=AMAZON_DELIVERY_DAYS):
                    self.spapi.set_package_status(order_id, "DELIVERED", str(package["packageReferenceId"]))
                    self.world.reported.add(order_id)
            elif kind in ("carrier_delivered", "carrier_returned"):
                if now >= confirmation.at + timedelta(days=CARRIER_DELIVERY_DAYS):
                    number = str(package["trackingNumber"])
                    carriers = self.carriers.all().values()
                    if kind == "carrier_returned":
                        reported = any(c.mark_returned(number) for c in carriers)
                    else:
                        reported = any(c.mark_delivered(number) for c in carriers)
                    if not reported:
                        raise RuntimeError("a confirmed tracking number no carrier stand-in issued")
                    self.world.reported.add(order_id)
            else:
                self.world.reported.add(order_id)

    # ---- observing the app -------------------------------------------------------------------

    def documents(self, container: str) -> list[dict[str, Any]]:
        return list(self.store.scan(container))

    def blobs(self) -> Iterator[tuple[str, str, int, dict[str, str]]]:
        for container in BLOB_CONTAINERS:
            client = self.blob_service.get_container_client(container)
            for blob in client.list_blobs(include=["metadata"]):
                yield container, str(blob.name), int(blob.size), dict(blob.metadata or {})

    def observe_blobs(self) -> None:
        """Count labels and invoices per order, and keep each invoice PDF (decrypted with the
        app's own cipher) for a person to read before the purge deletes it."""
        labels: Counter[str] = Counter()
        invoices: Counter[str] = Counter()
        for container, name, _, _ in self.blobs():
            ref = name.split("/", 1)[0]
            if container == "labels":
                labels[ref] += 1
            elif container == "invoices":
                invoices[ref] += 1
                self._keep_invoice(ref, name)
        for ref, n in labels.items():
            self.observed.labels[ref] = max(self.observed.labels[ref], n)
        for ref, n in invoices.items():
            self.observed.invoices[ref] = max(self.observed.invoices[ref], n)

    def _keep_invoice(self, ref: str, name: str) -> None:
        if name in self.observed.invoice_files:
            return
        sealed = self.blob_service.get_blob_client("invoices", name).download_blob().readall()
        pdf = self.invoice_sealer.open_bytes(ref, sealed)
        (self.out / "invoices" / name.replace("/", "_")).write_bytes(pdf)
        self.observed.invoice_files.add(name)

    def snapshot(self, path: Path) -> int:
        """Every Cosmos document and blob (name, size and metadata) as stored, one JSON object a
        line."""
        from shared.storage.document_store import CONTAINERS

        lines = 0
        with path.open("w", encoding="utf-8") as f:
            for container in CONTAINERS:
                for doc in self.documents(container):
                    f.write(json.dumps({"cosmos": container, "document": doc}, sort_keys=True) + "\n")
                    lines += 1
            for container, name, size, metadata in self.blobs():
                entry = {"blob": container, "name": name, "size": size, "metadata": metadata}
                f.write(json.dumps(entry, sort_keys=True) + "\n")
                lines += 1
        return lines

    def purge_would_act(self) -> bool:
        from shared.retention.service import PURGEABLE_STAGES
        from shared.storage.document_store import ORDERS

        now = self.clock()
        due = self.store.inner.due_in(
            ORDERS,
            "dueAt",
            now.isoformat(),
            20,
            key="stage",
            values=[stage.value for stage in PURGEABLE_STAGES],
        )
        return any(d.get("purgeAfter") and _parse(str(d["purgeAfter"])) <= now for d in due)

    def remaining_orders(self) -> int:
        from shared.storage.document_store import ORDERS

        return sum(1 for _ in self.store.inner.scan(ORDERS))

    # ---- the driver -------------------------------------------------------------------------

    def step(self) -> list[str]:
        """Advance to the next timer, play the world, fire timers, run every queue dry."""
        self.clock.set(self.host.next_timer_time(self.clock()))
        self.play_world()
        if self.amazon is not None:
            self.amazon.flush()  # Amazon's ORDER_CHANGE to the seller's SQS queue
        self.host.release_delayed()
        if self._expire_poison:
            self.host.expire_messages()
        if self.purge_would_act():
            # Blobs vanish with the purge: count and keep them first.
            self.observe_blobs()
            if not self.observed.snapshot_taken:
                self.snapshot(self.out / "store-before-purge.jsonl")
                self.observed.snapshot_taken = True
        fired = self.host.fire_due_timers()
        self.drain()
        return fired

    def drain(self) -> None:
        """Run the queues dry, one batch per queue at a time, letting DRAIN_ROUND of simulated
        time pass per batch: handling takes time in Azure too, and the SP-API stand-in refills
        its rate buckets on the simulated clock only."""
        while True:
            try:
                self.host.drain_queues(max_rounds=1)
            except RuntimeError:  # a batch ran: there may be more
                self.clock.advance(DRAIN_ROUND.total_seconds())
                self.host.release_delayed()
                continue
            return

    def run(self, *, limit: timedelta = timedelta(days=60)) -> RunResult:
        started_wall, started_cpu = time.monotonic(), time.process_time()
        started_app = self.host.stats.function_cpu_s + telemetry_threads_cpu_s()
        start = self.clock()
        self.host.next_timer_time(start)  # schedules every timer from the start time
        last_check = start
        while self.clock() - start < limit:
            self.step()
            if self.clock() - last_check >= timedelta(days=1):
                last_check = self.clock()
                if self.remaining_orders() == 0:
                    break
        self.observe_blobs()
        if not self.observed.snapshot_taken:
            self.snapshot(self.out / "store-before-purge.jsonl")
        self.snapshot(self.out / "store-after-purge.jsonl")
        self._flush_telemetry()
        return RunResult(
            simulated=self.clock() - start,
            wall_s=time.monotonic() - started_wall,
            cpu_s=time.process_time() - started_cpu,
            app_cpu_s=self.host.stats.function_cpu_s + telemetry_threads_cpu_s() - started_app,
        )


def telemetry_threads_cpu_s() -> float:
    """CPU seconds so far of the OpenTelemetry export threads (named "Otel..."): app work that
    runs beside the invocations. Read from Linux's per-thread /proc counters (10 ms ticks)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for thread in threading.enumerate():
        if not thread.name.startswith("Otel") or thread.native_id is None:
            continue
        try:
            stat = Path(f"/proc/self/task/{thread.native_id}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
        total += (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
    return total


@dataclass(frozen=True)
class RunResult:
    simulated: timedelta
    wall_s: float
    #: The whole process: app, local host, in-process stand-ins.
    cpu_s: float
    #: The app alone: function bodies plus the telemetry export threads.
    app_cpu_s: float
