"""Envelope encryption: round trips, authentication of every stored bit, binding to order and field."""

from __future__ import annotations

import base64
import json
from dataclasses import fields
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.crypto.envelope import (
    ADDRESS_LAYOUT,
    BUYER_LAYOUT,
    EnvelopeCipher,
    EnvelopeError,
    EnvelopeMalformed,
    EnvelopeShredded,
    EnvelopeTampered,
    EnvelopeUnknownEpoch,
    epoch_of,
)
from shared.crypto.key_epochs import KeyEpochs
from shared.crypto.pii import Pii
from shared.orders.domain import Address, Buyer
from shared.orders.record import OrderPii
from tests.fakes import MemorySecretStore

NOW = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)
REF = "ref-AAAAAAAAAAAAAAAA"
OTHER_REF = "ref-BBBBBBBBBBBBBBBB"

# Every code point, lone surrogates included: Pii holds any str.
any_text = st.text(st.characters(min_codepoint=0, max_codepoint=0x10FFFF, exclude_categories=()), max_size=30)
maybe_pii = st.none() | any_text.map(Pii)


@st.composite
def order_pii(draw: st.DrawFn) -> OrderPii:
    buyer = Buyer(
        name=draw(maybe_pii), email=draw(maybe_pii), company=draw(maybe_pii), vat_id=draw(maybe_pii)
    )
    ship_to = draw(
        st.none()
        | st.builds(
            Address,
            name=any_text.map(Pii),
            line1=any_text.map(Pii),
            city=any_text.map(Pii),
            postal_code=any_text.map(Pii),
            country_code=any_text,
            line2=maybe_pii,
            line3=maybe_pii,
            company=maybe_pii,
            state_or_region=maybe_pii,
            district=maybe_pii,
            phone=maybe_pii,
            address_type=st.none() | any_text,
        )
    )
    return OrderPii(order_id=draw(any_text), buyer=buyer, ship_to=ship_to)


def sample() -> OrderPii:
    return OrderPii(
        order_id="303-1234567-7654321",
        buyer=Buyer(name=Pii("Zoë ⟦secret-name⟧"), email=Pii("x@marketplace.amazon.de")),
        ship_to=Address(
            name=Pii("Zoë ⟦secret-name⟧"),
            line1=Pii("Hauptstraße 12"),
            city=Pii("Köln"),
            postal_code=Pii("50667"),
            country_code="DE",
        ),
    )


@pytest.fixture
def store() -> MemorySecretStore:
    return MemorySecretStore()


@pytest.fixture
def cipher(store: MemorySecretStore) -> EnvelopeCipher:
    return EnvelopeCipher(KeyEpochs(store, lambda: NOW))


def _cipher() -> EnvelopeCipher:
    return EnvelopeCipher(KeyEpochs(MemorySecretStore(), lambda: NOW))


@settings(max_examples=300)
@given(order_pii())
def test_open_of_seal_is_identity(pii: OrderPii) -> None:
    cipher = _cipher()
    envelope = cipher.seal(REF, pii, NOW)
    stored = json.loads(json.dumps(envelope))  # as it comes back from Cosmos
    assert cipher.open(REF, stored) == pii


def test_envelope_format(cipher: EnvelopeCipher) -> None:
    envelope = cipher.seal(REF, sample(), NOW)
    assert set(envelope) == {"v", "alg", "kw", "epoch", "kek", "wrappedKey", "nonce", "ct"}
    assert (envelope["v"], envelope["alg"], envelope["kw"]) == (1, "A256GCM", "A256KW")
    assert envelope["epoch"] == "2026-03-02P7D" == epoch_of(envelope)
    assert len(base64.b64decode(envelope["wrappedKey"])) == 40
    assert len(base64.b64decode(envelope["nonce"])) == 12
    # No plaintext in the stored form.
    assert "Zoë" not in json.dumps(envelope, ensure_ascii=False)
    assert "303-1234567" not in json.dumps(envelope)


