"""The operators' command line against the Key Vault stand-in and Azurite, as in Azure."""

import base64
import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from azure.core.exceptions import ResourceExistsError
from azure.storage.queue import QueueClient

from local import keyvault_server
from local.emulators import Emulators
from ops import cli as ops
from shared.app.composition import LocalOverrides
from shared.app.keys import APP_KEYS
from shared.orders.messages import PRIVACY_REQUESTS
from shared.privacy.service import parse_request

pytestmark = pytest.mark.integration
ORDER_ID = "302-7654321-7654321"


@pytest.fixture
def env_and_overrides(
    emulators: Emulators, base_env: dict[str, str], tmp_path: Path
) -> Iterator[tuple[dict[str, str], LocalOverrides]]:
    vault = keyvault_server.start(tmp_path)
    try:
        env = {**base_env, "KEY_VAULT_URL": vault.url}
        overrides = LocalOverrides(
            credential=vault.credential(),
            key_vault_options={"verify_challenge_resource": False, "connection_verify": str(vault.ca_path)},
        )
        queue = QueueClient.from_connection_string(env["STORAGE"], PRIVACY_REQUESTS)
        try:
            queue.create_queue()
        except ResourceExistsError:
            queue.clear_messages()
        # The deployment step: the keys are made once, before anything needs them.
        assert json.loads(_run(["init-keys"], (env, overrides))) == dict.fromkeys(APP_KEYS, "created")
        yield env, overrides
    finally:
        keyvault_server.stop(vault)


def _run(argv: list[str], env_and_overrides: tuple[dict[str, str], LocalOverrides]) -> str:
    env, overrides = env_and_overrides
    out = io.StringIO()
    assert ops.main(argv, env=env, out=out, overrides=overrides) == 0
    return out.getvalue()


def test_ref_is_stable_and_holds_no_order_id(
    env_and_overrides: tuple[dict[str, str], LocalOverrides],
) -> None:
    first = _run(["ref", ORDER_ID], env_and_overrides).strip()
    assert first == _run(["ref", ORDER_ID], env_and_overrides).strip()
    assert ORDER_ID not in first and "7654321" not in first and len(first) >= 8


def test_init_keys_again_changes_nothing_over_the_wire(
    env_and_overrides: tuple[dict[str, str], LocalOverrides],
) -> None:
    ref = _run(["ref", ORDER_ID], env_and_overrides)
    assert json.loads(_run(["init-keys"], env_and_overrides)) == dict.fromkeys(APP_KEYS, "exists")
    assert _run(["ref", ORDER_ID], env_and_overrides) == ref


def test_ref_fails_closed_without_the_key(
    emulators: Emulators, base_env: dict[str, str], tmp_path: Path
) -> None:
    from shared.orders.reference import ReferenceKeyMissing

    vault = keyvault_server.start(tmp_path)
    try:
        overrides = LocalOverrides(
            credential=vault.credential(),
            key_vault_options={"verify_challenge_resource": False, "connection_verify": str(vault.ca_path)},
        )
        with pytest.raises(ReferenceKeyMissing):
            ops.main(
                ["ref", ORDER_ID],
                env={**base_env, "KEY_VAULT_URL": vault.url},
                out=io.StringIO(),
                overrides=overrides,
            )
    finally:
        keyvault_server.stop(vault)


def test_request_queues_a_reference_never_the_order_id(
    env_and_overrides: tuple[dict[str, str], LocalOverrides],
) -> None:
    printed = json.loads(
        _run(["request", "delete", ORDER_ID, "--request-id", "ticket-0001"], env_and_overrides)
    )
    env, _ = env_and_overrides
    (message,) = QueueClient.from_connection_string(env["STORAGE"], PRIVACY_REQUESTS).receive_messages()
    body = base64.b64decode(message.content)  # triggers read base64, as the app sends it
    assert ORDER_ID.encode() not in body
    request = parse_request(body)
    assert (request.request_id, request.type, request.ref) == ("ticket-0001", "delete", printed["ref"])
