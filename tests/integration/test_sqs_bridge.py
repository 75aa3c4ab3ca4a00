"""Amazon's ORDER_CHANGE path over the wire (issue 19): the SP-API stand-in plays Amazon and sends
to the seller's SQS queue in moto's server (deployed from infra/aws/notifications.yaml),
drain_notifications moves the messages with credentials from STS AssumeRoleWithWebIdentity (moto
too) onto Azurite's order-notifications, and ingest_notification stores the orders.

Faults: the function killed (SIGKILL) between the Azure enqueue and the SQS delete, a body that is
no notification, a body too large for an Azure queue message, SQS and STS gone."""

from __future__ import annotations

import base64
import io
import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from azure.core.credentials import AccessToken
from azure.storage.queue import QueueClient

from local import aws_emulator
from local.aws_emulator import AwsEmulator
from local.pipeline import SELLER_ID, Pipeline
from local.run import notifications, summarise
from ops import cli as ops
from shared.app.composition import LocalOverrides
from shared.ingestion import sqs_bridge
from shared.ingestion.sqs_bridge import build_drain
from shared.orders.messages import ORDER_NOTIFICATIONS
from shared.storage.document_store import ORDERS, STATE
from tests.builders import unshipped_orders
from tests.fakes import NoNewSecrets

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
MARKETPLACES = ["A1PA6795UKMFR9", "A13V1IB3VIYZZH"]


def _orders(count: int, seed: int) -> list[dict[str, Any]]:
    return unshipped_orders(count, seed, MARKETPLACES)


def _azure_bodies(p: Pipeline, queue: str) -> list[str]:
    client = QueueClient.from_connection_string(p.env["STORAGE"], queue)
    return [base64.b64decode(m.content).decode() for m in client.peek_messages(max_messages=32)]


def _ops(p: Pipeline, action: str) -> list[tuple[str, str]]:
    """`python -m ops notifications <action>`: (destination state, subscription state) per seller."""
    out = io.StringIO()
    overrides = LocalOverrides(credential=p.vault.credential(), key_vault_options=p._vault_options())
    assert ops.main(["notifications", action], env=p.env, out=out, overrides=overrides) == 0
    rows: list[dict[str, Any]] = json.loads(out.getvalue())
    return [(r["destination"]["state"], r["subscription"]["state"]) for r in rows]


