"""`make run`: one command that takes orders through their whole life on the local stand-ins.

    python -m local.run [--orders FILE] [--out DIR]

FILE is a searchOrders response body ({"orders": [...]}); by default local/sample-orders.json.
DIR receives summary.json, telemetry.jsonl, app.log, store-before-purge.jsonl,
store-after-purge.jsonl and invoices/; by default a new temporary directory (its path is printed).
Exits 1 when an order is not in a final state, the stage counts disagree, or an exchange with
the SP-API stand-ins broke Amazon's models (../shared/amazon-models, local/amazon_models.py):
each kind of violation is printed with its operation and JSON pointer, never a value.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import warnings
from collections import Counter
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

from azure.storage.queue import TextBase64DecodePolicy

from local.amazon_models import MODELS_DIR
from local.pipeline import Pipeline, RunResult

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "local" / "sample-orders.json"
EXPECTED_SOURCE = {"amazon_delivered": "amazon", "carrier_delivered": "carrier", "never_confirmed": "bound"}


def _audit_purges(p: Pipeline) -> list[dict[str, Any]]:
    from shared.storage.document_store import AUDIT

    return [d for d in p.documents(AUDIT) if d.get("action") == "purged"]


def _needs_person(purges: list[dict[str, Any]], remaining: list[dict[str, Any]]) -> Counter[str]:
    """Why orders went to a person, by reason code: an order still stored, or its purge's
    audit record (which keeps the code)."""
    reasons: Counter[str] = Counter()
    reasons.update(str(d["details"]["attention"]) for d in purges if d["details"].get("attention"))
    reasons.update(str(d["attention"]) for d in remaining if d.get("attention"))
    return reasons


def _poison(p: Pipeline) -> list[dict[str, str]]:
    found = []
    for queue in sorted(p.host.queue_names()):
        client = p.queue_service.get_queue_client(
            f"{queue}-poison", message_decode_policy=TextBase64DecodePolicy()
        )
        for message in client.peek_messages(max_messages=32):
            reason = "unknown"
            try:
                body = json.loads(message.content)
                reason = str(body.get("reason") or body.get("reasonCode") or reason)
            except ValueError:
                reason = "undecodable"
            found.append({"queue": queue, "reason": reason})
    return found


def _telemetry_operations(path: Path) -> Counter[str]:
    counts: Counter[str] = Counter()
    for line in path.read_text(encoding="utf-8").splitlines():
        envelope = json.loads(line)
        props = (envelope.get("data", {}).get("baseData", {}) or {}).get("properties") or {}
        if props.get("operation") and props.get("outcome"):
            counts[f"{props['operation']}.{props['outcome']}"] += 1
    return counts


def _drain_counts(path: Path) -> Counter[str]:
    """The counts drain_notifications recorded over the run (its invocation records, once each)."""
    counts: Counter[str] = Counter()
    seen: set[str] = set()  # an exporter retry can deliver a record twice
    for line in path.read_text(encoding="utf-8").splitlines():
        props = (json.loads(line).get("data", {}).get("baseData", {}) or {}).get("properties") or {}
        if props.get("operation") == "drain_notifications" and props.get("event") == "invocation":
            if props.get("invocation_id") in seen:
                continue
            seen.add(str(props.get("invocation_id")))
            for name, value in props.items():
                if name.startswith("count_"):
                    counts[name.removeprefix("count_")] += int(value)
    return counts


def notifications(p: Pipeline) -> tuple[dict[str, Any] | None, list[str]]:
    """Amazon's ORDER_CHANGE path: SP-API stand-in -> SQS (moto) -> drain_notifications ->
    order-notifications -> ingest_notification, counted at each hop from its own evidence."""
    from shared.storage.document_store import STATE

    if p.amazon is None:
        return None, []
    drained = _drain_counts(p.out / "telemetry.jsonl")
    # ingest_notification's own record of each notification it finished (NotificationId marker).
    markers = sum(1 for d in p.documents(STATE) if str(d.get("id", "")).startswith("notification|"))
    queue = p.aws.queue_depth(p.aws_stack["QueueArn"])
    dead = p.aws.queue_depth(p.aws_stack["DeadLetterQueueArn"])
    summary = {
        "subscription": [row["subscription"]["state"] for row in p.subscribed],
        "sentToSqsByAmazon": p.amazon.delivered,
        "drainRuns": p.host.stats.invocations.get("drain_notifications", 0),
        "movedByDrain": drained["moved"],
        "deletedFromSqs": drained["deleted"],
        "ingestNotificationRuns": p.host.stats.invocations.get("ingest_notification", 0),
        "ingestedNotifications": markers,
        "leftInSqs": queue["visible"] + queue["inFlight"],
        "deadLettered": dead["visible"] + dead["inFlight"],
        "schemaViolations": p.amazon.schema_violations,
    }
    summary["movedAgain"] = max(summary["movedByDrain"] - summary["sentToSqsByAmazon"], 0)
    return summary, notification_problems(summary)


def notification_problems(summary: Mapping[str, Any]) -> list[str]:
    """What the notification counts prove wrong. The drain is at least once: a message whose
    delete failed (moto answering slowly on a loaded machine, past the client's read timeout)
    comes back after its visibility timeout and is moved again, and ingest_notification drops
    the repeat by its NotificationId. So the moves may exceed the notifications sent
    (`movedAgain`); what must hold is that each one sent was finished exactly once (the distinct
    NotificationId markers) and that none is left in SQS."""
    sent = summary["sentToSqsByAmazon"]
    problems = []
    if not sent:
        problems.append("Amazon's stand-in sent no ORDER_CHANGE notification")
    if summary["movedByDrain"] < sent:
        problems.append("fewer notifications moved than Amazon sent to SQS")
    if summary["leftInSqs"] or summary["deadLettered"]:
        problems.append("notifications left in SQS or dead-lettered")
    if summary["ingestedNotifications"] != sent:
        problems.append("ingest_notification did not finish each notification sent exactly once")
    return problems


def judged(p: Pipeline) -> tuple[dict[str, Any], list[str]]:
    """What Amazon's models judged in the run, and the problems: a violation, or no models."""
    exchanges, violations = p.judge.snapshot()
    summary = {
        "exchanges": exchanges,
        "byOperation": dict(sorted(p.judge.exchanges.items())),
        "violations": len(violations),
    }
    if p.judge.missing:
        return summary, [f"Amazon's models not found in {MODELS_DIR}: no exchange was judged"]
    if violations:
        lines = p.judge.report().splitlines()
        return summary, [f"{len(violations)} violations of Amazon's models", *lines]
    return summary, []


def summarise(p: Pipeline, result: RunResult) -> tuple[dict[str, Any], list[str]]:
    """The summary and the list of problems (empty when every count agrees)."""
    from shared.storage.document_store import ORDERS

    purges = _audit_purges(p)
    remaining = p.documents(ORDERS)
    stages = Counter(str(d["details"].get("stage")) for d in purges)
    stages.update(str(d.get("stage")) for d in remaining)
    # Cancelled orders were never delivered: they have no delivery source; a returned one was
    # never delivered either (its source reported the return).
    sources = Counter(
        str(d["details"]["deliverySource"])
        for d in purges
        if d["details"].get("deliverySource") and d["details"].get("stage") == "delivered"
    )
    confirmed = {c.order_id for c in p.spapi.confirmations}
    orders = {
        "input": len(p.orders),
        "ingested": len(purges) + len(remaining),
        "shipped": len(p.observed.labels),
        "confirmedAtAmazon": len(confirmed),
        "invoiced": len(p.observed.invoices),
        "delivered": stages["delivered"],
        "returned": stages["returned"],
        "cancelled": stages["cancelled"],
        "purged": len(purges),
        "needs_attention": stages["needs_attention"],
        "notFinal": sum(1 for d in remaining if d.get("stage") != "needs_attention"),
        "deliverySource": dict(sources),
        "needsPerson": dict(_needs_person(purges, remaining)),
    }
    scenarios = Counter(p.world.scenario.values())
    problems = []
    if orders["ingested"] != orders["input"]:
        problems.append(f"ingested {orders['ingested']} of {orders['input']} orders")
    if orders["notFinal"]:
        problems.append(f"{orders['notFinal']} orders not in a final state")
    if orders["shipped"] != orders["confirmedAtAmazon"]:
        problems.append("labels stored and confirmations at Amazon differ")
    if orders["cancelled"] != scenarios["cancelled"]:
        problems.append("cancelled count differs from cancelled orders")
    if orders["returned"] > scenarios["carrier_returned"] or (
        not orders["needs_attention"] and orders["returned"] != scenarios["carrier_returned"]
    ):
        problems.append("returned count differs from the parcels the carriers sent back")
    # An order a person must look at (a country no rule covers, tax Amazon did not report...) is
    # rightly not delivered by its scenario's source: every source may fall short of its
    # scenario only by those orders, and together they must account for every other order.
    held = orders["needs_attention"]
    for kind, source in EXPECTED_SOURCE.items():
        if sources[source] > scenarios[kind] or (not held and sources[source] != scenarios[kind]):
            problems.append(f"{kind}: {scenarios[kind]} orders, {sources[source]} purged by source {source}")
    if sum(sources.values()) + held < sum(scenarios[kind] for kind in EXPECTED_SOURCE):
        problems.append("orders neither delivered nor held for a person")
    duplicated = [r for r, n in {**p.observed.labels, **p.observed.invoices}.items() if n > 1]
    if duplicated or len(p.spapi.confirmations) != len(confirmed):
        problems.append("a label, invoice or confirmation was duplicated")
    poison = _poison(p)
    models, model_problems = judged(p)
    problems += model_problems
    via_sqs, sqs_problems = notifications(p)
    problems += sqs_problems
    summary = {
        "orders": orders,
        "scenarios": dict(scenarios),
        "spapiCalls": dict(p.spapi.calls),
        "amazonModels": models,
        **({"notificationsViaSqs": via_sqs} if via_sqs is not None else {}),
        "carrierLabels": {n: c.purchases for n, c in p.carriers.all().items()},
        "invoiceFeeds": len(p.feeds.feeds),
        "storeOperations": dict(sorted(p.store.counts.items())),
        "functionInvocations": dict(p.host.stats.invocations),
        "functionFailures": dict(p.host.stats.failures),
        "telemetryOperations": dict(_telemetry_operations(p.out / "telemetry.jsonl")),
        "poisonMessages": poison,
        # Poison messages whose time-to-live passed on the simulated clock (no longer listed).
        "poisonMessagesExpired": p.host.stats.expired_poison,
        "recoverabilityDays": p.runtime.settings.recoverability_days,
        "simulatedDays": round(result.simulated / timedelta(days=1), 2),
        "wallSeconds": round(result.wall_s, 1),
        "cpuSeconds": round(result.cpu_s, 1),
        "problems": problems,
    }
    return summary, problems


def _table(summary: dict[str, Any]) -> str:
    orders = summary["orders"]
    rows = [(k, v) for k, v in orders.items() if not isinstance(v, dict)]
    rows += [(f"delivered via {k}", v) for k, v in orders["deliverySource"].items()]
    rows += [(f"needs a person: {k}", v) for k, v in sorted(orders["needsPerson"].items())]
    rows += [
        ("poison messages", len(summary["poisonMessages"])),
        ("poison messages expired", summary["poisonMessagesExpired"]),
        *(
            [
                (
                    "ORDER_CHANGE via SQS: sent, drained (again), ingested",
                    "{sentToSqsByAmazon}, {movedByDrain} ({movedAgain}), {ingestedNotifications}".format(
                        **summary["notificationsViaSqs"]
                    ),
                )
            ]
            if "notificationsViaSqs" in summary
            else []
        ),
        ("SP-API calls", sum(summary["spapiCalls"].values())),
        ("exchanges judged by Amazon's models", summary["amazonModels"]["exchanges"]),
        ("violations of Amazon's models", summary["amazonModels"]["violations"]),
        ("store writes", sum(v for k, v in summary["storeOperations"].items() if k.endswith(".write"))),
        ("simulated days", summary["simulatedDays"]),
        ("wall seconds", summary["wallSeconds"]),
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"  {k:<{width}}  {v}" for k, v in rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=Path, default=SAMPLE)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--days", type=float, default=60.0, help="simulated-time limit")
    args = parser.parse_args(argv)
    out = args.out or Path(tempfile.mkdtemp(prefix="make-run-"))
    sys.stdout.write(f"output: {out}\n")
    orders = json.loads(args.orders.read_text())["orders"]
    # The Cosmos emulator's TLS is not verified (COSMOS_VERIFY_TLS=false); one warning per call.
    warnings.filterwarnings("ignore", message="Unverified HTTPS request")
    with Pipeline(orders, out, notifications=True, expire_poison=True) as pipeline:
        result = pipeline.run(limit=timedelta(days=args.days))
        summary, problems = summarise(pipeline, result)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    sys.stdout.write(_table(summary) + "\n")
    for problem in problems:
        sys.stdout.write(f"PROBLEM: {problem}\n")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
