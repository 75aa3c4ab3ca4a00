"""`ops preflight` (issue 20): fails on each missing piece, one line per check, never a value;
passes on a complete configuration. The calls over the wire are probes here (each answering as
the live one does: None or a reason code); tests/integration/test_preflight.py runs the live ones
against the local deployment."""

from __future__ import annotations

import io
import json

import pytest

from ops import cli, preflight
from ops.probes import Probes
from shared.app.keys import init_keys
from shared.crypto.key_vault import Destroyed, Secret, SecretStoreDenied

# pragma: allowlist nextline secret
SELLER = {"sellerId": "S1", "marketplaceIds": ["ATVPDKIKX0DER"], "refreshTokenSecret": "rt-s1"}
RULES = {
    "shipFrom": {"name": "D", "line1": "1 St", "city": "Austin", "postalCode": "78701", "countryCode": "US"},
    "packages": {"small": {"lengthCm": 20, "widthCm": 15, "heightCm": 10}},
    "skus": {"MUG": {"weightKg": 0.5, "package": "small"}},
    "buyShipping": {"marketplaces": ["ATVPDKIKX0DER"], "services": {"Standard": "*"}},
    "rules": [{"countries": ["US"], "carrier": "usps", "service": "usps_ground_advantage"}],
}
ENV = {
    "STORAGE": "UseDevelopmentStorage=true",
    "COSMOS_ENDPOINT": "https://127.0.0.1:1",
    "KEY_VAULT_URL": "https://vault.example/",
    "SELLERS": json.dumps([SELLER]),
    "SHIPPING_RULES": json.dumps(RULES),
    "CARRIERS": json.dumps({"usps": {}}),
}
VALUES = {
    "lwa-client-id": "amzn1.application-oa2-client.x",
    "lwa-client-secret": "lwa-value-never-printed",  # pragma: allowlist secret
    "rt-s1": "Atzr|refresh-value-never-printed",
    "carrier-usps": json.dumps({"client_id": "c", "client_secret": "usps-value-never-printed"}),
}


class Vault:
    def __init__(self, values: dict[str, str]) -> None:
        self.values = dict(values)
        self.versions: dict[str, int] = {}
        #: Secrets this identity may read but not write (Key Vault answers 403).
        self.read_only: set[str] = set()

    def get(self, name: str, version: str | None = None) -> Secret | None:
        value = self.values.get(name)
        return None if value is None else Secret(name, "v1", value)

    def set(self, name: str, value: str) -> Secret:
        if name in self.read_only:
            raise SecretStoreDenied(f"set {name}: HTTP 403")
        self.values[name] = value
        self.versions[name] = self.versions.get(name, 0) + 1
        return Secret(name, "v1", value)

    def names(self, prefix: str = "") -> list[str]:
        return sorted(n for n in self.values if n.startswith(prefix))

    def destroy(self, name: str) -> Destroyed:
        self.values.pop(name, None)
        return Destroyed.PURGED


def complete() -> Vault:
    vault = Vault(VALUES)
    init_keys(vault)
    return vault


def probes(failing: dict[str, str] | None = None) -> Probes:
    """Probes answering None, or the reason `failing` gives for "<probe>:<subject>"."""
    failing = failing or {}
    return Probes(
        access_token=lambda seller: failing.get(f"access_token:{seller}"),
        subscription=lambda seller: failing.get(f"subscription:{seller}"),
        carrier=lambda name: failing.get(f"carrier:{name}"),
    )


def run(
    vault: Vault, env: dict[str, str], monkeypatch: pytest.MonkeyPatch, failing: dict[str, str] | None = None
) -> tuple[int, str]:
    monkeypatch.setattr(cli, "_clients", lambda env, settings=None: (vault, None))
    monkeypatch.setattr(preflight, "live_probes", lambda env, settings, store: probes(failing))
    out = io.StringIO()
    code = cli.main(["preflight"], env=env, out=out)
    text = out.getvalue()
    for value in vault.values.values():
        assert value not in text
    return code, text


def test_a_complete_configuration_passes(monkeypatch: pytest.MonkeyPatch) -> None:
    code, text = run(complete(), ENV, monkeypatch)
    assert code == 0, text
    lines = text.splitlines()
    assert len(lines) == 14 and all(line.startswith("ok") for line in lines)
    assert "ok   LWA secret rotation: manual: a person rotates lwa-client-secret" in lines
    assert "ok   access token of seller S1" in lines
    assert "ok   ORDER_CHANGE subscription of seller S1" in lines
    assert "ok   carrier usps authenticates" in lines
    assert "ok   carrier amazon authenticates: with the sellers' access tokens" in lines


