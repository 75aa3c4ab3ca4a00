"""Privacy requests say only what is true (issue 24, item 2): order ids, request ids and refs
are checked exactly (ASCII digits, `fullmatch`), a malformed one is refused before anything is
computed, queued or audited, and a deletion for an id that names no stored order says so with
what the audit log knows of it."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from datetime import timedelta

import pytest

from ops import cli as ops
from shared.crypto.key_vault import Secret
from shared.errors import InvalidInput
from shared.orders.messages import REF_LENGTH, checked_ref, is_order_id, is_ref, is_request_id
from shared.orders.reference import OrderReferencer
from shared.storage.audit import AuditAction
from shared.storage.document_store import AUDIT
from tests.worlds.privacy import REF, T0, World

GOOD_ID = "513-7387969-4356708"
BAD_ORDER_IDS = [
    GOOD_ID + "\n",  # `$` with re.match let this through
    " " + GOOD_ID,
    GOOD_ID + " ",
    "٥١٣-٧٣٨٧٩٦٩-٤٣٥٦٧٠٨",  # Arabic-Indic digits match `\d`
    "５１３-７３８７９６９-４３５６７０８",  # fullwidth digits match `\d`
    "513-7387969-435670",
    "513-7387969-43567080",
    "",
]


@pytest.mark.parametrize("order_id", BAD_ORDER_IDS)
def test_only_an_exact_ascii_order_id_is_one(order_id: str) -> None:
    assert not is_order_id(order_id)
    assert is_order_id(GOOD_ID)


@pytest.mark.parametrize("order_id", BAD_ORDER_IDS[:-1])
@pytest.mark.parametrize("verb", [["ref"], ["request", "delete"], ["request", "access"]])
def test_the_cli_refuses_a_malformed_order_id_and_queues_nothing(
    order_id: str, verb: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def never(*args: object) -> object:
        raise AssertionError("nothing may be computed or queued for a malformed id")

    monkeypatch.setattr(ops, "_clients", never)
    monkeypatch.setattr(ops, "_ref", never)
    with pytest.raises(SystemExit) as stopped:
        ops.main([*verb, order_id], env={}, out=io.StringIO())
    assert stopped.value.code != 0
    assert "not an Amazon order id (3-7-7 digits)" in capsys.readouterr().err


@pytest.mark.parametrize(
    "request_id", ["req-00000001\n", "req-000\u0661\u0662\u0663", " req-00000001", "short"]
)
def test_request_ids_must_match_exactly(request_id: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ops, "_clients", lambda env: pytest.fail("queued"))
    monkeypatch.setattr(ops, "_ref", lambda env, order_id: pytest.fail("computed"))
    assert not is_request_id(request_id)
    with pytest.raises(SystemExit) as stopped:
        ops.main(["request", "delete", GOOD_ID, "--request-id", request_id], env={}, out=io.StringIO())
    assert stopped.value.code != 0


class _Secrets:
    def __init__(self) -> None:
        self.values: dict[str, str] = {}

    def get(self, name: str) -> Secret | None:
        return Secret(name, "1", self.values[name]) if name in self.values else None

    def set(self, name: str, value: str) -> None:
        self.values[name] = value


def test_every_reference_the_referencer_makes_has_the_checked_shape() -> None:
    referencer = OrderReferencer(_Secrets())  # type: ignore[arg-type]
    for n in range(500):
        ref = referencer.ref(f"{n:03d}-{n:07d}-{n:07d}")
        assert len(ref) == REF_LENGTH and is_ref(ref) and checked_ref(ref) == ref


BAD_REFS = [
    GOOD_ID,  # a raw Amazon order id matched the old [A-Za-z0-9_-]{8,64}
    "513-7387969-4356708abc",  # 22 characters, an order id inside
    "abc513-7387969-4356708",
    REF + "\n",
    REF[:-1],
    REF + "A",
    "ref0000001",
    REF[:-1] + "=",
    REF[:-1] + "\u0661",
    None,
    7,
]


@pytest.mark.parametrize("ref", BAD_REFS)
def test_a_queued_request_with_a_bad_ref_is_poisoned_and_nothing_is_written(ref: object) -> None:
    world = World()
    body = json.dumps({"requestId": "req-00000001", "type": "delete", "ref": ref}).encode()
    with pytest.raises(InvalidInput) as refused:
        world.service.process(body, T0)
    assert refused.value.code == "message_bad_ref"
    assert GOOD_ID not in str(refused.value)
    assert list(world.store.scan(AUDIT)) == [] and list(world.store.scan("orders")) == []


def test_a_deletion_for_a_purged_order_says_when_retention_purged_it() -> None:
    world = World()
    world.audit.record(REF, AuditAction.PURGED, T0, "purge_expired", {"stage": "delivered"}, once_key="order")
    confirmation = world.service.delete(REF, "req-00000009", T0 + timedelta(days=3))
    assert not confirmation.held
    text = world.service.confirmation_text(REF, "req-00000009")
    assert text is not None
    assert "No data was held" not in text
    assert "No order and no file is stored under this reference" in text
    assert f"purged by retention on {T0.date().isoformat()}" in text
    assert "audit record 'purged:order'" in text and REF in text


def test_a_deletion_for_an_id_never_seen_says_the_audit_log_has_no_record() -> None:
    world = World()
    world.service.delete(REF, "req-00000010", T0)
    text = world.service.confirmation_text(REF, "req-00000010")
    assert text is not None and "no record of an order under it" in text


@dataclass
class _Queued:
    bodies: list[str]

    def send(self, queue: str, body: str) -> None:
        self.bodies.append(body)


def test_a_well_formed_id_is_queued_with_its_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    queued = _Queued([])
    monkeypatch.setattr(ops, "_clients", lambda env: (None, queued))
    monkeypatch.setattr(ops, "_ref", lambda env, order_id: REF)
    assert (
        ops.main(["request", "delete", GOOD_ID, "--request-id", "req-00000011"], env={}, out=io.StringIO())
        == 0
    )
    (body,) = queued.bodies
    assert json.loads(body)["ref"] == REF and GOOD_ID not in body
