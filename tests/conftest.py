"""Session fixtures: the npm stand-ins for Azure, started once per test session on free ports."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from local import emulators as emu

AMAZON_MODELS = Path(__file__).resolve().parent.parent.parent / "shared" / "amazon-models"


@pytest.fixture(scope="session")
def emulators(tmp_path_factory: pytest.TempPathFactory) -> Iterator[emu.Emulators]:
    """Azurite and cosmosdb-server, loopback only, stopped by pid at the end of the session."""
    with emu.running(tmp_path_factory.mktemp("emulator-logs")) as running:
        yield running


@pytest.fixture
def amazon_model() -> object:
    """Loader for Amazon's official models beside the repo; skips cleanly where absent."""

    def load(name: str) -> dict[str, object]:
        import json

        path = AMAZON_MODELS / name
        if not path.exists():
            pytest.skip(f"Amazon model {name} not available beside the repo")
        data: dict[str, object] = json.loads(path.read_text())
        return data

    return load


@pytest.fixture
def base_env(emulators: emu.Emulators) -> dict[str, str]:
    """App settings pointing at the running emulators; other endpoints are added by tests."""
    env = dict(emulators.app_settings())
    env.update(
        {
            "KEY_VAULT_URL": "https://127.0.0.1:1/",
            "SELLERS": '[{"sellerId": "A1SELLER", "marketplaceIds": ["A1PA6795UKMFR9"], '
            '"refreshTokenSecret": "refresh-token-A1SELLER"}]',
        }
    )
    return env
