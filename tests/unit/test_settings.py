import pytest

from shared.errors import SettingsError
from shared.settings import POISON_MESSAGE_DAYS, load_settings, read_settings
from tests.builders import BASE_SETTINGS


def test_defaults_give_a_28_day_recoverability_bound() -> None:
    settings = load_settings(BASE_SETTINGS)
    assert settings.retention_days == 7
    assert settings.recoverability_days == 28
    assert settings.seller("S1") is not None and settings.seller("nope") is None


@pytest.mark.parametrize("retention", ["0", "7", "22"])
def test_the_bound_counts_poison_messages_after_the_retention(retention: str) -> None:
    # The smallest encrypted-copy terms (1 + 0 + 7 days) against a poison message's 7 days.
    env = {
        **BASE_SETTINGS,
        "RETENTION_DAYS": retention,
        "KEY_EPOCH_DAYS": "1",
        "COSMOS_BACKUP_RETENTION_DAYS": "0",
    }
    settings = load_settings(env)
    assert settings.recoverability_days >= settings.retention_days + POISON_MESSAGE_DAYS
    assert settings.recoverability_days == int(retention) + 8


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"COSMOS_ENDPOINT": ""}, "COSMOS_ENDPOINT"),
        ({"SELLERS": "not json"}, "SELLERS"),
        ({"RETENTION_DAYS": "seven"}, "RETENTION_DAYS"),
        ({"KEY_VAULT_SOFT_DELETE_DAYS": "3"}, "KEY_VAULT_SOFT_DELETE_DAYS"),
        ({"TELEMETRY_EXPORTER": "stdout"}, "TELEMETRY_EXPORTER"),
        ({"COSMOS_VERIFY_TLS": "maybe"}, "COSMOS_VERIFY_TLS"),
        ({"RETENTION_DAYS": "14", "KEY_EPOCH_DAYS": "14"}, "RETENTION_DAYS"),
        ({"LWA_ROTATION": "sometimes"}, "LWA_ROTATION"),
    ],
)
def test_bad_settings_name_the_setting(change: dict[str, str], named: str) -> None:
    with pytest.raises(SettingsError) as info:
        load_settings({**BASE_SETTINGS, **change})
    assert named in str(info.value)


def test_secret_values_never_appear_in_errors() -> None:
    env = {**BASE_SETTINGS, "COSMOS_KEY": "super-secret-key-value", "SELLERS": "[{]"}
    with pytest.raises(SettingsError) as info:
        load_settings(env)
    assert "super-secret-key-value" not in str(info.value) and "[{]" not in str(info.value)


def test_the_app_refuses_settings_over_the_30_day_bound_that_preflight_still_reads() -> None:
    over = {**BASE_SETTINGS, "RETENTION_DAYS": "10"}
    with pytest.raises(SettingsError, match="recoverability window is 31 days, over Amazon's 30"):
        load_settings(over)
    assert read_settings(over).recoverability_days == 31
    assert load_settings({**BASE_SETTINGS, "RETENTION_DAYS": "9"}).recoverability_days == 30


@pytest.mark.parametrize(
    ("value", "mode"), [(None, "manual"), ("", "manual"), ("manual", "manual"), ("Auto", "auto")]
)
def test_lwa_rotation_is_manual_unless_the_deployment_says_auto(value: str | None, mode: str) -> None:
    env = dict(BASE_SETTINGS)
    if value is not None:
        env["LWA_ROTATION"] = value
    assert load_settings(env).lwa_rotation == mode
