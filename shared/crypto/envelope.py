"""Envelope encryption of an order's PII: AES-256-GCM under a fresh data key per order.

One envelope per order holds all of its PII (the Amazon order id, buyer and ship-to fields) as
one JSON plaintext, encrypted with a random 256-bit data key (DEK) that is used once and stored
only wrapped (RFC 3394 AES key wrap) by the KEK of the current key epoch. The associated data
binds the envelope's header, the order's reference and the purpose, so a ciphertext copied to
another order or another field, or a header edited to point at another key, fails to open.
docs/encryption.md explains the format, why one envelope per order, and the shredding.

Every failure is an `EnvelopeError` whose text is a reason only: no plaintext, no key bytes,
no ciphertext. The caller keeps the order stored and flags it; nothing is deleted on failure.
"""

from __future__ import annotations

import binascii
import functools
import json
import json.encoder
import os
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap, aes_key_wrap

from shared.crypto.key_epochs import EpochShredded, KekCorrupt, KeyEpochs, UnknownEpoch
from shared.crypto.pii import RecordLayout
from shared.errors import AppError, IntegrityFailure
from shared.orders.domain import Address, Buyer
from shared.orders.record import OrderPii

VERSION = 1
ALG = "A256GCM"  # content encryption, named as in JOSE (RFC 7518)
KEY_WRAP = "A256KW"  # RFC 3394 AES key wrap with a 256-bit KEK
ORDER_PII = "order-pii"
DEK_BYTES = 32
NONCE_BYTES = 12
WRAPPED_BYTES = DEK_BYTES + 8
TAG_BYTES = 16


class EnvelopeError(AppError):
    code = "envelope_invalid"


class EnvelopeMalformed(EnvelopeError):
    """Not an envelope this code can read (missing field, bad encoding, unknown version)."""

    code = "envelope_malformed"


class EnvelopeTampered(EnvelopeError, IntegrityFailure):
    """Authentication failed: a changed or truncated envelope, another order's or field's
    envelope, or the wrong key. The three are indistinguishable by design."""

    code = "envelope_tampered"


class EnvelopeUnknownEpoch(EnvelopeError):
    code = "envelope_unknown_epoch"


class EnvelopeShredded(EnvelopeError):
    """The envelope's epoch key was destroyed: its PII is gone for good."""

    code = "envelope_shredded"


def _b64(data: bytes) -> str:
    return binascii.b2a_base64(data, newline=False).decode("ascii")


# The last character before the padding carries bits that decoding drops: with one byte in the
# last group only these characters leave them zero, with two bytes only these.
_CANONICAL_LAST = {1: frozenset("AQgw"), 2: frozenset("AEIMQUYcgkosw048")}


def _unb64(envelope: Mapping[str, Any], name: str, size: int | None = None) -> bytes:
    text = envelope.get(name)
    if not isinstance(text, str):
        raise EnvelopeMalformed(f"{name} missing")
    try:
        data = binascii.a2b_base64(text, strict_mode=True)
    except (binascii.Error, ValueError):
        raise EnvelopeMalformed(f"{name} is not base64") from None
    # Base64 has several spellings of the same bytes (unused trailing bits, padding that strict
    # mode lets through); only the canonical one is accepted, so every change to the stored text
    # is an error, never a silent no-op. Checked in place: the same verdict as re-encoding.
    tail = len(data) % 3
    if len(text) != (len(data) + 2) // 3 * 4 or (tail and text[tail - 4] not in _CANONICAL_LAST[tail]):
        raise EnvelopeMalformed(f"{name} is not canonical base64")
    if size is not None and len(data) != size:
        raise EnvelopeTampered(f"{name} has the wrong length")
    return data


def _text(envelope: Mapping[str, Any], name: str) -> str:
    value = envelope.get(name)
    if not isinstance(value, str) or not value:
        raise EnvelopeMalformed(f"{name} missing")
    return value


