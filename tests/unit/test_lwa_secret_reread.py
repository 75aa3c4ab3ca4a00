"""The LWA secret is read again on an unauthorised call and before each token refresh
(issue 20; docs/security.md): a rotated secret is used with no restart."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from sp_api.auth.exceptions import AuthorizationError
from sp_api.base import exceptions as sp_errors

from shared.ingestion import spapi_gateway
from shared.ingestion.spapi_gateway import SpApiAuthFailed, SpApiGateway
from tests.builders import amazon_seller_settings

SETTINGS = amazon_seller_settings()


class Response:
    payload: dict[str, Any] = {"order": {"orderId": "1"}}  # noqa: RUF012 - a read-only stand-in
    headers: dict[str, str] = {}  # noqa: RUF012
    next_token = None


class FakeOrders:
    """python-amazon-sp-api's Orders client: LWA accepts only the secret Amazon holds now."""

    amazon_secret = "old"  # pragma: allowlist secret
    made: list[str] = []  # noqa: RUF012 - the secrets clients were made with, in order

    def __init__(self, marketplace: Any, *, credentials: dict[str, str], **kwargs: Any) -> None:
        self.secret = credentials["lwa_client_secret"]
        FakeOrders.made.append(self.secret)

    def get_order(self, order_id: str, **kwargs: Any) -> Response:
        if self.secret != FakeOrders.amazon_secret:
            raise AuthorizationError("invalid_client", "Client authentication failed", 401)
        return Response()

    def confirm_shipment(self, order_id: str, **kwargs: Any) -> Response:
        if self.secret != FakeOrders.amazon_secret:
            raise sp_errors.SellingApiForbiddenException([{"code": "Unauthorized"}])
        return Response()

    def close(self) -> None:
        pass


@pytest.fixture
def vault(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.setattr(spapi_gateway, "Orders", FakeOrders)
    FakeOrders.amazon_secret = "old"  # pragma: allowlist secret
    FakeOrders.made = []
    return {"secret": "old"}  # pragma: allowlist secret


def _gateway(vault: dict[str, str], reads: list[str]) -> SpApiGateway:
    def credentials(seller_id: str) -> dict[str, str]:
        reads.append(seller_id)
        return {"lwa_app_id": "app", "lwa_client_secret": vault["secret"], "refresh_token": "Atzr|t"}

    return SpApiGateway(SETTINGS, credentials)


def test_a_rotated_secret_is_used_after_an_unauthorised_call_with_no_restart(vault: dict[str, str]) -> None:
    reads: list[str] = []
    gateway = _gateway(vault, reads)
    gateway.get_order("S1", "1")
    assert reads == ["S1"]
    # Amazon rotates the secret; the app stores the new version in Key Vault.
    FakeOrders.amazon_secret = vault["secret"] = "new"
    gateway.get_order("S1", "1")  # refused once, credentials read again, then answered
    assert reads == ["S1", "S1"] and FakeOrders.made == ["old", "new"]
    gateway.get_order("S1", "1")
    assert reads == ["S1", "S1"]  # kept until refused again or too old


def test_a_403_from_sp_api_also_reads_the_credentials_again(vault: dict[str, str]) -> None:
    reads: list[str] = []
    gateway = _gateway(vault, reads)
    shipped = datetime(2026, 3, 2, tzinfo=UTC)
    gateway.confirm_shipment("S1", "M", "1", "1", "USPS", "USPS", "std", "TN", shipped, [])
    FakeOrders.amazon_secret = vault["secret"] = "new"
    gateway.confirm_shipment("S1", "M", "1", "1", "USPS", "USPS", "std", "TN", shipped, [])
    assert reads == ["S1", "S1"] and FakeOrders.made == ["old", "new"]


def test_still_refused_after_reading_again_fails_as_auth(vault: dict[str, str]) -> None:
    reads: list[str] = []
    gateway = _gateway(vault, reads)
    FakeOrders.amazon_secret = "nobody-has-it"  # pragma: allowlist secret
    with pytest.raises(SpApiAuthFailed):
        gateway.get_order("S1", "1")
    assert reads == ["S1", "S1"]  # one retry, not a loop


def test_clients_are_remade_before_a_token_would_be_refreshed(
    vault: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = [1000.0]
    monkeypatch.setattr(spapi_gateway, "time", SimpleNamespace(monotonic=lambda: clock[0]))
    reads: list[str] = []
    gateway = _gateway(vault, reads)
    gateway.get_order("S1", "1")
    clock[0] += spapi_gateway.CREDENTIALS_MAX_AGE_S - 1
    gateway.get_order("S1", "1")
    assert reads == ["S1"]
    FakeOrders.amazon_secret = vault["secret"] = "new"
    clock[0] += 2  # older than an access token may live: remade with credentials read again
    gateway.get_order("S1", "1")
    assert reads == ["S1", "S1"] and FakeOrders.made == ["old", "new"]
    assert spapi_gateway.CREDENTIALS_MAX_AGE_S < 3600  # an LWA access token lives an hour


def test_every_plain_post_to_lwa_uses_the_token_endpoint_the_sp_api_clients_use() -> None:
    """The new secret's check and preflight's probe post where python-amazon-sp-api's token
    client would: LWA's own endpoint, or LWA_ENDPOINT with LWA's path when it names none."""
    assert spapi_gateway.lwa_token_url(None) == "https://api.amazon.com/auth/o2/token"
    assert spapi_gateway.lwa_token_url("https://127.0.0.1:8443") == "https://127.0.0.1:8443/auth/o2/token"
    assert (
        spapi_gateway.lwa_token_url("https://127.0.0.1:8443/lwa/token") == "https://127.0.0.1:8443/lwa/token"
    )