def test_each_seal_uses_a_fresh_data_key_and_nonce(cipher: EnvelopeCipher) -> None:
    first, second = cipher.seal(REF, sample(), NOW), cipher.seal(REF, sample(), NOW)
    assert first["wrappedKey"] != second["wrappedKey"]
    assert first["nonce"] != second["nonce"]
    assert first["ct"] != second["ct"]


def _flip(text: str, bit: int) -> str:
    data = bytearray(base64.b64decode(text))
    data[(bit // 8) % len(data)] ^= 1 << (bit % 8)
    return base64.b64encode(bytes(data)).decode()


@settings(max_examples=300)
@given(st.sampled_from(["wrappedKey", "nonce", "ct"]), st.integers(min_value=0, max_value=10_000))
def test_any_single_bit_flip_of_stored_bytes_fails(part: str, bit: int) -> None:
    cipher = _cipher()
    envelope = cipher.seal(REF, sample(), NOW)
    changed = dict(envelope, **{part: _flip(envelope[part], bit)})
    with pytest.raises(EnvelopeTampered):
        cipher.open(REF, changed)


@settings(max_examples=300)
@given(st.data())
def test_any_single_bit_flip_of_stored_text_fails(data: st.DataObject) -> None:
    """Flip one bit of any character of any text field, as a bad disk or a hand edit would."""
    cipher = _cipher()
    envelope = cipher.seal(REF, sample(), NOW)
    key = data.draw(st.sampled_from(["alg", "kw", "epoch", "kek", "wrappedKey", "nonce", "ct"]))
    text = envelope[key]
    index = data.draw(st.integers(0, len(text) - 1))
    bit = data.draw(st.integers(0, 6))
    changed_text = text[:index] + chr(ord(text[index]) ^ (1 << bit)) + text[index + 1 :]
    with pytest.raises(EnvelopeError):
        cipher.open(REF, dict(envelope, **{key: changed_text}))


def test_version_change_fails(cipher: EnvelopeCipher) -> None:
    envelope = cipher.seal(REF, sample(), NOW)
    with pytest.raises(EnvelopeMalformed):
        cipher.open(REF, dict(envelope, v=2))


@pytest.mark.parametrize("cut", [1, 15, 16, 17])
def test_truncated_ciphertext_fails(cipher: EnvelopeCipher, cut: int) -> None:
    envelope = cipher.seal(REF, sample(), NOW)
    ct = base64.b64decode(envelope["ct"])
    with pytest.raises(EnvelopeTampered):
        cipher.open(REF, dict(envelope, ct=base64.b64encode(ct[:-cut]).decode()))


def test_envelope_moved_to_another_order_fails(cipher: EnvelopeCipher) -> None:
    envelope = cipher.seal(REF, sample(), NOW)
    with pytest.raises(EnvelopeTampered):
        cipher.open(OTHER_REF, envelope)


def test_envelopes_swapped_between_orders_fail(cipher: EnvelopeCipher) -> None:
    mine, theirs = cipher.seal(REF, sample(), NOW), cipher.seal(OTHER_REF, sample(), NOW)
    with pytest.raises(EnvelopeTampered):
        cipher.open(REF, theirs)
    with pytest.raises(EnvelopeTampered):
        cipher.open(OTHER_REF, mine)


def test_ciphertext_moved_to_another_field_fails(store: MemorySecretStore) -> None:
    epochs = KeyEpochs(store, lambda: NOW)
    cipher = EnvelopeCipher(epochs)
    sealed = cipher.seal_bytes(REF, "invoice-address", b"Hauptstrasse 12", NOW)
    assert cipher.open_bytes(REF, "invoice-address", sealed) == b"Hauptstrasse 12"
    with pytest.raises(EnvelopeTampered):
        cipher.open_bytes(REF, "label-address", sealed)
    # The order's PII envelope is a field too: another purpose's cipher cannot open it.
    with pytest.raises(EnvelopeTampered):
        EnvelopeCipher(epochs, purpose="invoice-address").open(REF, cipher.seal(REF, sample(), NOW))


def test_parts_mixed_from_two_envelopes_fail(cipher: EnvelopeCipher) -> None:
    first, second = cipher.seal(REF, sample(), NOW), cipher.seal(REF, sample(), NOW)
    for part in ("wrappedKey", "nonce", "ct"):
        with pytest.raises(EnvelopeTampered):
            cipher.open(REF, dict(first, **{part: second[part]}))


def test_wrong_key_fails_as_tampered(store: MemorySecretStore, cipher: EnvelopeCipher) -> None:
    envelope = cipher.seal(REF, sample(), NOW)
    other = store.set(f"kek-{envelope['epoch']}", base64.b64encode(bytes(32)).decode())
    with pytest.raises(EnvelopeTampered):
        cipher.open(REF, dict(envelope, kek=other.version))


def test_unknown_epoch_and_version(cipher: EnvelopeCipher) -> None:
    envelope = cipher.seal(REF, sample(), NOW)
    with pytest.raises(EnvelopeUnknownEpoch):
        cipher.open(REF, dict(envelope, epoch="last-tuesday"))
    with pytest.raises(EnvelopeUnknownEpoch):
        cipher.open(REF, dict(envelope, kek="0" * 32))
    with pytest.raises(EnvelopeShredded):  # well-formed, but no key was ever made for it
        cipher.open(REF, dict(envelope, epoch="2020-01-06P7D"))


@pytest.mark.parametrize("bad", [None, [], "text", {}, {"v": 1}, {"v": 1, "alg": "A256GCM", "kw": "A256KW"}])
def test_not_an_envelope(cipher: EnvelopeCipher, bad: object) -> None:
    with pytest.raises(EnvelopeError):
        cipher.open(REF, bad)  # type: ignore[arg-type]


def test_non_canonical_base64_is_refused(cipher: EnvelopeCipher) -> None:
    envelope = cipher.seal(REF, sample(), NOW)
    wrapped = envelope["wrappedKey"]  # 40 bytes: "==" padding, the last character has unused bits
    body = wrapped.rstrip("=")
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    sibling = body[:-1] + alphabet[alphabet.index(body[-1]) ^ 1] + "=="
    assert sibling != wrapped
    assert base64.b64decode(sibling) == base64.b64decode(wrapped)
    with pytest.raises(EnvelopeMalformed):
        cipher.open(REF, dict(envelope, wrappedKey=sibling))


def test_errors_hold_no_plaintext_or_key(store: MemorySecretStore, cipher: EnvelopeCipher) -> None:
    envelope = cipher.seal(REF, sample(), NOW)
    kek_text = store.get(f"kek-{envelope['epoch']}").value  # type: ignore[union-attr]
    attempts = [
        dict(envelope, ct=_flip(envelope["ct"], 3)),
        dict(envelope, wrappedKey=_flip(envelope["wrappedKey"], 3)),
        dict(envelope, epoch="nope"),
    ]
    for attempt in attempts:
        with pytest.raises(EnvelopeError) as caught:
            cipher.open(OTHER_REF, attempt)
        rendered = f"{caught.value} {caught.value!r} {caught.value.detail}"
        for secret in ("⟦secret-name⟧", "Hauptstraße", "303-1234567", kek_text, envelope["ct"][:12]):
            assert secret not in rendered
        assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_plaintext_layout_lists_every_domain_field() -> None:
    """A new Buyer or Address field must be appended to the layout, or it would not be sealed."""
    assert sorted(BUYER_LAYOUT) == sorted(f.name for f in fields(Buyer))
    assert sorted(ADDRESS_LAYOUT) == sorted(f.name for f in fields(Address))


def test_envelope_from_an_older_layout_still_opens(cipher: EnvelopeCipher) -> None:
    """Shorter arrays (written before a field was appended) read the missing values as None."""
    plaintext = json.dumps(["303-1", ["Zoë"], ["N", "L", "C", "P", "DE"]]).encode()
    sealed = cipher.seal_bytes(REF, "order-pii", plaintext, NOW)
    opened = cipher.open(REF, sealed)
    assert opened.buyer == Buyer(name=Pii("Zoë"))
    assert opened.ship_to == Address(Pii("N"), Pii("L"), Pii("C"), Pii("P"), "DE")
