"""Builds the `Runtime` from app settings: every client once per process, every service wired.

In Azure every client authenticates with the Function App's managed identity
(`DefaultAzureCredential`); secrets (LWA credentials, refresh tokens, carrier accounts, keys)
come from Key Vault by the names the settings give. `LocalOverrides` exists for the local run
and tests only: a test credential and the loopback stand-ins' TLS details, never a value a
deployed app can set.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from azure.core.credentials import TokenCredential
from azure.core.pipeline.transport import RequestsTransport
from azure.cosmos import CosmosClient
from azure.storage.blob import BlobServiceClient
from azure.storage.queue import QueueServiceClient

from shared.app.carriers import carrier_directory
from shared.app.delivery_tracking import CarrierDeliveryTracker
from shared.app.keys import app_key_readers
from shared.app.runtime import Runtime
from shared.app.schedules import NCronTab
from shared.crypto.envelope import EnvelopeCipher
from shared.crypto.key_epochs import EpochShredder, KeyEpochs
from shared.crypto.key_vault import AzureSecretStore, SecretStore
from shared.crypto.secrets import OrderBytesSealer, SecretValues
from shared.ingestion.lwa_rotation import (
    LwaSecretCheck,
    LwaSecretRotation,
    SecretUnverified,
    SpApiSecretRotator,
)
from shared.ingestion.rate_budget import RateBudget
from shared.ingestion.service import IngestionService
from shared.ingestion.spapi_gateway import SpApiGateway, lwa_token_url, token_client_class
from shared.ingestion.sqs_bridge import build_drain
from shared.invoices.archive import InvoiceArchive
from shared.invoices.feeds import SpApiVatInvoiceUploader, sp_api_feeds_factory
from shared.invoices.numbering import InvoiceCounter
from shared.invoices.profile import parse_profile
from shared.invoices.render import ReportlabRenderer
from shared.invoices.service import InvoicingService
from shared.orders.deadlines import AmazonPackageStatus, RetentionPolicy
from shared.orders.lifecycle import Settle
from shared.orders.repository import OrderRepository
from shared.privacy.service import PrivacyService
from shared.retention.service import RetentionService
from shared.settings import LWA_ROTATION_AUTO, Settings, load_settings
from shared.shipping.rules import ShippingRules
from shared.shipping.service import ShippingService
from shared.storage.audit import AuditLog
from shared.storage.blob_store import AzureBlobStore, LabelStore, PathBlobs
from shared.storage.document_store import CosmosDocumentStore, DocumentStore
from shared.storage.queues import StorageQueues
from shared.telemetry.invocations import AppTelemetry, configure_telemetry
from shared.telemetry.message_failures import MAX_DEQUEUE_COUNT, MessageFailures, QueueSender


@dataclass(frozen=True)
class LocalOverrides:
    """For the local run and tests only (see the module docstring)."""

    credential: TokenCredential | None = None
    key_vault_options: Mapping[str, Any] = field(default_factory=dict)
    queue_sender: QueueSender | None = None
    carriers_replay_safe: bool = False
    #: Wraps the document store, e.g. in `CountingStore` for the local run's evidence.
    wrap_store: Callable[[DocumentStore], DocumentStore] | None = None


@dataclass(frozen=True)
class Clients:
    store: DocumentStore
    blobs: BlobServiceClient
    queues: QueueServiceClient
    secrets: AzureSecretStore
    #: The key epochs' KEKs: their own vault in Azure, the same store where no other is set.
    epoch_secrets: AzureSecretStore


def _period(env: Mapping[str, str], name: str, now: datetime) -> Any:
    return NCronTab.parse(env[name]).period(now)


def connect(settings: Settings, credential: TokenCredential, overrides: LocalOverrides) -> Clients:
    http = http_options(os.environ)
    cosmos = CosmosClient(
        settings.cosmos_endpoint,
        credential=settings.cosmos_key or credential,
        connection_verify=settings.cosmos_verify_tls,
        transport=_cosmos_transport(http, verify_tls=settings.cosmos_verify_tls),
    )
    if settings.storage_connection:
        blobs = BlobServiceClient.from_connection_string(settings.storage_connection, **http)
        queues = QueueServiceClient.from_connection_string(settings.storage_connection, **http)
    else:
        blobs = BlobServiceClient(str(settings.blob_service_uri), credential=credential, **http)
        queues = QueueServiceClient(str(settings.queue_service_uri), credential=credential, **http)
    secrets = AzureSecretStore.connect(
        settings.key_vault_url, credential, **{**http, **overrides.key_vault_options}
    )
    epoch_secrets = secrets
    if settings.key_epoch_vault_url and settings.key_epoch_vault_url != settings.key_vault_url:
        epoch_secrets = AzureSecretStore.connect(
            settings.key_epoch_vault_url, credential, **{**http, **overrides.key_vault_options}
        )
    store: DocumentStore = CosmosDocumentStore(cosmos, settings.cosmos_database)
    if overrides.wrap_store is not None:
        store = overrides.wrap_store(store)
    return Clients(store, blobs, queues, secrets, epoch_secrets)


def build_runtime(
    env: Mapping[str, str],
    clock: Callable[[], datetime],
    overrides: LocalOverrides | None = None,
) -> Runtime:
    overrides = overrides or LocalOverrides()
    settings = load_settings(env)
    configure_telemetry(settings)
    credential = overrides.credential or _default_credential()
    clients = connect(settings, credential, overrides)
    store = clients.store
    now = clock()
    policy = RetentionPolicy.from_settings(
        settings, purge_interval=_period(env, "PURGE_EXPIRED_SCHEDULE", now)
    )
    orders = OrderRepository(store, Settle(policy, clock))
    values = SecretValues(clients.secrets)
    epochs = KeyEpochs(clients.epoch_secrets, clock, epoch_days=settings.key_epoch_days)
    cipher = EnvelopeCipher(epochs)
    # Fail closed: the keys are made once by `ops init-keys`, never here (shared/app/keys.py).
    refs, archive_sealer = app_key_readers(clients.secrets)

    def spapi_credentials(seller_id: str) -> Mapping[str, str]:
        seller = settings.seller(seller_id)
        if seller is None:
            raise KeyError(seller_id)
        return {
            "lwa_app_id": values(settings.lwa_client_id_secret),
            "lwa_client_secret": values(settings.lwa_client_secret_secret),
            "refresh_token": values(seller.refresh_token_secret),
        }

    gateway = SpApiGateway(settings, spapi_credentials)
    rules = ShippingRules(settings.shipping_rules)
    carriers = carrier_directory(settings, rules, values, replay_safe=overrides.carriers_replay_safe)
    blob_store = AzureBlobStore(clients.blobs)
    audit = AuditLog(store, blob_store)
    archive = (
        InvoiceArchive(
            store,
            PathBlobs(blob_store),
            archive_sealer,
            settings.invoice_archive_years,
        )
        if settings.invoice_archive_years
        else None
    )
    queues = overrides.queue_sender or StorageQueues(clients.queues)
    rotation = lwa_rotation(settings, clients.secrets, values, audit)
    return Runtime(
        settings=settings,
        clock=clock,
        telemetry=AppTelemetry(max_dequeue_count=MAX_DEQUEUE_COUNT),
        failures=MessageFailures(queues),
        ingestion=IngestionService(
            settings,
            repository=orders,
            store=store,
            cipher=cipher,
            refs=refs,
            gateway=gateway,
            budget=RateBudget(store),
            poll_interval=_period(env, "POLL_ORDERS_SCHEDULE", now),
        ),
        shipping=ShippingService(
            orders,
            cipher,
            rules,
            carriers,
            LabelStore(blob_store, cipher),
            gateway,
        ),
        invoicing=InvoicingService(
            orders=orders,
            counter=InvoiceCounter(store),
            cipher=cipher,
            sealer=OrderBytesSealer(cipher),
            blobs=PathBlobs(blob_store),
            renderer=ReportlabRenderer(),
            profile=parse_profile(settings.seller_profile),
            invoice_marketplaces=settings.invoice_marketplaces,
            uploader=_uploader(settings, spapi_credentials),
            audit=audit,
            archive=archive,
        ),
        retention=RetentionService(
            store,
            amazon=AmazonPackageStatus(),
            carrier=CarrierDeliveryTracker(carriers, clock, policy.recheck),
            blobs=blob_store,
            audit=audit,
            shredder=EpochShredder(epochs),
            policy=policy,
            archive=archive,
            orders=orders,
        ),
        privacy=PrivacyService(
            store,
            cipher=cipher,
            blobs=blob_store,
            audit=audit,
            policy=policy,
            archive=archive,
            orders=orders,
        ),
        lwa_rotation=rotation,
        notifications=build_drain(
            env,
            [seller.seller_id for seller in settings.sellers],
            credential,
            queues,
            secrets=rotation,
            clock=clock,
        ),
    )


def lwa_rotation(
    settings: Settings, secrets: SecretStore, values: SecretValues, audit: AuditLog
) -> LwaSecretRotation:
    """LWA_ROTATION=auto asks Amazon for a new secret on a warning; manual only warns a person."""
    auto = settings.lwa_rotation == LWA_ROTATION_AUTO
    return LwaSecretRotation(
        secrets,
        (settings.lwa_client_id_secret, settings.lwa_client_secret_secret),
        secret_rotator(settings, values) if auto else None,
        lwa_secret_check(settings),
        audit,
    )


def secret_rotator(settings: Settings, values: SecretValues) -> SpApiSecretRotator:
    """`rotateApplicationClientSecret` with the LWA client credentials read for each call."""

    def credentials() -> Mapping[str, str]:
        return {
            "lwa_app_id": values(settings.lwa_client_id_secret),
            "lwa_client_secret": values(settings.lwa_client_secret_secret),
        }

    def client_for(creds: Mapping[str, str]) -> Any:
        from sp_api.api import ApplicationManagement
        from sp_api.base.credential_provider import FromCodeCredentialProvider

        client = ApplicationManagement(
            credentials=dict(creds),
            credential_providers=[FromCodeCredentialProvider],
            auth_token_client_class=token_client_class(settings.lwa_endpoint),
            verify=settings.spapi_verify_tls,
            timeout=30,
        )
        if settings.spapi_endpoint:
            client.endpoint = settings.spapi_endpoint.rstrip("/")
        return client

    return SpApiSecretRotator(credentials, client_for)


def lwa_secret_check(settings: Settings) -> LwaSecretCheck:
    """A new LWA secret tried at the token endpoint the SP-API clients use (`LWA_ENDPOINT`), with
    their TLS settings (python-amazon-sp-api's token client: httpx, `SPAPI_VERIFY_TLS`). The HTTP
    client is made at the first check, not at every cold start."""

    @functools.cache
    def http() -> Any:
        import httpx

        return httpx.Client(verify=settings.spapi_verify_tls, timeout=30.0)

    def post(url: str, form: Mapping[str, str]) -> tuple[int, Any]:
        import httpx

        try:
            answer = http().post(url, data=dict(form))
        except httpx.HTTPError:
            raise SecretUnverified("LWA unreachable") from None
        try:
            return answer.status_code, answer.json()
        except ValueError:
            return answer.status_code, None

    return LwaSecretCheck(lwa_token_url(settings.lwa_endpoint), post)


def _uploader(settings: Settings, credentials: Callable[[str], Mapping[str, str]]) -> SpApiVatInvoiceUploader:
    import httpx

    feeds = sp_api_feeds_factory(
        credentials,
        endpoint=settings.spapi_endpoint,
        auth_token_client_class=token_client_class(settings.lwa_endpoint) if settings.lwa_endpoint else None,
        verify=settings.spapi_verify_tls,
    )
    return SpApiVatInvoiceUploader(feeds, httpx.Client(verify=_httpx_verify(settings), timeout=30.0))


def http_options(environ: Mapping[str, str]) -> dict[str, Any]:
    """Options for the requests-based Azure clients. requests reads the proxy variables from
    the environment again on every call: a scan of the whole environment, a quarter of the
    client CPU of a Cosmos point read (1.56 to 1.15 ms, 1,000 reads on the emulator, 36
    variables; an Azure Functions host sets more). With no proxy configured there is nothing
    to find, so the clients skip it (`use_env_settings`), and the CA bundle requests would have
    taken from the environment is passed explicitly. With a proxy configured, the default
    stays."""
    if any(name.lower() in ("http_proxy", "https_proxy", "all_proxy", "no_proxy") for name in environ):
        return {}
    options: dict[str, Any] = {"use_env_settings": False}
    bundle = environ.get("REQUESTS_CA_BUNDLE") or environ.get("CURL_CA_BUNDLE")
    if bundle:
        options["connection_verify"] = bundle
    return options


def _cosmos_transport(http: Mapping[str, Any], *, verify_tls: bool) -> RequestsTransport | None:
    """Cosmos builds its transport without the client's options, so it gets one. It also sends
    its own `connection_verify` with every request, which would hide a CA bundle given to the
    transport: with a bundle to honour, requests keeps reading it from the environment (None:
    the SDK's default transport)."""
    if not http or (verify_tls and "connection_verify" in http):
        return None
    return RequestsTransport(use_env_settings=False)


def _httpx_verify(settings: Settings) -> Any:
    """httpx ignores REQUESTS_CA_BUNDLE; honour the same CA bundle the requests-based SDKs use."""
    import ssl

    bundle = os.environ.get("REQUESTS_CA_BUNDLE")
    if not settings.spapi_verify_tls:
        return False
    return ssl.create_default_context(cafile=bundle) if bundle else True


def _default_credential() -> TokenCredential:
    from azure.identity import DefaultAzureCredential

    return DefaultAzureCredential()
