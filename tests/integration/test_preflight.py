"""`ops preflight` over the wire (issue 20): green on the complete local deployment (make run's
world: the Key Vault stand-in, the SP-API stand-in with LWA and the Notifications API, the SQS
queue in moto, the carrier stand-ins), and one FAIL line for each piece taken away (the LWA
secret made read-only in the Key Vault stand-in among them). Nothing it prints is a secret's
value."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from local.pipeline import CARRIER_SECRETS, SELLER_ID, Pipeline
from ops import cli as ops
from shared.app.composition import LocalOverrides
from tests.builders import unshipped_orders

pytestmark = pytest.mark.integration


def _preflight(p: Pipeline, env: dict[str, str] | None = None) -> tuple[int, list[str]]:
    out = io.StringIO()
    overrides = LocalOverrides(credential=p.vault.credential(), key_vault_options=p._vault_options())
    code = ops.main(["preflight"], env=env or p.env, out=out, overrides=overrides)
    text = out.getvalue()
    secrets = p.secret_store()
    for name in secrets.names():
        secret = secrets.get(name)
        assert secret is None or secret.value not in text
    return code, text.splitlines()


def _failures(lines: list[str]) -> list[str]:
    return [line for line in lines if not line.startswith("ok")]


def _notifications(p: Pipeline, action: str) -> None:
    overrides = LocalOverrides(credential=p.vault.credential(), key_vault_options=p._vault_options())
    assert ops.main(["notifications", action], env=p.env, out=io.StringIO(), overrides=overrides) == 0


def test_preflight_passes_on_the_local_deployment_and_fails_on_each_missing_piece(tmp_path: Path) -> None:
    with Pipeline(unshipped_orders(2, 7, ["A1PA6795UKMFR9"]), tmp_path, notifications=True) as p:
        code, lines = _preflight(p)
        assert code == 0 and _failures(lines) == []
        for line in (
            f"ok   access token of seller {SELLER_ID}",
            f"ok   ORDER_CHANGE subscription of seller {SELLER_ID}",
            "ok   carrier fedex authenticates",
            "ok   carrier ups authenticates",
            "ok   LWA secret lwa-client-secret writable (LWA_ROTATION=auto): "
            "a new version with the same value was set",
        ):
            assert line in lines
        # The rules choose FedEx and UPS; USPS is configured (CARRIERS) but no rule names it.
        assert not [line for line in lines if "carrier usps" in line]
        assert p.spapi.token_requests >= 1

        # Auto rotation where the identity may only read the LWA secret (no writer role): the
        # write is refused, and the secret keeps its value.
        before = p.secret_store().get("lwa-client-secret")
        p.vault.read_only("lwa-client-secret")
        code, lines = _preflight(p)
        assert code == 1 and _failures(lines) == [
            "FAIL LWA secret lwa-client-secret writable (LWA_ROTATION=auto): lwa_secret_not_writable"
        ]
        code, lines = _preflight(p, {**p.env, "LWA_ROTATION": "manual"})
        assert code == 0 and "ok   LWA secret rotation: manual: a person rotates lwa-client-secret" in lines
        p.vault.read_only("lwa-client-secret", False)
        after = p.secret_store().get("lwa-client-secret")
        assert before is not None and after is not None and after.value == before.value

        # A carrier that refuses the account's credentials.
        p.carriers.ups.refuse_credentials = True
        code, lines = _preflight(p)
        assert code == 1 and _failures(lines) == ["FAIL carrier ups authenticates: carrier_refused_ups"]
        p.carriers.ups.refuse_credentials = False

        # A carrier that does not answer.
        endpoints = {**json.loads(p.env["CARRIER_ENDPOINTS"]), "fedex": "http://127.0.0.1:9"}
        code, lines = _preflight(p, {**p.env, "CARRIER_ENDPOINTS": json.dumps(endpoints)})
        assert code == 1 and _failures(lines) == ["FAIL carrier fedex authenticates: carrier_unavailable"]

        # LWA out of reach: no seller token, so neither Buy Shipping nor the subscription check.
        code, lines = _preflight(p, {**p.env, "LWA_ENDPOINT": "https://127.0.0.1:9/auth/o2/token"})
        assert code == 1
        assert f"FAIL access token of seller {SELLER_ID}: lwa_unreachable" in _failures(lines)

        # No ORDER_CHANGE subscription.
        _notifications(p, "unsubscribe")
        code, lines = _preflight(p)
        assert code == 1
        assert _failures(lines) == [
            f"FAIL ORDER_CHANGE subscription of seller {SELLER_ID}: subscription_absent"
        ]
        _notifications(p, "subscribe")
        assert _preflight(p)[0] == 0

        # A secret gone: the carrier's own line and its authentication both fail.
        p.secret_store().destroy("carrier-ups")
        code, lines = _preflight(p)
        assert code == 1
        assert _failures(lines) == [
            "FAIL secret carrier-ups: missing",
            "FAIL carrier ups authenticates: settings_invalid",
        ]
        p.secret_store().set("carrier-ups", json.dumps(CARRIER_SECRETS["carrier-ups"]))
        assert _preflight(p)[0] == 0

        # The seller's refresh token gone.
        p.secret_store().destroy(f"refresh-token-{SELLER_ID}")
        code, lines = _preflight(p)
        assert code == 1
        assert f"FAIL secret refresh-token-{SELLER_ID}: missing" in lines
        assert f"FAIL access token of seller {SELLER_ID}: secret_missing" in lines

        # Settings over Amazon's 30 days.
        code, lines = _preflight(p, {**p.env, "RETENTION_DAYS": "10"})
        bound = "FAIL recoverability bound: 31 days (at most 30;"
        assert code == 1 and any(line.startswith(bound) for line in lines)
