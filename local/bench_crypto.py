"""Cost of sealing and opening one order's PII, against a bare AES-256-GCM + RFC 3394 reference.

`encrypt_decrypt_us_per_order`: EnvelopeCipher.seal + open of a full order (order id, buyer,
ship-to), fresh DEK, DEK wrap and unwrap, KEK cached, envelope encoded as stored.
`encrypt_decrypt_reference_us_per_order`: the same fields as one JSON plaintext, one AES-256-GCM
encryption and decryption under a fresh DEK, one RFC 3394 wrap and unwrap: no framework.
`encrypt_decrypt_per_field_us_per_order`: the alternative design (one GCM operation per field
under one DEK), measured to justify one envelope per order (docs/encryption.md).
"""

from __future__ import annotations

import json
import os
import statistics
import time
from base64 import b64decode, b64encode
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.keywrap import aes_key_unwrap, aes_key_wrap

from local.memory_stores import MemorySecretStore
from shared.crypto.envelope import EnvelopeCipher, _decode, _encode
from shared.crypto.key_epochs import KeyEpochs
from shared.crypto.pii import Pii
from shared.orders.domain import Address, Buyer
from shared.orders.record import OrderPii

NOW = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)
REF = "bench-ref-0000000001"
ITERATIONS = 250
ROUNDS = 120


def sample_order() -> OrderPii:
    return OrderPii(
        order_id="303-1234567-7654321",
        buyer=Buyer(
            name=Pii("Zoë Müller-Łukasiewicz"),
            email=Pii("k3v9x2m4q8h1@marketplace.amazon.de"),
            company=Pii("Müller & Söhne GmbH"),
            vat_id=Pii("DE123456789"),
        ),
        ship_to=Address(
            name=Pii("Zoë Müller-Łukasiewicz"),
            line1=Pii("Hauptstraße 12"),
            line2=Pii("Hinterhaus, 3. OG"),
            city=Pii("Köln"),
            postal_code=Pii("50667"),
            country_code="DE",
            state_or_region=Pii("Nordrhein-Westfalen"),
            phone=Pii("+49 221 1234567"),
            address_type="Residential",
        ),
    )


def _medians_us(operations: dict[str, Callable[[], object]]) -> dict[str, float]:
    """Median µs per call of each operation, and of each one's ratio to the first. The machine's
    speed drifts (a shared virtual machine), so the operations run in short blocks, one block
    of each per round, and a ratio is taken within a round: a slow spell slows both sides."""
    samples: dict[str, list[float]] = {name: [] for name in operations}
    for round_number in range(ROUNDS):
        # Alternate the order within a round, so neither side always runs first.
        names = list(operations) if round_number % 2 == 0 else list(reversed(operations))
        for name in names:
            operation = operations[name]
            started = time.perf_counter()
            for _ in range(ITERATIONS):
                operation()
            samples[name].append((time.perf_counter() - started) / ITERATIONS * 1e6)
    first = samples[next(iter(operations))]
    medians = {name: statistics.median(values) for name, values in samples.items()}
    for name, values in samples.items():
        medians[f"{name}/ratio"] = statistics.median(v / f for v, f in zip(values, first, strict=True))
    return medians


def _framework(cipher: EnvelopeCipher, pii: OrderPii) -> Callable[[], object]:
    def once() -> object:
        return cipher.open(REF, cipher.seal(REF, pii, NOW))

    return once


def _reference(kek: bytes, plain: list[object]) -> Callable[[], object]:
    """The least a stored envelope takes: the same plaintext (a JSON array of the field values),
    GCM under a fresh DEK, one RFC 3394 wrap, base64 text for the document, and back."""
    aad = REF.encode()

    def once() -> object:
        dek = AESGCM.generate_key(bit_length=256)
        nonce = os.urandom(12)
        ct = AESGCM(dek).encrypt(nonce, json.dumps(plain).encode(), aad)
        stored = (b64encode(aes_key_wrap(kek, dek)), b64encode(nonce), b64encode(ct))
        wrapped, nonce, ct = (b64decode(part) for part in stored)
        return json.loads(AESGCM(aes_key_unwrap(kek, wrapped)).decrypt(nonce, ct, aad))

    return once


def _codec(pii: OrderPii) -> Callable[[], object]:
    def once() -> object:
        return _decode(_encode(pii))

    return once


def _per_field(kek: bytes, pii: OrderPii) -> Callable[[], object]:
    def once() -> object:
        flat = _flatten(pii.to_plain())
        dek = AESGCM.generate_key(bit_length=256)
        sealer = AESGCM(dek)
        sealed = {}
        for name, value in flat.items():
            nonce = os.urandom(12)
            sealed[name] = (nonce, sealer.encrypt(nonce, value.encode(), (REF + name).encode()))
        wrapped = aes_key_wrap(kek, dek)
        opener = AESGCM(aes_key_unwrap(kek, wrapped))
        return {n: opener.decrypt(nc, ct, (REF + n).encode()) for n, (nc, ct) in sealed.items()}

    return once


def _flatten(plain: dict[str, object], prefix: str = "") -> dict[str, str]:
    flat: dict[str, str] = {}
    for name, value in plain.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{name}."))
        elif value is not None:
            flat[prefix + name] = str(value)
    return flat


def run() -> Iterator[dict[str, object]]:
    pii = sample_order()
    epochs = KeyEpochs(MemorySecretStore(), lambda: NOW)
    cipher = EnvelopeCipher(epochs)
    kek = epochs.current(NOW).key
    medians = _medians_us(
        {
            "reference": _reference(kek, json.loads(_encode(pii))),
            "framework": _framework(cipher, pii),
            "codec": _codec(pii),
            "per_field": _per_field(kek, pii),
        }
    )
    framework, reference, per_field = medians["framework"], medians["reference"], medians["per_field"]
    yield {"metric": "encrypt_decrypt_us_per_order", "value": round(framework, 2), "unit": "us"}
    yield {"metric": "encrypt_decrypt_reference_us_per_order", "value": round(reference, 2), "unit": "us"}
    yield {
        "metric": "encrypt_decrypt_ratio_to_reference",
        "value": round(medians["framework/ratio"], 3),
        "unit": "x",
        "target": 1.3,
    }
    yield {"metric": "encrypt_decrypt_per_field_us_per_order", "value": round(per_field, 2), "unit": "us"}
    # The part of the gap that is the typed PII itself: revealing the Pii fields and building
    # Pii, Buyer, Address and OrderPii again (what the app needs, and the reference skips).
    yield {"metric": "pii_codec_us_per_order", "value": round(medians["codec"], 2), "unit": "us"}


if __name__ == "__main__":
    for row in run():
        print(json.dumps(row))
