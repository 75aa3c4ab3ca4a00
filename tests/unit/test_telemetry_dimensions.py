"""The Sentinel rules and the operations workbook read the custom dimensions the app really emits.

Chain checked: every `Properties.<name>` (or `customDimensions.<name>`) a rule in infra/rules or
the workbook reads is declared in infra/rules/dimensions.json; every declared name is emitted by
shared/telemetry/invocations.py (`EMITTED_DIMENSIONS`, or a `count_<name>` counter some function records) or
by the poison record of shared/telemetry/message_failures.py (`POISON_DIMENSIONS`); and those constants
match what the code actually logs. The values the queries compare `event` and `outcome` with are
values the code writes."""

import ast
import json
import logging
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from azure.functions.queue import QueueMessage

from shared.errors import InvalidInput, TransientError
from shared.orders.messages import PRIVACY_REQUESTS
from shared.telemetry.invocations import COUNTER_PREFIX, EMITTED_DIMENSIONS, AppTelemetry
from shared.telemetry.message_failures import POISON_DIMENSIONS, MessageFailures

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "infra" / "rules"
WORKBOOK = ROOT / "infra" / "workbooks" / "operations.json"
BAG = re.compile(r"\b(?:Properties|customDimensions)\b")
READ = re.compile(r"\b(?:Properties|customDimensions)\s*(?:\.\s*(\w+)|\[\s*['\"](\w+)['\"]\s*\])")
# Stringifying the whole bag (pii-in-traces scans it for buyer data) reads no particular name,
# nor does dropping named keys from it first (the generated identifiers).
WHOLE_BAG = re.compile(r"tostring\(\s*(?:Properties|customDimensions)\s*\)")
WITHOUT_KEYS = re.compile(r"bag_remove_keys\(\s*$")
COMPARED = re.compile(
    r"tostring\(\s*Properties\.(event|outcome)\s*\)\s*(?:==\s*(\"[^\"]*\")|in\s*\(([^)]*)\))"
)


def _queries() -> dict[str, str]:
    """Every query text: each .kql file (comment lines dropped) and each workbook query."""
    queries = {}
    for path in sorted(RULES.glob("*.kql")):
        lines = path.read_text(encoding="utf-8").splitlines()
        queries[path.name] = "\n".join(line for line in lines if not line.lstrip().startswith("//"))
    workbook = json.loads(WORKBOOK.read_text(encoding="utf-8"))
    for item in workbook["items"]:
        query = item.get("content", {}).get("query")
        if query:
            queries[f"workbook:{item['name']}"] = query
    return queries


def names_read(text: str) -> set[str]:
    """Dimension names a query reads; raises on any access to the bag this check cannot follow
    (a computed key, bag_unpack, ...), so a rule cannot slip past it."""
    for match in BAG.finditer(text):
        start = match.start()
        before = text[max(0, start - 20) : start]
        if not (
            READ.match(text, start) or WHOLE_BAG.match(text, max(0, start - 9)) or WITHOUT_KEYS.search(before)
        ):
            context = text[max(0, start - 20) : start + 40]
            raise ValueError(f"unchecked read of the dimension bag: {context!r}")
    return {a or b for a, b in READ.findall(text)}


def _declared() -> set[str]:
    return set(json.loads((RULES / "dimensions.json").read_text(encoding="utf-8"))["dimensions"])


def _recorded_counters() -> set[str]:
    """`count_<name>` for every `record.count("<name>", ...)` in functions/."""
    names = set()
    for path in (ROOT / "functions").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "count"
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id == "record"
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)
            ):
                names.add(COUNTER_PREFIX + node.args[0].value)
    return names


# ---- what the code really logs -----------------------------------------------------------


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.dims: list[dict[str, object]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.dims.append(dict(getattr(record, "custom_dimensions", {})))


class _Sender:
    def send(
        self, queue: str, body: str, visibility_timeout_s: int = 0, time_to_live_s: int | None = None
    ) -> None:
        pass


def _message(dequeue_count: int) -> QueueMessage:
    return QueueMessage(id="msg-1", body=b"{}", dequeue_count=dequeue_count)


@pytest.fixture
def capture() -> Iterator[_Capture]:
    handler = _Capture()
    logger = logging.getLogger("test.telemetry_dimensions")
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)


