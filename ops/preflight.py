"""`python -m ops preflight`: checks a deployment's configuration without printing any value.

One line per check, `ok` or `FAIL`, with the setting or secret name and why; the verb exits
non-zero when any check fails. Checked here: the settings load (the recoverability bound
included), every secret the settings name exists and parses, the keys `ops init-keys` makes
exist, and each carrier the shipping rules name is configured. Not yet checked (issue 20): that
each refresh token yields an access token, that the notifications subscription exists, and that
each carrier answers an authentication call.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

from shared.crypto.key_vault import SecretStore
from shared.errors import AppError, SettingsError
from shared.settings import MAX_RECOVERABLE_DAYS, POISON_MESSAGE_DAYS, Settings, load_settings


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    ok: bool
    detail: str = ""

    def line(self) -> str:
        return f"{'ok  ' if self.ok else 'FAIL'} {self.name}{': ' + self.detail if self.detail else ''}"


def _secret(store: SecretStore, name: str, parse: Callable[[str], str | None] | None = None) -> Check:
    """Exists (and parses); the detail names the problem, never the value."""
    try:
        secret = store.get(name)
    except AppError as exc:
        return Check(f"secret {name}", False, f"unreadable ({exc.code})")
    if secret is None or not secret.value.strip():
        return Check(f"secret {name}", False, "missing")
    problem = parse(secret.value) if parse else None
    return Check(f"secret {name}", problem is None, problem or "")


def _json_object(value: str) -> str | None:
    try:
        parsed = json.loads(value)
    except ValueError:
        return "not JSON"
    return None if isinstance(parsed, dict) and parsed else "not a non-empty JSON object"


def _base64_key(value: str) -> str | None:
    import base64
    import binascii

    try:
        key = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return "not base64"
    return None if len(key) >= 16 else "too short"


def checks(settings: Settings, store: SecretStore) -> Iterator[Check]:
    from shared.app.carriers import check_carriers
    from shared.app.keys import APP_KEYS
    from shared.shipping.rules import ShippingRules

    days = settings.recoverability_days
    yield Check(
        "recoverability bound",
        days <= MAX_RECOVERABLE_DAYS,
        f"{days} days (at most {MAX_RECOVERABLE_DAYS}; poison messages expire {POISON_MESSAGE_DAYS} days"
        " after an order's deadline)",
    )
    yield _secret(store, settings.lwa_client_id_secret)
    yield _secret(store, settings.lwa_client_secret_secret)
    for seller in settings.sellers:
        yield _secret(store, seller.refresh_token_secret)
    for name in APP_KEYS:
        yield _secret(store, name, _base64_key)
    try:
        rules = ShippingRules(settings.shipping_rules)
        check_carriers(settings, rules)
        yield Check("carriers in SHIPPING_RULES", True, ", ".join(sorted(rules.carriers)) or "none")
    except SettingsError as exc:
        yield Check("carriers in SHIPPING_RULES", False, str(exc))
    for account in settings.carriers.values():
        yield _secret(store, account.secret, _json_object)


def preflight(env: Mapping[str, str], store_for: Callable[[Settings], SecretStore]) -> list[Check]:
    try:
        settings = load_settings(env)
    except SettingsError as exc:
        return [Check("settings", False, str(exc))]
    return [Check("settings", True), *checks(settings, store_for(settings))]