@pytest.mark.parametrize(
    ("missing", "line"),
    [
        ("lwa-client-id", "FAIL secret lwa-client-id: missing"),
        ("lwa-client-secret", "FAIL secret lwa-client-secret: missing"),
        ("rt-s1", "FAIL secret rt-s1: missing"),
        ("order-ref-key", "FAIL secret order-ref-key: missing"),
        ("invoice-archive-key", "FAIL secret invoice-archive-key: missing"),
        ("carrier-usps", "FAIL secret carrier-usps: missing"),
    ],
)
def test_each_missing_secret_fails_on_its_own_line(
    missing: str, line: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    vault = complete()
    vault.destroy(missing)
    code, text = run(vault, ENV, monkeypatch)
    assert code == 1 and line in text.splitlines()


def test_a_carrier_secret_that_does_not_parse_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    vault = complete()
    vault.values["carrier-usps"] = "user:password-never-printed"  # pragma: allowlist secret
    code, text = run(vault, ENV, monkeypatch)
    assert code == 1 and "FAIL secret carrier-usps: not JSON" in text


def test_a_rule_naming_an_unconfigured_carrier_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    code, text = run(complete(), {**ENV, "CARRIERS": "{}"}, monkeypatch)
    assert code == 1
    [line] = [row for row in text.splitlines() if row.startswith("FAIL")]
    assert line.startswith("FAIL carriers in SHIPPING_RULES:") and "rules[0] names carrier usps" in line


def test_settings_that_do_not_parse_fail_with_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    code, text = run(complete(), {**ENV, "RETENTION_DAYS": "a week"}, monkeypatch)
    assert code == 1 and text == "FAIL settings: settings_invalid: RETENTION_DAYS must be a whole number\n"


@pytest.mark.parametrize(("retention", "days", "ok"), [("9", 30, True), ("10", 31, False), ("30", 51, False)])
def test_the_recoverability_bound_has_its_own_line_that_fails_over_30_days(
    retention: str, days: int, ok: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, text = run(complete(), {**ENV, "RETENTION_DAYS": retention}, monkeypatch)
    lines = text.splitlines()
    assert lines[:2] == [
        "ok   settings",
        f"{'ok  ' if ok else 'FAIL'} recoverability bound: {days} days (at most 30; poison messages"
        " expire 7 days after an order's deadline)",
    ]
    assert code == (0 if ok else 1)
    assert all(line.startswith("ok") for line in lines[2:])  # every other check still ran


@pytest.mark.parametrize(
    ("failing", "reason", "line"),
    [
        (
            "subscription:S1",
            "subscription_absent",
            "FAIL ORDER_CHANGE subscription of seller S1: subscription_absent",
        ),
        ("carrier:usps", "carrier_refused_usps", "FAIL carrier usps authenticates: carrier_refused_usps"),
    ],
)
def test_each_call_over_the_wire_that_fails_fails_on_its_own_line(
    failing: str, reason: str, line: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, text = run(complete(), ENV, monkeypatch, {failing: reason})
    assert code == 1
    assert [row for row in text.splitlines() if not row.startswith("ok")] == [line]


def test_buy_shipping_authenticates_only_when_every_seller_token_does(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rules = {**RULES, "rules": [{"countries": ["US"], "carrier": "amazon", "service": "Standard"}]}
    env = {**ENV, "SHIPPING_RULES": json.dumps(rules), "CARRIERS": "{}"}
    vault = complete()
    vault.destroy("carrier-usps")
    code, text = run(vault, env, monkeypatch)
    assert code == 0 and "ok   carrier amazon authenticates: with the sellers' access tokens" in text
    code, text = run(vault, env, monkeypatch, {"access_token:S1": "lwa_refused_invalid_client"})
    assert code == 1
    assert [row for row in text.splitlines() if not row.startswith("ok")] == [
        "FAIL access token of seller S1: lwa_refused_invalid_client",
        "FAIL carrier amazon authenticates: with the sellers' access tokens",
    ]


def test_auto_rotation_proves_the_lwa_secret_writable_without_changing_its_value(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    vault = complete()
    before = dict(vault.values)
    code, text = run(vault, {**ENV, "LWA_ROTATION": "auto"}, monkeypatch)
    line = (
        "ok   LWA secret lwa-client-secret writable (LWA_ROTATION=auto): "
        "a new version with the same value was set"
    )
    assert code == 0 and line in text.splitlines()
    assert vault.versions["lwa-client-secret"] == 1 and vault.values == before


def test_auto_rotation_fails_where_the_identity_may_only_read_the_lwa_secret(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    vault = complete()
    vault.read_only.add("lwa-client-secret")
    code, text = run(vault, {**ENV, "LWA_ROTATION": "auto"}, monkeypatch)
    assert code == 1
    assert [row for row in text.splitlines() if not row.startswith("ok")] == [
        "FAIL LWA secret lwa-client-secret writable (LWA_ROTATION=auto): lwa_secret_not_writable"
    ]
    code, text = run(vault, ENV, monkeypatch)  # manual: a person rotates, nothing to prove
    assert code == 0
