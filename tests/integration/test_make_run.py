"""`make run` on a small order set: every scenario, every order to a final state, no PII left."""

from __future__ import annotations

import base64
import json
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from local import sample_orders
from local.pipeline import SCENARIOS, Pipeline
from local.run import summarise

pytestmark = pytest.mark.integration

MARKETPLACES = ["A1PA6795UKMFR9", "A13V1IB3VIYZZH", "APJ6JRA9NG5V4", "A1F83G8C2ARO7P"]


def _orders(count: int) -> list[dict[str, Any]]:
    return sample_orders.generate(
        count,
        seed=99,
        start=datetime(2026, 10, 1, tzinfo=UTC),
        span=timedelta(hours=6),
        marketplaces=MARKETPLACES,
        afn_share=0.0,
        statuses={"UNSHIPPED": 1.0},
    )


def _pii_tokens(orders: list[dict[str, Any]]) -> set[str]:
    return {value for order in orders for value in sample_orders.pii_values(order)}


def _queue_texts(pipeline: Pipeline) -> list[str]:
    texts = []
    for name in pipeline.host.queue_names():
        for queue in (name, f"{name}-poison"):
            client = pipeline.queue_service.get_queue_client(queue)
            for message in client.peek_messages(max_messages=32):
                texts.append(base64.b64decode(message.content).decode("utf-8", "replace"))
    return texts


def test_every_order_lives_its_whole_life(tmp_path: Path) -> None:
    orders = _orders(12)
    with Pipeline(orders, tmp_path) as pipeline:
        result = pipeline.run(limit=timedelta(days=40))
        summary, problems = summarise(pipeline, result)
        queue_texts = _queue_texts(pipeline)
        labels, invoices = dict(pipeline.observed.labels), dict(pipeline.observed.invoices)
        threads = {t.name for t in threading.enumerate()}

    assert problems == []
    # The exporter's own calls to Microsoft are off: no remote-configuration thread (the run
    # stays on loopback; shared.telemetry.invocations.EXPORTER_CALLS_HOME_OFF).
    assert "ConfigurationWorker" not in threads
    counts = summary["orders"]
    scenarios = Counter(summary["scenarios"])
    assert set(scenarios) == set(SCENARIOS)
    assert counts["ingested"] == counts["purged"] == 12
    assert counts["notFinal"] == 0 and counts["needs_attention"] == 0
    assert counts["cancelled"] == scenarios["cancelled"]
    shipped = 12 - scenarios["cancelled"]
    assert counts["shipped"] == counts["confirmedAtAmazon"] == counts["invoiced"] == shipped
    # A parcel the carrier sent back is returned, never delivered.
    assert counts["returned"] == scenarios["carrier_returned"] > 0
    assert counts["delivered"] == shipped - counts["returned"]
    assert counts["deliverySource"]["amazon"] == scenarios["amazon_delivered"]
    assert counts["deliverySource"]["carrier"] == scenarios["carrier_delivered"]
    assert counts["deliverySource"]["bound"] == scenarios["never_confirmed"]
    assert set(labels.values()) == {1} and set(invoices.values()) == {1}
    assert len(list((tmp_path / "invoices").glob("*.pdf"))) == shipped
    assert summary["poisonMessages"] == [] and summary["poisonMessagesExpired"] == 0
    # Amazon's models judged every exchange with the SP-API stand-ins (local/amazon_models.py).
    models = summary["amazonModels"]
    print(f"Amazon's models judged {models['exchanges']} exchanges of the run: {models['byOperation']}")
    assert models["violations"] == 0
    assert models["exchanges"] == sum(models["byOperation"].values()) > 0
    assert {"searchOrders", "confirmShipment", "createFeedDocument", "createFeed", "getFeed"} <= set(
        models["byOperation"]
    )

    tokens = _pii_tokens(orders)
    for name in ("telemetry.jsonl", "app.log", "store-after-purge.jsonl", "store-before-purge.jsonl"):
        text = (tmp_path / name).read_text(encoding="utf-8")
        assert text, name
        assert not [t for t in tokens if t in text], name
    assert not [t for t in tokens for q in queue_texts if t in q]
    before = [json.loads(line) for line in (tmp_path / "store-before-purge.jsonl").read_text().splitlines()]
    # The blobs' metadata (purchases, invoice entries) was in what the scan above read.
    assert {d["blob"] for d in before if d.get("metadata")} >= {"labels", "invoices"}
    after = [json.loads(line) for line in (tmp_path / "store-after-purge.jsonl").read_text().splitlines()]
    assert not [d for d in after if d.get("cosmos") == "orders" or d.get("blob") in ("labels", "invoices")]
