"""Privacy requests: parsing, access, correct, restrict, delete, and their confirmations."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from shared.crypto.pii import Pii
from shared.errors import InvalidInput, TransientError
from shared.orders.lifecycle import delivered
from shared.orders.record import OrderPii, Stage
from shared.privacy.service import PrivacyService, encode_recipient_key, open_export
from shared.retention.service import RetentionService
from shared.storage.audit import AuditAction
from shared.storage.document_store import AUDIT, WriteConflict
from tests.builders import token
from tests.fakes import FakeCipher, FakeShredder, FakeSignal, audit_trail, epoch_of
from tests.worlds.privacy import KEY, POLICY, REF, T0, World


def msg(**fields: object) -> bytes:
    return json.dumps(fields).encode()


@pytest.fixture
def world() -> World:
    return World()


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"not json", "message_not_json"),
        (msg(requestId="req-00000001", type="delete", ref=REF, name="Erika"), "privacy_unexpected_fields"),
        (msg(requestId="x", type="delete", ref=REF), "privacy_bad_request_id"),
        (msg(requestId="req-00000001", type="erase-all", ref=REF), "privacy_bad_type"),
        (msg(requestId="req-00000001", type="correct", ref=REF), "privacy_correct_not_queued"),
        (msg(requestId="req-00000001", type="delete", ref="306-1234567-1234567 x"), "message_bad_ref"),
        (msg(requestId="req-00000001", type="access", ref=REF), "privacy_recipient_key_missing"),
        (
            msg(requestId="req-00000001", type="access", ref=REF, recipientKey="Erika!"),
            "privacy_recipient_key_bad",
        ),
        (
            msg(
                requestId="req-00000001",
                type="access",
                ref=REF,
                recipientKey=encode_recipient_key(
                    rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key()  # noqa: S505 - the weak key under test
                ),
            ),
            "privacy_recipient_key_weak",
        ),
        (
            msg(requestId="req-00000001", type="delete", ref=REF, recipientKey="AAAA"),
            "privacy_unexpected_fields",
        ),
    ],
)
def test_malformed_requests_are_poisoned_with_a_reason(world: World, body: bytes, code: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        world.service.handle(body, T0)
    assert caught.value.code == code
    assert "Erika" not in str(caught.value) and "306-1234567" not in repr(caught.value)


def test_delete_removes_everything_and_confirms_in_writing(world: World) -> None:
    world.order()
    invoice = {"invoice": {"series": "INV2026", "number": 3, "numberText": "INV2026-000003"}}
    world.orders.update(REF, lambda r: r.evolve(invoice=invoice))
    world.blobs.put("invoices", f"{REF}/INV2026-000003.pdf", b"invoice")
    # A credit note stored by an invocation that has not recorded it yet (its upload under way).
    world.blobs.put("invoices", f"{REF}/CRN2026-000001.pdf", b"credit note")
    world.blobs.put("invoices", f"{REF}/draft/1.pdf", b"not a document's name: not a number")
    world.blobs.put("labels", "ref0000002/label.pdf", b"other order")
    world.service.handle(msg(requestId="amzn-del-00000001", type="amazon_delete", ref=REF), T0)
    assert world.orders.get(REF) is None and world.blobs.names(f"{REF}/") == []
    assert world.blobs.names("ref0000002/")  # nothing else touched
    assert world.leaks() == []
    text = world.service.confirmation_text(REF, "amzn-del-00000001")
    assert text is not None
    assert "amazon_delete" in text and "All data held" in text and "encrypted buyer data" in text
    assert "1 file(s) in blob container 'labels'" in text and "'invoices'" in text
    assert str((T0 + timedelta(days=28)).isoformat()) in text
    (erased,) = world.audit.trail(REF)
    assert erased.action == AuditAction.ERASED
    assert erased.details["invoices"] == ["CRN2026-000001", "INV2026-000003"]  # both numbers accounted for


def test_redelivered_delete_keeps_the_first_confirmation(world: World) -> None:
    world.order()
    first = world.service.delete(REF, "req-00000001", T0)
    again = world.service.delete(REF, "req-00000001", T0 + timedelta(minutes=5))
    assert again == first and first.held
    assert len(world.audit.trail(REF)) == 1


def test_a_crash_between_confirmation_and_audit_record_is_finished_by_the_retry(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    world.order()
    invoice = {"invoice": {"series": "INV2026", "number": 3, "numberText": "INV2026-000003"}}
    world.orders.update(REF, lambda r: r.evolve(invoice=invoice))
    # A credit note stored, not yet recorded: its blob is gone by the retry, its number is not.
    world.blobs.put("invoices", f"{REF}/CRN2026-000001.pdf", b"credit note")
    record = world.service._audit.record

    def crash(*args: object, **kwargs: object) -> None:
        raise TransientError("worker died")

    monkeypatch.setattr(world.service._audit, "record", crash)
    with pytest.raises(TransientError):
        world.service.delete(REF, "req-00000001", T0)
    assert world.audit.trail(REF) == [] and world.orders.get(REF) is not None
    monkeypatch.setattr(world.service._audit, "record", record)
    world.service.delete(REF, "req-00000001", T0 + timedelta(minutes=1))
    (erased,) = world.audit.trail(REF)
    assert (
        erased.details["invoices"] == ["CRN2026-000001", "INV2026-000003"] and erased.details["held"] is True
    )
    assert world.orders.get(REF) is None


def test_delete_retried_after_a_crash_still_confirms_what_was_held(world: World) -> None:
    world.order()
    world.blobs.fail_next_delete = True
    with pytest.raises(TransientError):
        world.service.delete(REF, "req-00000001", T0)
    rec = world.orders.get(REF)
    assert rec is not None and rec.pii is None and rec.restricted  # PII gone before the crash
    confirmation = world.service.delete(REF, "req-00000001", T0 + timedelta(minutes=1))
    assert confirmation.held and any("encrypted buyer data" in d for d in confirmation.deleted)
    assert world.orders.get(REF) is None and world.leaks() == []


def test_a_confirmation_written_after_a_crash_still_lists_the_files_deleted_before_it(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    world.order()  # the document and its label
    audit = world.service._audit  # the worker dies inside its step
    write = audit.put_document

    def dies_once(*args: object, **kwargs: object) -> object:
        monkeypatch.setattr(audit, "put_document", write)
        raise TransientError("worker died")

    monkeypatch.setattr(audit, "put_document", dies_once)
    with pytest.raises(TransientError):
        world.service.delete(REF, "req-00000003", T0)  # the files went, the confirmation did not
    confirmation = world.service.delete(REF, "req-00000003", T0 + timedelta(minutes=1))
    assert "1 file(s) in blob container 'labels'" in confirmation.deleted


def test_delete_of_an_unknown_order_says_nothing_is_stored(world: World) -> None:
    confirmation = world.service.delete("Unknown000000000000000", "req-00000002", T0)
    assert not confirmation.held and confirmation.deleted == ()
    text = world.service.confirmation_text("Unknown000000000000000", "req-00000002")
    assert text is not None and "No data was held" not in text
    assert "No order and no file is stored under this reference" in text
    assert "no record of an order under it" in text


def test_delete_between_label_and_invoice_leaves_no_half_done_work(world: World) -> None:
    world.order()  # shipped, label stored, invoice not yet issued
    seen_by_invoicer = world.orders.get(REF)
    assert seen_by_invoicer is not None and seen_by_invoicer.invoice is None
    world.service.delete(REF, "req-00000003", T0)
    # The invoicer's compare-and-swap loses, and re-reading finds no order: nothing to invoice.
    with pytest.raises(WriteConflict):
        world.orders.replace(seen_by_invoicer.evolve(invoice={"number": 1}))
    assert world.orders.get(REF) is None and world.leaks() == []


def test_restrict_marks_the_order_and_keeps_its_expiry(world: World) -> None:
    world.order()
    world.orders.update(REF, lambda r: r.evolve(purge_after=T0 + timedelta(days=7), stage=Stage.DELIVERED))
    later = T0 + timedelta(days=2)
    world.service.handle(msg(requestId="req-00000004", type="restrict", ref=REF), later)
    rec = world.orders.get(REF)
    assert rec is not None and rec.restricted
    # The write restarted Cosmos's TTL clock, so the ttl was recomputed from the write.
    assert rec.ttl == int((T0 + timedelta(days=7, hours=2) - later).total_seconds())
    (event,) = world.audit.trail(REF)
    assert event.action == AuditAction.RESTRICTED and event.details["held"] is True


def test_restrict_of_an_unknown_order_is_recorded_as_not_held(world: World) -> None:
    outcome = world.service.process(
        msg(requestId="req-00000005", type="restrict", ref="Unknown000000000000000"), T0
    )
    assert not outcome.held
    assert world.audit.trail("Unknown000000000000000")[0].details["held"] is False


def test_access_exports_an_encrypted_package_only_the_requester_opens(world: World) -> None:
    world.order()
    body = msg(
        requestId="req-00000006", type="access", ref=REF, recipientKey=encode_recipient_key(KEY.public_key())
    )
    outcome = world.service.process(body, T0)
    assert outcome.held and outcome.export_blob == f"{REF}/req-00000006.bin"
    package = world.blobs.blobs[("exports", outcome.export_blob)]
    assert token(1, "name").encode() not in package
    data = open_export(package, KEY)
    assert data["buyer"]["shipTo"]["line1"] == token(1, "street")
    assert data["order"]["items"][0]["asin"] == "B000TEST01" and data["requestId"] == "req-00000006"
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with pytest.raises(ValueError, match="Decryption failed"):
        open_export(package, other)
    # The export sits under the order's reference: erasure takes it too.
    world.service.delete(REF, "req-00000007", T0)
    assert world.blobs.names(f"{REF}/") == [] and world.leaks() == []


def test_an_export_is_noted_on_its_order_and_purged_with_it_by_name(world: World) -> None:
    world.order()
    outcome = world.service.access(REF, "req-00000009", KEY.public_key(), T0)
    record = world.orders.get(REF)
    assert record is not None and record.noted_blobs == (f"exports/{outcome.export_blob}",)
    world.orders.update(REF, lambda r: delivered(r, T0, "amazon", T0, POLICY))
    retention = RetentionService(
        world.store,
        amazon=FakeSignal(lambda: T0),
        carrier=FakeSignal(lambda: T0),
        blobs=world.blobs,
        audit=audit_trail(world.store),
        shredder=FakeShredder(),
        policy=POLICY,
        orders=world.orders,
    )
    world.blobs.lists = 0
    assert retention.purge_expired(T0 + timedelta(days=7)) == 1
    assert world.blobs.blobs == {} and world.blobs.lists == 0 and world.leaks() == []


def test_access_for_an_unknown_order_exports_nothing(world: World) -> None:
    outcome = world.service.access("Unknown000000000000000", "req-00000008", KEY.public_key(), T0)
    assert not outcome.held and world.blobs.blobs == {}


class _ErasedWhileOpened(FakeCipher):
    """Runs `erase` (another worker's deletion request) while the access reads the order."""

    def __init__(self) -> None:
        super().__init__()
        self.erase: Callable[[], object] | None = None

    def open(self, ref: str, envelope: Mapping[str, Any]) -> OrderPii:
        pii = super().open(ref, envelope)
        if self.erase is not None:
            erase, self.erase = self.erase, None
            erase()
        return pii


def test_an_export_made_while_the_order_was_erased_does_not_outlive_it(world: World) -> None:
    world.order()
    cipher = _ErasedWhileOpened()
    service = PrivacyService(
        world.store, cipher=cipher, blobs=world.blobs, policy=POLICY, audit=audit_trail(world.store)
    )
    cipher.erase = lambda: service.delete(REF, "req-00000011", T0, request_type="amazon_delete")

    outcome = service.access(REF, "req-00000012", KEY.public_key(), T0)

    assert not outcome.held and outcome.export_blob is None
    assert world.orders.get(REF) is None and world.blobs.blobs == {}


def test_correct_reseals_the_changed_fields_under_the_current_epoch(world: World) -> None:
    world.order()
    later = T0 + timedelta(days=8)
    outcome = world.service.correct(
        REF, {"shipTo.line1": Pii("Neue Strasse 1"), "buyer.email": Pii("new@example.invalid")}, later
    )
    assert outcome.fields_changed == ("buyer.email", "shipTo.line1")
    rec = world.orders.get(REF)
    assert rec is not None and rec.pii is not None and rec.pii["epoch"] == epoch_of(later)
    pii = world.cipher.open(REF, rec.pii)
    assert pii.ship_to is not None and pii.ship_to.line1 == Pii("Neue Strasse 1")
    assert pii.ship_to.city == Pii(token(1, "city")) and pii.buyer.email == Pii("new@example.invalid")
    (event,) = world.audit.trail(REF)
    assert event.details["fields"] == ["buyer.email", "shipTo.line1"]
    assert "Neue" not in json.dumps(list(world.store.scan(AUDIT)))


def test_correct_with_none_removes_an_optional_field(world: World) -> None:
    world.order()
    world.service.correct(REF, {"buyer.email": None, "shipTo.phone": None}, T0)
    rec = world.orders.get(REF)
    assert rec is not None and rec.pii is not None
    pii = world.cipher.open(REF, rec.pii)
    assert pii.buyer.email is None and pii.ship_to is not None and pii.ship_to.phone is None
    assert pii.ship_to.city == Pii(token(1, "city"))  # the rest as it was


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"shipTo.country_code": Pii("FR")}, "privacy_bad_field"),
        ({"buyer.email": "plain text"}, "privacy_bad_value"),
        ({"shipTo.line1": None}, "privacy_bad_value"),
        ({}, "privacy_no_changes"),
    ],
)
def test_bad_corrections_are_refused(world: World, changes: dict[str, Pii | None], code: str) -> None:
    world.order()
    before = world.orders.get(REF)
    with pytest.raises(InvalidInput) as caught:
        world.service.correct(REF, changes, T0)
    assert caught.value.code == code and world.orders.get(REF) == before
