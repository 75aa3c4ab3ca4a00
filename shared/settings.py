"""Typed app settings, built once from the environment and validated at start-up.

A missing or malformed setting raises `SettingsError` naming the setting, never its value.
Secrets are never settings: the app holds Key Vault secret names, and the values stay in Key
Vault (or, locally, in the Key Vault stand-in). The connection string of local storage and the
Cosmos emulator key are the public, documented emulator keys; in Azure both are absent and the
managed identity is used.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from shared.errors import SettingsError

MAX_RECOVERABLE_DAYS = 30  # Amazon Data Protection Policy: PII gone within 30 days.
#: A poison message's time-to-live: the app sets it on every poison record it writes, and the
#: Functions host, when it moves a message to `<queue>-poison` itself, leaves the queue's default
#: (also 7 days), which no setting changes. docs/encryption.md counts it in the bound.
POISON_MESSAGE_DAYS = 7


@dataclass(frozen=True, slots=True)
class SellerAccount:
    """One Amazon seller this app fulfils for. `refresh_token_secret` names a Key Vault secret."""

    seller_id: str
    marketplace_ids: tuple[str, ...]
    region: str
    refresh_token_secret: str


#: The carriers karrio serves (shared.shipping.carriers.karrio_adapter); Amazon Buy Shipping
#: needs no entry in CARRIERS: it uses the seller's own SP-API authorisation.
KARRIO_CARRIERS = ("usps", "fedex", "ups")

#: LWA_ROTATION: `auto`, the app asks Amazon for a new LWA client secret and stores it (the
#: deployment gives it the write role on that one secret); `manual`, a person rotates it
#: (docs/security.md) and the app only warns. The same deployment parameter sets both.
LWA_ROTATION_AUTO = "auto"
LWA_ROTATION_MANUAL = "manual"


@dataclass(frozen=True, slots=True)
class CarrierAccount:
    """One carrier account from CARRIERS: the Key Vault secret holding its credentials as JSON
    (docs/shipping.md), read on first use, and whether it talks to the carrier's sandbox."""

    name: str
    secret: str
    sandbox: bool = False


@dataclass(frozen=True, slots=True)
class Settings:
    storage_connection: str | None
    blob_service_uri: str | None
    queue_service_uri: str | None
    cosmos_endpoint: str
    cosmos_key: str | None
    cosmos_database: str
    cosmos_verify_tls: bool
    key_vault_url: str
    sellers: tuple[SellerAccount, ...]
    lwa_client_id_secret: str
    lwa_client_secret_secret: str
    spapi_endpoint: str | None
    lwa_endpoint: str | None
    spapi_verify_tls: bool
    retention_days: int
    key_epoch_days: int
    cosmos_backup_retention_days: int
    key_vault_soft_delete_days: int
    delivery_grace_days: int
    telemetry_exporter: str
    appinsights_connection_string: str | None
    shipping_rules: Mapping[str, Any]
    carrier_endpoints: Mapping[str, str]
    seller_profile: Mapping[str, Any]
    invoice_marketplaces: tuple[str, ...]
    invoice_archive_years: Mapping[str, int]
    carriers: Mapping[str, CarrierAccount] = field(default_factory=dict)
    #: The vault of the weekly key-epoch KEKs, which the app makes and destroys itself (its own
    #: vault in Azure, docs/security.md); None: the KEKs live in KEY_VAULT_URL's vault.
    key_epoch_vault_url: str | None = None
    #: LWA_ROTATION: `auto` or `manual` (manual when absent: the app then never asks Amazon for
    #: a secret it may not be able to store).
    lwa_rotation: str = LWA_ROTATION_MANUAL

    @property
    def recoverability_days(self) -> int:
        """Worst case for how long any copy of an order's PII stays readable (design card): the
        live order's retention, then the longer of the encrypted copies' terms and a poison
        message's time-to-live (a message is poisoned while its order is stored)."""
        encrypted_copies = (
            self.key_epoch_days + self.cosmos_backup_retention_days + self.key_vault_soft_delete_days
        )
        return self.retention_days + max(encrypted_copies, POISON_MESSAGE_DAYS)

    def seller(self, seller_id: str) -> SellerAccount | None:
        return next((s for s in self.sellers if s.seller_id == seller_id), None)


