"""`python -m ops notifications subscribe|status|unsubscribe`: Amazon's ORDER_CHANGE subscription
of each seller that `NOTIFICATION_QUEUES` lists, through python-amazon-sp-api's Notifications
client (the destination calls are grantless: the LWA app credentials alone).

- `subscribe` reads the destinations and the seller's subscription first, then creates only what
  is missing: the destination for the seller's queue ARN, and an ORDER_CHANGE subscription,
  payload version 1.0, with an event filter for the seller's marketplaces. Run twice, it changes
  nothing. A subscription that points at another destination or filters other marketplaces is
  reported (exit 1), never replaced: `unsubscribe`, then `subscribe`.
- `status` only reads.
- `unsubscribe` deletes the seller's ORDER_CHANGE subscription and its queue's destination.

Prints ids, ARNs and states (JSON), never a credential. Exit 1 when something needs a person.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any, TextIO

ORDER_CHANGE = "ORDER_CHANGE"
PAYLOAD_VERSION = "1.0"
ACTIONS = ("subscribe", "status", "unsubscribe")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=ACTIONS)
    parser.add_argument("--seller", help="one seller id (default: every seller NOTIFICATION_QUEUES lists)")


class NotificationsApi:
    """One seller's Notifications client, answers as plain payloads; None for a 404."""

    def __init__(self, client: Any) -> None:
        self._client = client

    @staticmethod
    def _payload(call: Any) -> Any:
        from sp_api.base.exceptions import SellingApiNotFoundException

        try:
            return call().payload
        except SellingApiNotFoundException:
            return None

    def destinations(self) -> list[dict[str, Any]]:
        found = self._payload(self._client.get_destinations)
        return [d for d in found or [] if isinstance(d, dict)]

    def create_destination(self, name: str, arn: str) -> dict[str, Any]:
        created: dict[str, Any] = self._client.create_destination(name=name, arn=arn).payload
        return created

    def delete_destination(self, destination_id: str) -> None:
        self._client.delete_destination(destination_id)

    def subscription(self) -> dict[str, Any] | None:
        found = self._payload(
            lambda: self._client.get_subscription(ORDER_CHANGE, payloadVersion=PAYLOAD_VERSION)
        )
        return found if isinstance(found, dict) else None

    def create_subscription(self, destination_id: str, marketplace_ids: list[str]) -> dict[str, Any]:
        created: dict[str, Any] = self._client.create_subscription(
            ORDER_CHANGE,
            destination_id=destination_id,
            payload_version=PAYLOAD_VERSION,
            processingDirective={
                "eventFilter": {"eventFilterType": ORDER_CHANGE, "marketplaceIds": marketplace_ids}
            },
        ).payload
        return created

    def delete_subscription(self, subscription_id: str) -> None:
        self._client.delete_notification_subscription(ORDER_CHANGE, subscription_id)


def _client(env: Mapping[str, str], seller_id: str) -> NotificationsApi:
    from sp_api.api import Notifications
    from sp_api.base.credential_provider import FromCodeCredentialProvider

    from ops.cli import _clients
    from shared.crypto.secrets import SecretValues
    from shared.ingestion.spapi_gateway import QUIET_LOGGERS, _marketplace, token_client_class
    from shared.settings import read_settings
    from shared.telemetry.redaction import quiet_loggers

    quiet_loggers(QUIET_LOGGERS)
    settings = read_settings(env)  # the verb has loaded them; `ops preflight` reads them
    seller = settings.seller(seller_id)
    if seller is None:
        raise SystemExit(f"seller {seller_id} is not in SELLERS")
    secrets, _ = _clients(env, settings)
    values = SecretValues(secrets)
    client = Notifications(
        _marketplace(seller),
        refresh_token=values(seller.refresh_token_secret),
        credentials={
            "lwa_app_id": values(settings.lwa_client_id_secret),
            "lwa_client_secret": values(settings.lwa_client_secret_secret),
        },
        credential_providers=[FromCodeCredentialProvider],
        auth_token_client_class=token_client_class(settings.lwa_endpoint),
        verify=settings.spapi_verify_tls,
        timeout=30,
    )
    if settings.spapi_endpoint:
        client.endpoint = settings.spapi_endpoint.rstrip("/")
    return NotificationsApi(client)


def _destination_for(api: NotificationsApi, arn: str) -> dict[str, Any] | None:
    for destination in api.destinations():
        if ((destination.get("resource") or {}).get("sqs") or {}).get("arn") == arn:
            return destination
    return None