@functools.lru_cache(maxsize=64)
def _header(epoch: str, kek_version: str, purpose: str) -> bytes:
    """The associated data before the order's reference: the same for every order of an epoch
    and purpose, so built once (the cache is small and holds no secret)."""
    return (
        f"{VERSION}|{ALG}|{KEY_WRAP}|{len(epoch)}:{epoch}|{len(kek_version)}:{kek_version}"
        f"|{len(purpose)}:{purpose}|"
    ).encode()


def _associated_data(epoch: str, kek_version: str, purpose: str, ref: str) -> bytes:
    # Each part length-prefixed, so no two different headers give the same bytes.
    return _header(epoch, kek_version, purpose) + f"{len(ref)}:{ref}".encode()


# The plaintext is a JSON array: [order id, [buyer values], [ship-to values] or null], values
# in the order below. Half the size of an object with keys, and faster both ways. The layouts
# are append-only: a new Buyer or Address field goes at the end, so older envelopes (shorter
# arrays) still read, the missing values as None; tests check every field is listed.
BUYER_LAYOUT = ("name", "email", "company", "vat_id")
ADDRESS_LAYOUT = (
    "name",
    "line1",
    "city",
    "postal_code",
    "country_code",
    "line2",
    "line3",
    "company",
    "state_or_region",
    "district",
    "phone",
    "address_type",
)
_PLAIN_FIELDS = frozenset({"country_code", "address_type"})  # plain str in the domain, not Pii
_BUYER = RecordLayout(Buyer, BUYER_LAYOUT, _PLAIN_FIELDS)
_ADDRESS = RecordLayout(Address, ADDRESS_LAYOUT, _PLAIN_FIELDS)
_ORDER_FIELDS = ("order_id", "buyer", "ship_to")  # OrderPii itself: no field wrapped
_ORDER = RecordLayout(OrderPii, _ORDER_FIELDS, _ORDER_FIELDS)
# ASCII output (non-ASCII as \u escapes, lone surrogates included): faster to write and to
# turn into bytes than UTF-8 text, at a few bytes more per accented letter.
_JSON = json.JSONEncoder(separators=(",", ":"))
# `JSONEncoder.encode` builds the C encoder anew on every call: half its cost for a value this
# small. Without circular-reference markers the C encoder keeps no state between calls (the
# plaintext is lists of text, never circular), so one is built once; where the C module is
# missing, the plain encoder does the work. Either way the bytes are `_JSON.encode`'s.
_C_MAKE_ENCODER = getattr(json.encoder, "c_make_encoder", None)
_C_ENCODER = (
    _C_MAKE_ENCODER(
        None, _JSON.default, json.encoder.encode_basestring_ascii, None, ":", ",", False, False, True
    )
    if _C_MAKE_ENCODER is not None
    else None
)
_JSON_DECODER = json.JSONDecoder()


def _loads(text: str) -> Any:
    """`json.loads(text)`, half the cost for what `_encode` writes: `raw_decode` skips the two
    whitespace scans around the value. Anything else (surrounding whitespace, trailing data,
    not JSON) goes to `json.loads`, so the verdict is always exactly its verdict."""
    try:
        value, end = _JSON_DECODER.raw_decode(text)
    except ValueError:
        return json.loads(text)
    return value if end == len(text) else json.loads(text)


def _encode(pii: OrderPii) -> bytes:
    ship_to = pii.ship_to
    plain = [
        pii.order_id,
        _BUYER.reveal(pii.buyer),
        _ADDRESS.reveal(ship_to) if ship_to else None,
    ]
    return _dumps(plain)


def _dumps(value: list[Any]) -> bytes:
    if _C_ENCODER is None:
        return _JSON.encode(value).encode("ascii")
    return "".join(_C_ENCODER(value, 0)).encode("ascii")


