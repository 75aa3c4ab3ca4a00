"""`python -m ops preflight`: checks a deployment's configuration without printing any value.

One line per check, `ok` or `FAIL`, with the setting or secret name and why (a reason code);
the verb exits non-zero when any check fails. Checked: the settings parse; the recoverability
bound is at most 30 days (its own line: the settings are read without the app's refusal, so this
line can fail); every secret the settings name exists and parses; the keys `ops init-keys`
makes exist; with LWA_ROTATION=auto, Set Secret on the LWA secret (as the app proves it);
each carrier the rules name is configured; and over the wire (ops/probes.py): each seller's
refresh token yields an access token, each seller's ORDER_CHANGE subscription exists (the LWA
secret notifications have none: the Developer Console registers their queue, docs/deploy.md),
and each karrio carrier of the rules answers an authentication call (Buy Shipping
authenticates with the sellers' own tokens, checked just before).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ops.probes import Probes, live_probes
from shared.crypto.key_vault import SecretStore
from shared.errors import AppError, SettingsError
from shared.settings import (
    LWA_ROTATION_AUTO,
    MAX_RECOVERABLE_DAYS,
    POISON_MESSAGE_DAYS,
    Settings,
    read_settings,
    recoverability_problem,
)

if TYPE_CHECKING:
    from shared.shipping.rules import ShippingRules


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


def checks(settings: Settings, store: SecretStore, probes: Probes) -> Iterator[Check]:
    from shared.shipping.rules import ShippingRules

    days = settings.recoverability_days
    yield Check(
        "recoverability bound",
        recoverability_problem(settings) is None,
        f"{days} days (at most {MAX_RECOVERABLE_DAYS}; poison messages expire {POISON_MESSAGE_DAYS} days"
        " after an order's deadline)",
    )
    yield from _secrets(settings, store)
    yield _lwa_secret_writable(settings, store)
    try:
        rules: ShippingRules | None = ShippingRules(settings.shipping_rules)
    except SettingsError as exc:
        rules = None
        yield Check("carriers in SHIPPING_RULES", False, str(exc))
    if rules is not None:
        yield _carriers_configured(settings, rules)
    yield from _over_the_wire(settings, rules, probes)


def _secrets(settings: Settings, store: SecretStore) -> Iterator[Check]:
    from shared.app.keys import APP_KEYS

    yield _secret(store, settings.lwa_client_id_secret)
    yield _secret(store, settings.lwa_client_secret_secret)
    for seller in settings.sellers:
        yield _secret(store, seller.refresh_token_secret)
    for name in APP_KEYS:
        yield _secret(store, name, _base64_key)
    for account in settings.carriers.values():
        yield _secret(store, account.secret, _json_object)


def _lwa_secret_writable(settings: Settings, store: SecretStore) -> Check:
    """Auto rotation stores Amazon's new secret: Set Secret proven as the app proves it before
    asking Amazon (`prove_writable`: a new version with the value it already holds)."""
    from shared.ingestion.lwa_rotation import prove_writable

    name = settings.lwa_client_secret_secret
    if settings.lwa_rotation != LWA_ROTATION_AUTO:
        return Check("LWA secret rotation", True, f"{settings.lwa_rotation}: a person rotates {name}")
    check = f"LWA secret {name} writable (LWA_ROTATION=auto)"
    try:
        prove_writable(store, name)
    except AppError as exc:
        return Check(check, False, exc.code)
    return Check(check, True, "a new version with the same value was set")


def _carriers_configured(settings: Settings, rules: ShippingRules) -> Check:
    from shared.app.carriers import check_carriers

    try:
        check_carriers(settings, rules)
    except SettingsError as exc:
        return Check("carriers in SHIPPING_RULES", False, str(exc))
    return Check("carriers in SHIPPING_RULES", True, ", ".join(sorted(rules.carriers)) or "none")


def _over_the_wire(settings: Settings, rules: ShippingRules | None, probes: Probes) -> Iterator[Check]:
    """Each seller's token and subscription, then each carrier of the rules that is configured."""
    from shared.shipping.rules import AMAZON

    sellers = [s.seller_id for s in settings.sellers]
    tokens = [_probe(f"access token of seller {s}", probes.access_token, s) for s in sellers]
    yield from tokens
    for seller in sellers:
        yield _probe(f"ORDER_CHANGE subscription of seller {seller}", probes.subscription, seller)
    for name in sorted(rules.carriers if rules else ()):
        if name == AMAZON:
            yield Check(
                f"carrier {name} authenticates", all(t.ok for t in tokens), "with the sellers' access tokens"
            )
        elif name in settings.carriers:
            yield _probe(f"carrier {name} authenticates", probes.carrier, name)


def _probe(name: str, probe: Callable[[str], str | None], subject: str) -> Check:
    problem = probe(subject)
    return Check(name, problem is None, problem or "")


def preflight(
    env: Mapping[str, str],
    store_for: Callable[[Settings], SecretStore],
    probes_for: Callable[[Mapping[str, str], Settings, SecretStore], Probes] | None = None,
) -> list[Check]:
    """`probes_for` makes the calls over the wire (default: `live_probes`)."""
    try:
        settings = read_settings(env)
    except SettingsError as exc:
        return [Check("settings", False, str(exc))]
    store = store_for(settings)
    probes = (probes_for or live_probes)(env, settings, store)
    return [Check("settings", True), *checks(settings, store, probes)]