def _subscription_state(
    subscription: Mapping[str, Any], destination: Mapping[str, Any] | None, marketplaces: list[str]
) -> str:
    if destination is None or subscription.get("destinationId") != destination.get("destinationId"):
        return "points_elsewhere"
    event_filter = (subscription.get("processingDirective") or {}).get("eventFilter") or {}
    if sorted(event_filter.get("marketplaceIds") or []) != sorted(marketplaces):
        return "filter_differs"
    return "exists"


def subscribe(api: NotificationsApi, seller_id: str, arn: str, marketplaces: list[str]) -> dict[str, Any]:
    destination = _destination_for(api, arn)
    destination_state = "exists"
    if destination is None:
        destination = api.create_destination(f"mfn-fulfilment-{seller_id}", arn)
        destination_state = "created"
    subscription = api.subscription()
    if subscription is None:
        subscription = api.create_subscription(str(destination["destinationId"]), marketplaces)
        subscription_state = "created"
    else:
        subscription_state = _subscription_state(subscription, destination, marketplaces)
    return _row(
        seller_id,
        arn,
        destination=destination,
        destination_state=destination_state,
        subscription=subscription,
        subscription_state=subscription_state,
    )


def status(api: NotificationsApi, seller_id: str, arn: str, marketplaces: list[str]) -> dict[str, Any]:
    destination = _destination_for(api, arn)
    subscription = api.subscription()
    subscription_state = (
        "absent" if subscription is None else _subscription_state(subscription, destination, marketplaces)
    )
    return _row(
        seller_id,
        arn,
        destination=destination,
        destination_state="absent" if destination is None else "exists",
        subscription=subscription,
        subscription_state=subscription_state,
    )


def unsubscribe(api: NotificationsApi, seller_id: str, arn: str, marketplaces: list[str]) -> dict[str, Any]:
    subscription = api.subscription()
    subscription_state = "absent"
    if subscription is not None:
        api.delete_subscription(str(subscription["subscriptionId"]))
        subscription_state = "deleted"
    destination = _destination_for(api, arn)
    destination_state = "absent"
    if destination is not None:
        api.delete_destination(str(destination["destinationId"]))
        destination_state = "deleted"
    return _row(
        seller_id,
        arn,
        destination=destination,
        destination_state=destination_state,
        subscription=subscription,
        subscription_state=subscription_state,
    )


def _row(
    seller_id: str,
    arn: str,
    *,
    destination: Mapping[str, Any] | None,
    destination_state: str,
    subscription: Mapping[str, Any] | None,
    subscription_state: str,
) -> dict[str, Any]:
    event_filter = ((subscription or {}).get("processingDirective") or {}).get("eventFilter") or {}
    return {
        "seller": seller_id,
        "queueArn": arn,
        "destination": {"state": destination_state, "id": (destination or {}).get("destinationId")},
        "subscription": {
            "state": subscription_state,
            "id": (subscription or {}).get("subscriptionId"),
            "payloadVersion": (subscription or {}).get("payloadVersion"),
            "marketplaceIds": event_filter.get("marketplaceIds"),
        },
    }


NEEDS_A_PERSON = frozenset({"points_elsewhere", "filter_differs"})


def cmd_notifications(args: argparse.Namespace, env: Mapping[str, str], out: TextIO) -> int:
    """Amazon's ORDER_CHANGE subscription per seller: subscribe (idempotent), status, unsubscribe."""
    from ops.cli import _print_json
    from shared.ingestion.sqs_bridge import load_bridge_settings
    from shared.settings import load_settings

    settings = load_settings(env)
    bridge = load_bridge_settings(env, [s.seller_id for s in settings.sellers])
    queues = [q for q in bridge.queues if args.seller in (None, q.seller_id)]
    if not queues:
        out.write(
            "NOTIFICATION_QUEUES lists no queue for that seller: deploy infra/aws/notifications.yaml first\n"
        )
        return 1
    action = {"subscribe": subscribe, "status": status, "unsubscribe": unsubscribe}[args.action]
    rows = []
    for queue in queues:
        seller = settings.seller(queue.seller_id)
        marketplaces = list(seller.marketplace_ids) if seller is not None else []
        rows.append(action(_client(env, queue.seller_id), queue.seller_id, queue.queue.arn, marketplaces))
    _print_json(out, rows)
    return 1 if any(r["subscription"]["state"] in NEEDS_A_PERSON for r in rows) else 0
