"""The sample settings, host.json and the code agree."""

import json
import re
from datetime import timedelta
from pathlib import Path

from shared.invoices.service import UPLOAD_MARK_STALE_AFTER
from shared.settings import load_settings
from shared.telemetry.message_failures import MAX_DEQUEUE_COUNT

ROOT = Path(__file__).resolve().parents[2]


def _sample() -> dict[str, str]:
    values: dict[str, str] = json.loads((ROOT / "local.settings.sample.json").read_text())["Values"]
    return values


def test_sample_lists_every_setting_the_app_reads() -> None:
    source = (ROOT / "shared" / "settings.py").read_text()
    read = set(re.findall(r'(?:_get|_optional|_int|_bool|_json|_mapping)\(env, "([A-Z_a-z]+)"', source))
    read |= set(re.findall(r'env\.get\("([A-Z_]+)"', source))
    assert len(read) > 20
    sample = set(_sample())
    # The identity-based storage settings are the Azure alternative to STORAGE.
    assert read - sample <= {"STORAGE__blobServiceUri", "STORAGE__queueServiceUri"}


def test_sample_values_load() -> None:
    settings = load_settings(_sample())
    assert settings.recoverability_days <= 30


def test_max_dequeue_count_matches_host_json() -> None:
    host = json.loads((ROOT / "host.json").read_text())
    assert host["extensions"]["queues"]["maxDequeueCount"] == MAX_DEQUEUE_COUNT


def test_an_upload_mark_goes_stale_only_after_the_host_ends_its_invocation() -> None:
    hours, minutes, seconds = json.loads((ROOT / "host.json").read_text())["functionTimeout"].split(":")
    timeout = timedelta(hours=int(hours), minutes=int(minutes), seconds=int(seconds))
    assert timeout < UPLOAD_MARK_STALE_AFTER <= timeout + timedelta(minutes=2)


def test_schedules_are_settings_with_six_fields() -> None:
    for name in ("POLL_ORDERS_SCHEDULE", "TRACK_DELIVERIES_SCHEDULE", "PURGE_EXPIRED_SCHEDULE"):
        assert len(_sample()[name].split()) == 6