def _get(env: Mapping[str, str], name: str, default: str | None = None) -> str:
    value = env.get(name, default)
    if value is None or value.strip() == "":
        raise SettingsError(f"{name} is required")
    return value.strip()


def _optional(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name)
    return value.strip() if value and value.strip() else None


def _int(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a whole number") from None
    if not low <= value <= high:
        raise SettingsError(f"{name} must be between {low} and {high}")
    return value


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    lowered = raw.strip().lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise SettingsError(f"{name} must be true or false")


def _json(env: Mapping[str, str], name: str, default: object) -> Any:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        raise SettingsError(f"{name} must be JSON") from None


def _sellers(env: Mapping[str, str]) -> tuple[SellerAccount, ...]:
    raw = _json(env, "SELLERS", None)
    if not isinstance(raw, list) or not raw:
        raise SettingsError("SELLERS must be a non-empty JSON list of seller accounts")
    sellers = []
    for entry in raw:
        if not isinstance(entry, dict):
            raise SettingsError("SELLERS entries must be objects")
        try:
            seller = SellerAccount(
                seller_id=str(entry["sellerId"]),
                marketplace_ids=tuple(str(m) for m in entry["marketplaceIds"]),
                region=str(entry.get("region", "eu")),
                refresh_token_secret=str(entry["refreshTokenSecret"]),
            )
        except (KeyError, TypeError):
            raise SettingsError(
                "SELLERS entries need sellerId, marketplaceIds and refreshTokenSecret"
            ) from None
        if not seller.marketplace_ids:
            raise SettingsError("SELLERS entries need at least one marketplace id")
        sellers.append(seller)
    if len({s.seller_id for s in sellers}) != len(sellers):
        raise SettingsError("SELLERS lists a seller id twice")
    return tuple(sellers)


def _mapping(env: Mapping[str, str], name: str) -> Mapping[str, Any]:
    value = _json(env, name, {})
    if not isinstance(value, dict):
        raise SettingsError(f"{name} must be a JSON object")
    return value


def _carriers(env: Mapping[str, str]) -> Mapping[str, CarrierAccount]:
    """CARRIERS: {"usps": {"secret": <the Key Vault secret name>, "sandbox": false}, ...}; `secret`
    defaults to carrier-<name>, `sandbox` to false."""
    accounts: dict[str, CarrierAccount] = {}
    for name, raw in _mapping(env, "CARRIERS").items():
        if name not in KARRIO_CARRIERS:
            raise SettingsError(f"CARRIERS names {name}; the carriers are {', '.join(KARRIO_CARRIERS)}")
        entry = raw if isinstance(raw, dict) else None
        secret = (entry or {}).get("secret", f"carrier-{name}")
        sandbox = (entry or {}).get("sandbox", False)
        if entry is None or not isinstance(secret, str) or not secret or not isinstance(sandbox, bool):
            raise SettingsError(
                f"CARRIERS.{name} must be an object with an optional secret (a name) "
                "and sandbox (true or false)"
            )
        accounts[name] = CarrierAccount(name, secret, sandbox)
    return accounts


def load_settings(env: Mapping[str, str]) -> Settings:
    """The app's settings: `read_settings`, refused when over the recoverability bound."""
    settings = read_settings(env)
    problem = recoverability_problem(settings)
    if problem:
        raise SettingsError(problem)
    return settings


def recoverability_problem(settings: Settings) -> str | None:
    """Why the settings break Amazon's 30-day bound, or None when they keep it."""
    if settings.recoverability_days <= MAX_RECOVERABLE_DAYS:
        return None
    return (
        f"recoverability window is {settings.recoverability_days} days, over Amazon's "
        f"{MAX_RECOVERABLE_DAYS}: lower RETENTION_DAYS, KEY_EPOCH_DAYS, "
        "COSMOS_BACKUP_RETENTION_DAYS or KEY_VAULT_SOFT_DELETE_DAYS"
    )


def read_settings(env: Mapping[str, str]) -> Settings:
    """Every setting parsed and checked on its own; `ops preflight` reads them so, to report the
    recoverability bound on its own line."""
    storage = _optional(env, "STORAGE")
    blob_uri = _optional(env, "STORAGE__blobServiceUri")
    queue_uri = _optional(env, "STORAGE__queueServiceUri")
    if storage is None and (blob_uri is None or queue_uri is None):
        raise SettingsError(
            "STORAGE (connection string) or STORAGE__blobServiceUri and STORAGE__queueServiceUri are required"
        )
    exporter = env.get("TELEMETRY_EXPORTER", "opentelemetry").strip().lower()
    if exporter not in ("opentelemetry", "opencensus", "none"):
        raise SettingsError("TELEMETRY_EXPORTER must be opentelemetry, opencensus or none")
    archive = _mapping(env, "INVOICE_ARCHIVE_YEARS")
    if not all(isinstance(v, int) and 0 <= v <= 30 for v in archive.values()):
        raise SettingsError("INVOICE_ARCHIVE_YEARS values must be whole years from 0 to 30")
    endpoints = _mapping(env, "CARRIER_ENDPOINTS")
    return Settings(
        storage_connection=storage,
        blob_service_uri=blob_uri,
        queue_service_uri=queue_uri,
        cosmos_endpoint=_get(env, "COSMOS_ENDPOINT"),
        cosmos_key=_optional(env, "COSMOS_KEY"),
        cosmos_database=_get(env, "COSMOS_DATABASE", "fulfilment"),
        cosmos_verify_tls=_bool(env, "COSMOS_VERIFY_TLS", True),
        key_vault_url=_get(env, "KEY_VAULT_URL"),
        sellers=_sellers(env),
        lwa_client_id_secret=_get(env, "LWA_CLIENT_ID_SECRET", "lwa-client-id"),
        lwa_client_secret_secret=_get(env, "LWA_CLIENT_SECRET_SECRET", "lwa-client-secret"),
        spapi_endpoint=_optional(env, "SPAPI_ENDPOINT"),
        lwa_endpoint=_optional(env, "LWA_ENDPOINT"),
        spapi_verify_tls=_bool(env, "SPAPI_VERIFY_TLS", True),
        retention_days=_int(env, "RETENTION_DAYS", 7, 0, 30),
        key_epoch_days=_int(env, "KEY_EPOCH_DAYS", 7, 1, 30),
        cosmos_backup_retention_days=_int(env, "COSMOS_BACKUP_RETENTION_DAYS", 7, 0, 30),
        key_vault_soft_delete_days=_int(env, "KEY_VAULT_SOFT_DELETE_DAYS", 7, 7, 90),
        delivery_grace_days=_int(env, "DELIVERY_GRACE_DAYS", 3, 0, 30),
        telemetry_exporter=exporter,
        appinsights_connection_string=_optional(env, "APPLICATIONINSIGHTS_CONNECTION_STRING"),
        shipping_rules=_mapping(env, "SHIPPING_RULES"),
        carrier_endpoints={str(k): str(v) for k, v in endpoints.items()},
        seller_profile=_mapping(env, "SELLER_PROFILE"),
        invoice_marketplaces=tuple(
            m.strip() for m in env.get("INVOICE_MARKETPLACES", "").split(",") if m.strip()
        ),
        invoice_archive_years={str(k): int(v) for k, v in archive.items()},
        carriers=_carriers(env),
        key_epoch_vault_url=_optional(env, "KEY_EPOCH_VAULT_URL"),
        lwa_rotation=_lwa_rotation(env),
    )


def _lwa_rotation(env: Mapping[str, str]) -> str:
    mode = (env.get("LWA_ROTATION") or LWA_ROTATION_MANUAL).strip().lower()
    if mode not in (LWA_ROTATION_AUTO, LWA_ROTATION_MANUAL):
        raise SettingsError(f"LWA_ROTATION must be {LWA_ROTATION_AUTO} or {LWA_ROTATION_MANUAL}")
    return mode
