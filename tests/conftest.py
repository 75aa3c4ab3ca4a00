"""Session fixtures: the npm stand-ins for Azure, started once per test session on free ports."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from azure.cosmos import CosmosClient

from local import emulators as emu
from local.aws_emulator import AwsEmulator
from shared.storage.document_store import CosmosDocumentStore, ensure_local_containers

AMAZON_MODELS = Path(__file__).resolve().parent.parent.parent / "shared" / "amazon-models"

#: What each outside judge checked in this session (name -> count), printed at the end.
_JUDGED: dict[str, str] = {}


@pytest.fixture(scope="session")
def judged() -> Callable[[str, str], None]:
    """Records what an outside judge checked, e.g. `judged("worker indexing", "7 functions")`;
    `make test` prints every record in its summary, so a run shows its counts."""

    def record(judge: str, what: str) -> None:
        _JUDGED[judge] = what

    return record


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _JUDGED:
        terminalreporter.section("judged by code nobody here wrote")
        for judge, what in sorted(_JUDGED.items()):
            terminalreporter.write_line(f"{judge}: {what}")


@pytest.fixture(scope="session")
def emulators(tmp_path_factory: pytest.TempPathFactory) -> Iterator[emu.Emulators]:
    """Azurite and cosmosdb-server, loopback only, stopped by pid at the end of the session."""
    with emu.running(tmp_path_factory.mktemp("emulator-logs")) as running:
        yield running


@pytest.fixture(scope="session")
def aws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AwsEmulator]:
    """moto's server (SQS, STS, IAM), loopback only, stopped by pid at the end of the session."""
    from local import aws_emulator

    with aws_emulator.running(tmp_path_factory.mktemp("aws-emulator-logs")) as running:
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


@pytest.fixture(scope="session")
def fresh_cosmos_store(emulators: emu.Emulators) -> Callable[[str], CosmosDocumentStore]:
    """Makes a document store on a new database (named `<prefix>-<random>`) in the emulator,
    with the containers Bicep creates in Azure."""
    client = CosmosClient(
        emulators.cosmos_endpoint, credential=emulators.app_settings()["COSMOS_KEY"], connection_verify=False
    )

    def make(prefix: str) -> CosmosDocumentStore:
        database = f"{prefix}-{uuid.uuid4().hex[:8]}"
        ensure_local_containers(client, database)
        return CosmosDocumentStore(client, database)

    return make