class _Token:
    """A managed identity's token for the audience, as azure-identity returns it."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.scopes: list[str] = []

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        self.scopes.extend(scopes)
        return AccessToken(self.token, int(time.time()) + 3600)


class _Sink:
    def __init__(self) -> None:
        self.sent: list[str] = []

    def send(
        self, queue: str, body: str, visibility_timeout_s: int = 0, time_to_live_s: int | None = None
    ) -> None:
        self.sent.append(body)


# ---- the whole path, in make run's world ---------------------------------------------------


def test_orders_arrive_through_sqs_and_subscribing_twice_changes_nothing(tmp_path: Path) -> None:
    orders = _orders(6, seed=31)
    with Pipeline(orders, tmp_path, notifications=True) as p:
        assert not {k for k in os.environ if k.startswith("AWS_") and "KEY" in k}
        assert not {k for k in p.env if "SECRET" in k.upper() and k.startswith("AWS")}
        assert [r["subscription"]["state"] for r in p.subscribed] == ["created"]
        assert [r["destination"]["state"] for r in p.subscribed] == ["created"]
        assert _ops(p, "subscribe") == [("exists", "exists")]  # run twice, it changes nothing
        assert p.subscribed[0]["subscription"]["marketplaceIds"] == p.marketplaces()
        assert p.amazon is not None
        assert p.amazon.calls["createDestination"] == p.amazon.calls["createSubscription"] == 1
        # Grantless calls carried the client-credentials token, the subscription the seller's.
        assert p.amazon.refused == {}
        result = p.run(limit=timedelta(days=3))
        summary, problems = summarise(p, result)
        via_sqs, sqs_problems = notifications(p)
        get_orders = p.spapi.calls["getOrder"]
        assert _ops(p, "status") == [("exists", "exists")]
        assert _ops(p, "unsubscribe") == [("deleted", "deleted")]
        assert _ops(p, "status") == [("absent", "absent")]
        assert _ops(p, "unsubscribe") == [("absent", "absent")]
        assert _ops(p, "subscribe") == [("created", "created")]
        assert p.amazon.refused == {}
    # Three days: every order shipped, none delivered yet (the whole life is make run's test).
    assert sqs_problems == [] and not [x for x in problems if "Amazon's models" in x]
    assert via_sqs is not None
    # Every order was announced (6), and each shipment turned it Shipped (ORDER_CHANGE again).
    shipped = summary["orders"]["shipped"]
    assert via_sqs["sentToSqsByAmazon"] == 6 + shipped
    # At least once: a message whose delete failed is moved again, and ingestion drops the repeat.
    assert via_sqs["movedByDrain"] == via_sqs["sentToSqsByAmazon"] + via_sqs["movedAgain"]
    assert via_sqs["ingestedNotifications"] == via_sqs["sentToSqsByAmazon"]
    assert via_sqs["ingestNotificationRuns"] >= via_sqs["movedByDrain"]  # throttled ones run again
    assert via_sqs["leftInSqs"] == via_sqs["deadLettered"] == via_sqs["schemaViolations"] == 0
    # The drain ran at :05, before the first hourly poll: the orders came in by notification.
    assert get_orders >= 6
    assert summary["orders"]["ingested"] == 6
    assert summary["amazonModels"]["byOperation"]["ORDER_CHANGE"] == via_sqs["sentToSqsByAmazon"]
    assert {"getDestinations", "createDestination", "getSubscription", "createSubscription"} <= set(
        summary["amazonModels"]["byOperation"]
    )


def test_a_crash_between_enqueue_and_delete_loses_nothing_and_the_duplicate_is_dropped(
    tmp_path: Path,
) -> None:
    orders = _orders(4, seed=32)
    with Pipeline(orders, tmp_path, notifications=True) as p:
        assert p.amazon is not None
        assert p.amazon.flush() == 4  # Amazon sent the four orders' ORDER_CHANGE to SQS
        queue_arn = p.aws_stack["QueueArn"]
        child_env = {**p.env, "__TOKEN": p.vault.token, "__SELLER": SELLER_ID}
        # The function dies (SIGKILL) right after its first enqueue, before any delete.
        killed = subprocess.run(  # noqa: S603 - this interpreter, our own script
            [sys.executable, "-c", _DIES_AFTER_ENQUEUE],
            input=json.dumps(child_env),
            capture_output=True,
            text=True,
            timeout=120,
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            check=False,
        )
        assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
        assert "enqueued" in killed.stdout and "survived" not in killed.stdout
        first = _azure_bodies(p, ORDER_NOTIFICATIONS)
        assert len(first) == 1
        depth = p.aws.queue_depth(queue_arn)
        assert depth["visible"] + depth["inFlight"] == 4  # nothing was deleted
        time.sleep(2.5)  # the killed run's visibility timeout (2 s) passes
        assert p.runtime.notifications is not None
        report = p.runtime.notifications.drain()
        assert (report.moved, report.deleted, report.failures) == (4, 4, [])
        assert p.aws.queue_depth(queue_arn) == {"visible": 0, "inFlight": 0}
        bodies = _azure_bodies(p, ORDER_NOTIFICATIONS)
        assert len(bodies) == 5 and bodies.count(first[0]) == 2  # one duplicate, nothing lost
        get_orders_before = p.spapi.calls["getOrder"]
        p.drain()  # the queue triggers: ingest_notification five times
        ingested = p.host.stats.invocations.get("ingest_notification", 0)
        failures = dict(p.host.stats.failures)
        markers = [d for d in p.documents(STATE) if str(d.get("id", "")).startswith("notification|")]
        stored = p.documents(ORDERS)
        get_orders = p.spapi.calls["getOrder"] - get_orders_before
        poisoned = _azure_bodies(p, f"{ORDER_NOTIFICATIONS}-poison")
    assert ingested == 5 and failures == {} and poisoned == []
    assert len(stored) == 4 and len(markers) == 4
    assert get_orders == 4  # the duplicate found its NotificationId done and fetched nothing


_DIES_AFTER_ENQUEUE = """
import json, os, signal, sys, time
from datetime import UTC, datetime
from azure.core.credentials import AccessToken
from azure.storage.queue import QueueServiceClient
from shared.ingestion.sqs_bridge import build_drain
from shared.storage.queues import StorageQueues

env = json.loads(sys.stdin.read())

class Token:
    def get_token(self, *scopes, **kwargs):
        return AccessToken(env["__TOKEN"], int(time.time()) + 3600)

class DiesAfterEnqueue:
    def __init__(self, inner):
        self.inner = inner

    def send(self, queue, body, visibility_timeout_s=0):
        self.inner.send(queue, body, visibility_timeout_s)
        print("enqueued", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)

queues = StorageQueues(QueueServiceClient.from_connection_string(env["STORAGE"]))
class NoNewSecrets:
    def handle(self, body, now):
        raise AssertionError("no new LWA secret is sent in this test")

