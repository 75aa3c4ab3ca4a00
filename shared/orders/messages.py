"""Queue names and the messages between stages: ids and enums only, never personal data.

Queue messages sit in Storage outside our encryption and land in `<queue>-poison` on failure,
so each carries an order's pseudonymous reference, never its Amazon id or any buyer field.
`decode` rejects anything else with a reason code; the function lets the error propagate and
the runtime poisons the message after `maxDequeueCount` attempts.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from typing import Any, ClassVar, Self

from shared.errors import InvalidInput

ORDER_NOTIFICATIONS = "order-notifications"
SHIPMENTS = "shipments"
INVOICES = "invoices"
PRIVACY_REQUESTS = "privacy-requests"
STORAGE_CONNECTION = "STORAGE"

MAX_MESSAGE_BYTES = 64 * 1024  # Azure Storage queue limit
#: The length of what `shared.orders.reference` produces (base64url of a truncated HMAC).
REF_LENGTH = 22
# Every pattern here is used with `fullmatch` and spells its characters out in ASCII: `\d`
# would accept Arabic-Indic or fullwidth digits, and `$` a trailing newline.
#: What `shared.orders.reference` produces, exactly. Telemetry accepts only this as `order_ref`.
REF_PATTERN = re.compile(rf"[A-Za-z0-9_-]{{{REF_LENGTH}}}")
# A privacy request's id: the operator's ticket or Amazon's request id.
REQUEST_ID_PATTERN = re.compile(r"[A-Za-z0-9._:-]{8,128}")
# An Amazon order id as operators type it (3-7-7 ASCII digits).
ORDER_ID_PATTERN = re.compile(r"[0-9]{3}-[0-9]{7}-[0-9]{7}")
# An order id anywhere in a text (a reference must never carry one).
_ORDER_ID_INSIDE = re.compile(r"[0-9]{3}-[0-9]{7}-[0-9]{7}")


class MalformedMessage(InvalidInput):
    code = "malformed_message"


def parse_json(body: bytes | str) -> dict[str, Any]:
    if len(body) > MAX_MESSAGE_BYTES:
        raise MalformedMessage("message too large", code="message_too_large")
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):  # RecursionError: nesting deeper than the parser allows
        raise MalformedMessage("not JSON", code="message_not_json") from None
    if not isinstance(data, dict):
        raise MalformedMessage("not a JSON object", code="message_not_object")
    return data


def is_order_id(value: object) -> bool:
    """Whether `value` is an Amazon order id exactly as Amazon writes it (3-7-7 ASCII digits)."""
    return isinstance(value, str) and ORDER_ID_PATTERN.fullmatch(value) is not None


def is_request_id(value: object) -> bool:
    return isinstance(value, str) and REQUEST_ID_PATTERN.fullmatch(value) is not None


def is_ref(value: object) -> bool:
    """Whether `value` has exactly the shape of a reference (and does not carry an order id)."""
    return (
        isinstance(value, str)
        and REF_PATTERN.fullmatch(value) is not None
        and _ORDER_ID_INSIDE.search(value) is None
    )


def checked_ref(value: object) -> str:
    if not is_ref(value):
        raise MalformedMessage("ref missing or not a reference", code="message_bad_ref")
    assert isinstance(value, str)  # noqa: S101 - is_ref guarantees it
    return value


@dataclass(frozen=True, slots=True)
class StageMessage:
    """Base of the messages that move one order to its next stage."""

    ref: str
    fields: ClassVar[tuple[str, ...]] = ("ref",)

    def encode(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def decode(cls, body: bytes | str) -> Self:
        data = parse_json(body)
        unknown = set(data) - set(cls.fields)
        if unknown:
            raise MalformedMessage("unexpected fields", code="message_unexpected_fields")
        return cls(ref=checked_ref(data.get("ref")))


@dataclass(frozen=True, slots=True)
class ShipOrder(StageMessage):
    pass


@dataclass(frozen=True, slots=True)
class IssueInvoice(StageMessage):
    kind: str = "invoice"
    fields: ClassVar[tuple[str, ...]] = ("ref", "kind")

    @classmethod
    def decode(cls, body: bytes | str) -> Self:
        data = parse_json(body)
        if set(data) - set(cls.fields):
            raise MalformedMessage("unexpected fields", code="message_unexpected_fields")
        kind = data.get("kind", "invoice")
        if kind not in ("invoice", "credit_note"):
            raise MalformedMessage("kind must be invoice or credit_note", code="message_bad_kind")
        return cls(ref=checked_ref(data.get("ref")), kind=kind)
