"""The bill's arithmetic and its price table (issue 21): every price has a source and a date,
each meter is priced at its own line, and calls are classed as Azure bills them."""

from __future__ import annotations

import re
from datetime import date

import pytest

from local import bill
from local.bench_bill import cosmos_ru, diagnostic_records, timer_of
from local.call_meter import Call

TABLE = bill.load_prices()


def test_every_price_and_model_figure_has_a_source_and_a_date() -> None:
    entries = {**TABLE["prices"], **TABLE["model"]}
    assert entries
    for name, entry in entries.items():
        assert set(entry) >= {"value", "unit", "source", "date"}, name
        assert re.search(r"https://\S+", entry["source"]) or entry["source"].startswith("assumption"), name
        assert date.fromisoformat(entry["date"]) <= date(2026, 12, 31), name


def test_each_meter_is_priced_at_its_own_line() -> None:
    p = TABLE["prices"]
    usage = bill.Usage(
        cosmos_ru=2_000_000,
        blob_writes=10_000,
        queue_class2=20_000,
        key_vault_ops=10_000,
        executions=1_000_000,
        gb_seconds=1000,
        workspace_bytes=0.5e9,
    )
    lines = bill.cost(usage, TABLE)
    assert lines["cosmos_ru"] == pytest.approx(2 * p["cosmos_serverless_per_million_ru"]["value"])
    assert lines["blob_operations"] == pytest.approx(p["blob_hot_write_per_10k"]["value"])
    assert lines["queue_operations"] == pytest.approx(2 * p["queue_class2_per_10k"]["value"])
    assert lines["key_vault"] == pytest.approx(p["key_vault_per_10k"]["value"])
    assert lines["function_executions"] == pytest.approx(p["functions_flex_per_million_executions"]["value"])
    assert lines["function_gb_seconds"] == pytest.approx(1000 * p["functions_flex_gb_second"]["value"])
    per_gb = p["log_analytics_analytics_per_gb"]["value"] + p["sentinel_analytics_per_gb"]["value"]
    assert lines["workspace_ingestion"] == pytest.approx(0.5 * per_gb)
    assert bill.total(usage, TABLE) == pytest.approx(sum(lines.values()))


def test_usage_adds_and_scales_meter_by_meter() -> None:
    one = bill.Usage(cosmos_ru=10, executions=2)
    assert (one + one).scaled(0.5) == one
    assert bill.cost(bill.Usage(), TABLE) == dict.fromkeys(bill.cost(bill.Usage(), TABLE), 0.0)


def test_request_units_follow_the_documented_table_by_item_size() -> None:
    assert bill.ru("read", 900, TABLE) == 1.00
    assert bill.ru("write", 900, TABLE) == 4.95
    assert bill.ru("write", 3 * 1024, TABLE) == 6.67  # charged at the 4 KB row
    base = TABLE["model"]["cosmos_query_base_ru"]["value"]
    assert bill.ru("query", 1024, TABLE, items=3) == pytest.approx(base + 3 * 1.00)
    with pytest.raises(ValueError, match="unknown"):
        bill.ru("scan", 1, TABLE)


def _call(service: str, method: str, target: str, **headers: str) -> Call:
    return Call(service, "ship", "http", "127.0.0.1", 1, method, target, headers=headers)


def test_calls_are_classed_as_azure_bills_them() -> None:
    assert _call("blob", "PUT", "/acct/labels/r1/label.pdf").operation() == "write"
    assert _call("blob", "GET", "/acct/labels?restype=container&comp=list").operation() == "list"
    assert _call("blob", "GET", "/acct/labels/r1/label.pdf").operation() == "read"
    assert _call("blob", "DELETE", "/acct/labels/r1/label.pdf").operation() == "delete"
    assert _call("queue", "POST", "/acct/shipments/messages").operation() == "class1"
    assert _call("queue", "GET", "/acct/shipments/messages?numofmessages=8").operation() == "class2"
    query = _call("cosmos", "POST", "/dbs/f/colls/orders/docs", **{"x-ms-documentdb-isquery": "true"})
    assert query.operation() == "query"
    assert _call("cosmos", "GET", "/dbs/f/colls/orders").operation() == "metadata"


def test_cosmos_charges_come_from_the_header_when_the_emulator_sends_one() -> None:
    read = _call("cosmos", "GET", "/dbs/f/colls/orders/docs/o1")
    read.response_headers = {"content-length": "3000"}
    assert cosmos_ru(read, TABLE) == 1.14
    read.response_headers["x-ms-request-charge"] = "1.5"
    assert cosmos_ru(read, TABLE) == 1.5
    assert cosmos_ru(_call("cosmos", "GET", "/dbs/f/colls/orders"), TABLE) == 0.0


def test_only_the_logged_categories_make_diagnostic_records() -> None:
    assert diagnostic_records(_call("blob", "GET", "/acct/labels/r1/label.pdf")) == 1
    assert diagnostic_records(_call("blob", "PUT", "/acct/labels/r1/label.pdf")) == 0
    assert diagnostic_records(_call("queue", "GET", "/acct/shipments/messages")) == 0  # polling
    assert diagnostic_records(_call("queue", "POST", "/acct/shipments-poison/messages")) == 1
    assert diagnostic_records(_call("cosmos", "PUT", "/dbs/f/colls/orders/docs/o1")) == 1
    assert diagnostic_records(_call("spapi", "GET", "/orders/v0/orders")) == 0


def _envelope(**properties: str) -> dict[str, object]:
    return {"data": {"baseType": "MessageData", "baseData": {"properties": properties}}}


def test_telemetry_is_the_timers_or_the_orders_by_what_it_says() -> None:
    assert timer_of(_envelope(event="heartbeat", source="poll_orders")) == "poll_orders"
    assert timer_of(_envelope(event="invocation", operation="purge_expired")) == "purge_expired"
    assert timer_of(_envelope(event="invocation", operation="issue_invoice")) is None
    assert timer_of({"data": {}}) is None
