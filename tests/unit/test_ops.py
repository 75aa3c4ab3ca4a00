import io
import json

import pytest

from ops import cli as ops
from tests.builders import BASE_SETTINGS
from tests.worlds import privacy


def test_help_lists_every_verb(capsys: object) -> None:
    text = ops.parser().format_help()
    for verb in ops.VERBS:
        assert verb in text


def test_check_settings_prints_the_bound() -> None:
    out = io.StringIO()
    assert ops.main(["check-settings"], env=BASE_SETTINGS, out=out) == 0
    report = json.loads(out.getvalue())
    assert report["recoverabilityDays"] == sum(report["recoverabilityTerms"].values()) == 28


def test_correct_takes_null_as_removal_and_refuses_other_non_text(monkeypatch: pytest.MonkeyPatch) -> None:
    world = privacy.World()
    world.order()
    monkeypatch.setattr(ops, "_privacy", lambda env: world.service)
    monkeypatch.setattr(ops, "_ref", lambda env, order_id: privacy.REF)

    monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps({"buyer.email": None})))
    assert ops.main(["correct", "306-0000001-0000000"], env={}, out=io.StringIO()) == 0
    rec = world.orders.get(privacy.REF)
    assert rec is not None and rec.pii is not None
    assert world.cipher.open(privacy.REF, rec.pii).buyer.email is None  # not the text "None"

    monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps({"buyer.email": 42})))
    with pytest.raises(SystemExit, match="field -> text"):
        ops.main(["correct", "306-0000001-0000000"], env={}, out=io.StringIO())


@pytest.mark.parametrize(
    "argv",
    [
        ["ref", "306-0000001-0000000 "],  # a stray space: a ref no order has
        ["ref", "306 0000001 0000000"],
        ["request", "delete", "306-0000001-0000000", "--request-id", "TICKET 42"],
        ["confirmation", "306-0000001-0000000", "short"],
    ],
)
def test_order_and_request_ids_are_checked_before_anything_is_computed_or_queued(argv: list[str]) -> None:
    """A wrong order id names no stored order: a deletion would confirm nothing was held."""
    with pytest.raises(SystemExit):
        ops.main(argv, env={}, out=io.StringIO())