build_drain(
    env, [env["__SELLER"]], Token(), DiesAfterEnqueue(queues),
    secrets=NoNewSecrets(), clock=lambda: datetime.now(UTC), visibility_s=2,
).drain()
print("survived", flush=True)
"""


def test_a_body_that_is_no_notification_is_moved_and_poisoned_with_its_reason(tmp_path: Path) -> None:
    with Pipeline(_orders(2, seed=33), tmp_path, notifications=True) as p:
        p.aws.send(p.aws_stack["QueueArn"], "this is not a notification")
        assert p.runtime.notifications is not None
        report = p.runtime.notifications.drain()
        assert (report.moved, report.not_order_change, report.deleted) == (1, 1, 1)
        p.drain()
        poisoned = [json.loads(b) for b in _azure_bodies(p, f"{ORDER_NOTIFICATIONS}-poison")]
    assert [r["reason"] for r in poisoned] == ["notification_not_json"]
    assert "this is not" not in json.dumps(poisoned)  # the poison record keeps no text of it


# ---- the bridge alone against moto ------------------------------------------------------------


_NO_SECRETS: dict[str, Any] = {"secrets": NoNewSecrets(), "clock": lambda: datetime.now(UTC)}


def _stack(aws: AwsEmulator, seller: str, **overrides: str) -> tuple[dict[str, str], dict[str, str]]:
    outputs = aws.deploy_notifications(seller, overrides=overrides)
    return outputs, aws.app_settings({seller: outputs})


def test_a_body_too_large_for_azure_is_left_to_the_dead_letter_queue_and_reported(aws: AwsEmulator) -> None:
    outputs, env = _stack(aws, "A1TOOLARGE", MaxReceiveCount="5")
    aws.send(outputs["QueueArn"], json.dumps({"NotificationType": "ORDER_CHANGE", "pad": "x" * 60_000}))
    sink = _Sink()
    drain = build_drain(
        env, ["A1TOOLARGE"], _Token("header.payload.sig"), sink, **_NO_SECRETS, visibility_s=1
    )
    reports = []
    for _ in range(6):  # SQS dead-letters it on the receive after the fifth
        reports.append(drain.drain())
        time.sleep(1.1)
    assert sink.sent == []
    assert sum(r.too_large for r in reports) == 5
    assert reports[-1].dead_letter_messages == 1
    assert aws.queue_depth(outputs["DeadLetterQueueArn"])["visible"] == 1


def test_several_sellers_each_drain_their_own_queue(aws: AwsEmulator) -> None:
    first, _ = _stack(aws, "A1FIRST")
    second, _ = _stack(aws, "A2SECOND")
    assert second["OidcProviderArn"] == first["OidcProviderArn"]  # one provider per issuer
    env = aws.app_settings({"A1FIRST": first, "A2SECOND": second})
    aws.send(first["QueueArn"], json.dumps({"NotificationType": "ORDER_CHANGE", "n": 1}))
    aws.send(second["QueueArn"], json.dumps({"NotificationType": "ORDER_CHANGE", "n": 2}))
    aws.send(second["QueueArn"], json.dumps({"NotificationType": "ORDER_CHANGE", "n": 3}))
    sink, token = _Sink(), _Token("header.payload.sig")
    report = build_drain(env, ["A1FIRST", "A2SECOND"], token, sink, **_NO_SECRETS).drain()
    assert sorted(json.loads(b)["n"] for b in sink.sent) == [1, 2, 3]
    assert (report.sellers, report.moved, report.deleted, report.failures) == (2, 3, 3, [])
    assert token.scopes == [f"{aws_emulator.LOCAL_AUDIENCE}/.default"] * 2  # one STS exchange each


def test_sts_and_sqs_unavailable_are_typed_transient_errors(tmp_path: Path) -> None:
    emulator = aws_emulator.start(tmp_path)
    try:
        _, env = _stack(emulator, "A1OUTAGE")
        drain = build_drain(env, ["A1OUTAGE"], _Token("header.payload.sig"), _Sink(), **_NO_SECRETS)
        assert drain.drain().failures == []  # credentials fetched and cached
    finally:
        aws_emulator.stop(emulator)
    (failure,) = drain.drain().failures
    assert failure.transient and failure.code == "sqs_unavailable"
    fresh = build_drain(env, ["A1OUTAGE"], _Token("header.payload.sig"), _Sink(), **_NO_SECRETS)
    (failure,) = fresh.drain().failures
    assert failure.transient and failure.code == "sts_unavailable"
    assert sqs_bridge.DRAIN_BUDGET_S < 60
