import io
import json

from shared import ops
from tests.unit.test_settings import BASE


def test_help_lists_every_verb(capsys: object) -> None:
    text = ops.parser().format_help()
    for verb in ops.VERBS:
        assert verb in text


def test_check_settings_prints_the_bound() -> None:
    out = io.StringIO()
    assert ops.main(["check-settings"], env=BASE, out=out) == 0
    report = json.loads(out.getvalue())
    assert report["recoverabilityDays"] == sum(report["recoverabilityTerms"].values()) == 28