def _telemetry_records(capture: _Capture) -> list[dict[str, object]]:
    telemetry = AppTelemetry(logger=logging.getLogger("test.telemetry_dimensions"), max_dequeue_count=5)
    with telemetry.invocation("ship_order", _message(1)) as record:
        record.order("abcdefgh12345678")
        record.order("123-1234567-1234567")
        record.count("ready_to_ship", 2)
        record.throttled("getOrder", 1.5)
    with pytest.raises(TransientError), telemetry.invocation("ship_order", _message(5)):
        raise TransientError("boom")
    telemetry.heartbeat(datetime(2025, 1, 1, tzinfo=UTC), "poll_orders")
    return capture.dims


def _poison_record() -> dict[str, object]:
    handler = _Capture()
    logger = logging.getLogger("fulfilment.messages")
    logger.addHandler(handler)
    try:
        with MessageFailures(_Sender()).guard(PRIVACY_REQUESTS, _message(1)):
            raise InvalidInput("bad")
    finally:
        logger.removeHandler(handler)
    (dims,) = handler.dims
    return dims


def test_emitted_dimensions_constant_is_exactly_what_telemetry_logs(capture: _Capture) -> None:
    logged = set().union(*(_telemetry_records(capture)))
    assert {"count_ready_to_ship", "order_ref_rejected", "poisoned", "heartbeat_utc"} <= logged
    plain = {name for name in logged if not name.startswith(COUNTER_PREFIX)}
    assert plain == EMITTED_DIMENSIONS
    assert not any(name.startswith(COUNTER_PREFIX) for name in EMITTED_DIMENSIONS)


def test_poison_dimensions_constant_is_exactly_what_the_poison_record_logs() -> None:
    dims = _poison_record()
    assert set(dims) == POISON_DIMENSIONS
    assert dims["event"] == "poison"
    assert dims["queue"] == PRIVACY_REQUESTS
    assert dims["reason_code"] == InvalidInput.code
    assert dims["invocation_id"] == "msg-1"


# ---- (a) queries read declared names; (b) declared names are emitted ----------------------


def test_every_dimension_a_query_reads_is_declared() -> None:
    queries = _queries()
    assert len([q for q in queries if q.endswith(".kql")]) >= 8
    assert len([q for q in queries if q.startswith("workbook:")]) >= 8
    read = set().union(*(names_read(text) for text in queries.values()))
    declared = _declared()
    assert read, "the queries read no custom dimension"
    assert read <= declared, f"read but not declared: {sorted(read - declared)}"


def test_every_declared_dimension_is_emitted_by_the_app() -> None:
    declared = _declared()
    counters = _recorded_counters()
    emitted = EMITTED_DIMENSIONS | POISON_DIMENSIONS | counters
    assert declared and EMITTED_DIMENSIONS and counters
    assert "count_purge_lateness_max_s" in counters
    assert declared <= emitted, f"declared but never emitted: {sorted(declared - emitted)}"


def test_compared_event_and_outcome_values_are_written_by_the_app(capture: _Capture) -> None:
    records = [*_telemetry_records(capture), _poison_record()]
    written = {field: {str(r[field]) for r in records if field in r} for field in ("event", "outcome")}
    assert written == {"event": {"invocation", "heartbeat", "poison"}, "outcome": {"success", "failure"}}
    compared = 0
    for name, text in _queries().items():
        for field, single, listed in COMPARED.findall(text):
            for value in re.findall(r"\"([^\"]*)\"", single or listed):
                compared += 1
                assert value in written[field], f"{name}: {field} is never {value!r}"
    assert compared >= 10


def test_privacy_rule_follows_the_real_queue_name() -> None:
    assert f'"{PRIVACY_REQUESTS}"' in (RULES / "privacy-request-overdue.kql").read_text(encoding="utf-8")


# ---- the checker itself catches what it must ---------------------------------------------


def test_checker_reads_dotted_and_bracketed_names() -> None:
    text = (
        "x | where Properties.buyerName == 1 | extend customDimensions['zip'] | extend tostring(Properties)"
    )
    assert names_read(text) == {"buyerName", "zip"}


def test_checker_refuses_a_read_it_cannot_follow() -> None:
    with pytest.raises(ValueError, match="unchecked read"):
        names_read("x | evaluate bag_unpack(Properties)")
    with pytest.raises(ValueError, match="unchecked read"):
        names_read("x | extend v = Properties[key]")
