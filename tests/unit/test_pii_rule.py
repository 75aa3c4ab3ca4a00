"""The pii-in-traces rule (infra/rules/pii-in-traces.kql), its patterns run in Python over what
the app really emits: it reads failure records too, and PII-free records do not trip it."""

from __future__ import annotations

import json
import logging
import random
import re
import uuid
from pathlib import Path

from shared.telemetry.invocations import AppTelemetry
from tests.log_capture import Capture

RULE = Path(__file__).resolve().parents[2] / "infra" / "rules" / "pii-in-traces.kql"


def _rule() -> tuple[dict[str, str], list[str], str]:
    text = RULE.read_text(encoding="utf-8")
    lets = dict(re.findall(r'let (\w+) = @"((?:[^"]|"")*)";', text))
    generated = re.search(r"let generated = dynamic\((\[[^\]]*\])\);", text)
    assert generated is not None
    return lets, json.loads(generated.group(1)), text


def test_the_rule_reads_failure_records_as_well_as_traces() -> None:
    _, _, text = _rule()
    assert "union AppTraces, AppExceptions" in text
    for column in ("OuterMessage", "InnermostMessage", "Details"):
        assert column in text


def test_pii_free_invocation_records_do_not_match_any_pattern() -> None:
    """Invocation ids are UUIDs (message ids too): their digit-and-dash runs look like phone
    numbers, which made the rule fire on about one record in six."""
    lets, generated, _ = _rule()
    patterns = [re.compile(lets[name]) for name in ("email", "phone", "amazonOrderId")]
    rng = random.Random(0)
    capture = Capture()
    logger = logging.getLogger("test.pii_rule")
    logger.addHandler(capture)
    telemetry = AppTelemetry(
        logger=logger, new_id=lambda: str(uuid.UUID(int=rng.getrandbits(128), version=4))
    )
    try:
        for _ in range(500):
            with telemetry.invocation("track_deliveries") as record:
                record.count("delivered", 3)
    finally:
        logger.removeHandler(capture)
    assert len(capture.records) == 500
    for emitted in capture.records:
        bag = {k: str(v) for k, v in emitted.custom_dimensions.items() if k not in generated}  # type: ignore[attr-defined]
        text = f"{emitted.getMessage()} {json.dumps(bag)}"
        assert not any(p.search(text) for p in patterns), text