def _decode(plaintext: bytes) -> OrderPii:
    try:
        order_id, buyer, ship_to = _loads(plaintext.decode("utf-8", "surrogatepass"))
        if not isinstance(order_id, str):
            raise TypeError("order id is not text")
        return _ORDER.build(
            [order_id, _BUYER.build(buyer), _ADDRESS.build(ship_to) if ship_to is not None else None]
        )
    except (ValueError, TypeError):
        raise EnvelopeMalformed("plaintext is not order PII") from None


def epoch_of(envelope: Mapping[str, Any]) -> str | None:
    """The key epoch an envelope was sealed under (retention queries the same field)."""
    epoch = envelope.get("epoch")
    return epoch if isinstance(epoch, str) else None


class EnvelopeCipher:
    """Implements `shared.orders.record.PiiCipher`: `seal` an order's PII, `open` it again."""

    def __init__(self, epochs: KeyEpochs, *, purpose: str = ORDER_PII) -> None:
        self._epochs = epochs
        self._purpose = purpose

    def seal(self, ref: str, pii: OrderPii, now: datetime) -> dict[str, Any]:
        return self.seal_bytes(ref, self._purpose, _encode(pii), now)

    def open(self, ref: str, envelope: Mapping[str, Any]) -> OrderPii:
        return _decode(self.open_bytes(ref, self._purpose, envelope))

    def seal_bytes(self, ref: str, purpose: str, plaintext: bytes, now: datetime) -> dict[str, Any]:
        """Seal any bytes of an order for one `purpose` (a field name); `open_bytes` needs both."""
        kek = self._epochs.current(now)
        dek = AESGCM.generate_key(bit_length=256)
        nonce = os.urandom(NONCE_BYTES)
        aad = _associated_data(kek.epoch, kek.version, purpose, ref)
        return {
            "v": VERSION,
            "alg": ALG,
            "kw": KEY_WRAP,
            "epoch": kek.epoch,
            "kek": kek.version,
            "wrappedKey": _b64(aes_key_wrap(kek.key, dek)),
            "nonce": _b64(nonce),
            "ct": _b64(AESGCM(dek).encrypt(nonce, plaintext, aad)),
        }

    def open_bytes(self, ref: str, purpose: str, envelope: Mapping[str, Any]) -> bytes:
        # A stored document is a dict; the ABC check, ten times slower, only for anything else.
        if type(envelope) is not dict and not isinstance(envelope, Mapping):
            raise EnvelopeMalformed("not an envelope")
        if envelope.get("v") != VERSION or envelope.get("alg") != ALG or envelope.get("kw") != KEY_WRAP:
            raise EnvelopeMalformed("unsupported envelope version or algorithm")
        epoch, kek_version = _text(envelope, "epoch"), _text(envelope, "kek")
        wrapped = _unb64(envelope, "wrappedKey", WRAPPED_BYTES)
        nonce = _unb64(envelope, "nonce", NONCE_BYTES)
        ct = _unb64(envelope, "ct")
        if len(ct) < TAG_BYTES:
            raise EnvelopeTampered("ciphertext truncated")
        kek_key = self._kek(epoch, kek_version)
        try:
            dek = aes_key_unwrap(kek_key, wrapped)
        except InvalidUnwrap:
            raise EnvelopeTampered("data key failed authentication") from None
        try:
            return AESGCM(dek).decrypt(nonce, ct, _associated_data(epoch, kek_version, purpose, ref))
        except InvalidTag:
            raise EnvelopeTampered("ciphertext failed authentication") from None

    def _kek(self, epoch: str, version: str) -> bytes:
        try:
            return self._epochs.key(epoch, version).key
        except UnknownEpoch:
            raise EnvelopeUnknownEpoch("no such key epoch or KEK version") from None
        except EpochShredded:
            raise EnvelopeShredded("the key epoch was shredded") from None
        except KekCorrupt:
            raise EnvelopeUnknownEpoch("the epoch's KEK is unusable") from None
