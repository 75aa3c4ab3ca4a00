"""What happens to a queue message whose processing fails, so that nothing is lost silently.

- Input that can never succeed (`InvalidInput`): the message goes to `<queue>-poison` at once,
  wrapped with its reason code, and the trigger completes (no pointless retries).
- A dependency asking us to wait (a transient error carrying `retry_after_s`, such as SP-API
  throttling): the message is re-queued with that visibility delay, and the trigger completes.
  Nothing sleeps inside a function.
- Any other failure: re-raised, so the queue retries it; on the last attempt allowed by
  host.json (`maxDequeueCount`) it is poisoned with its reason instead of being dropped by the
  runtime without one.

Poison records carry the reason code, the source queue, the message id and the dequeue count,
and the original body (queue bodies hold references and enums only, never buyer data). The same
fields, without the body, go to telemetry as a warning whose `Properties.event` is `poison`.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol

import azure.functions as func

from shared.crypto.pii import REDACTED
from shared.errors import InvalidInput, ends_in_poison, retry_delay
from shared.telemetry.invocations import SCHEMA_VERSION, error_code
from shared.telemetry.redaction import redact_text

MAX_DEQUEUE_COUNT = 5  # equals host.json extensions.queues.maxDequeueCount (a test checks it)
MAX_RETRY_DELAY_S = 7 * 24 * 3600  # Azure Storage queues' visibility timeout limit

log = logging.getLogger("fulfilment.messages")

# The poison record's custom dimensions (Log Analytics `Properties`): `invocation_id` is the
# message id, as on the telemetry records of its attempts, so a rule can follow one message.
# Only `custom_dimensions` reaches Application Insights; other `extra` keys are dropped.
POISON_DIMENSIONS = frozenset({"event", "schema", "reason_code", "queue", "invocation_id", "dequeue_count"})


class QueueSender(Protocol):
    """Sends a text message (base64 on the wire, as triggers expect) to a named queue."""

    def send(self, queue: str, body: str, visibility_timeout_s: int = 0) -> None: ...


# Keys that can carry personal data in what arrives on our queues: ORDER_CHANGE notifications
# hold the buyer's postal code; anything else here would be a forwarder's mistake, so every
# buyer and address field of Amazon's Orders models (v0 and 2026-01-01) is listed, compared
# without case or underscores. Country and address type stay: they identify no one.
PII_KEYS = frozenset(
    {
        "destinationpostalcode",
        "postalcode",
        "name",
        "companyname",
        "addressline1",
        "addressline2",
        "addressline3",
        "city",
        "county",
        "district",
        "districtorcounty",
        "municipality",
        "stateorregion",
        "phone",
        "email",
        "extendedfields",
        "streetname",
        "streetnumber",
        "complement",
        "neighborhood",
        "geocoordinates",
        "deliveryaddress",
        "shippingaddress",
        "defaultshipfromlocationaddress",
        "deliverypreference",
        "deliverypreferences",
        "addressinstructions",
        "dropofflocation",
        "buyerinfo",
        "buyername",
        "buyeremail",
        "buyercounty",
        "buyercompanyname",
        "buyertaxinfo",
        "companylegalname",
        "taxclassifications",
        "taxingregion",
        "purchaseordernumber",
        "buyerpurchaseordernumber",
    }
)
_NESTED_JSON = ("{", "[")


def _is_pii_key(key: object) -> bool:
    return isinstance(key, str) and key.replace("_", "").replace("-", "").lower() in PII_KEYS


def _scrub(value: Any, depth: int = 0) -> Any:
    if depth > 32:
        return REDACTED
    if isinstance(value, dict):
        return {k: REDACTED if _is_pii_key(k) else _scrub(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub(v, depth + 1) for v in value]
    if isinstance(value, str):
        return _scrub_text(value, depth)
    return value


def _scrub_text(text: str, depth: int) -> str:
    """A string holding JSON (a notification wrapped in another message, say) is scrubbed as
    JSON; any other text by pattern."""
    if text.lstrip().startswith(_NESTED_JSON):
        try:
            nested = json.loads(text)
        except (ValueError, RecursionError):
            return _unreadable(text.encode("utf-8", errors="replace"))
        return json.dumps(_scrub(nested, depth + 1), separators=(",", ":"), ensure_ascii=False)
    return redact_text(text)


def _unreadable(body: bytes) -> str:
    """What is kept of a body that is not JSON: its size and digest, never its text (keys that
    would mark its personal data cannot be found in it)."""
    return f"<not JSON: {len(body)} bytes, sha256 {hashlib.sha256(body).hexdigest()}>"


def scrubbed_body(body: bytes) -> str:
    """The body kept on a poison record: everything needed to replay or diagnose it, without
    the personal data some messages carry (a poison queue outlives the order's retention).
    Parsed from the bytes, as the handlers parse it (UTF-8, UTF-16 or UTF-32, with or without
    a byte order mark)."""
    try:
        parsed = json.loads(body)
    except (ValueError, RecursionError):
        return _unreadable(body)
    return json.dumps(_scrub(parsed), separators=(",", ":"), ensure_ascii=False)


def poison_queue(queue: str) -> str:
    return f"{queue}-poison"


class MessageFailures:
    def __init__(self, sender: QueueSender, max_dequeue_count: int = MAX_DEQUEUE_COUNT) -> None:
        self._sender = sender
        self._max = max_dequeue_count

    def poison(self, queue: str, msg: func.QueueMessage, reason: str) -> None:
        record = {
            "reason": reason,
            "queue": queue,
            "messageId": msg.id,
            "dequeueCount": msg.dequeue_count,
            "body": scrubbed_body(msg.get_body()),
        }
        self._sender.send(poison_queue(queue), json.dumps(record, separators=(",", ":")))
        dims = {
            "event": "poison",
            "schema": SCHEMA_VERSION,
            "reason_code": reason,
            "queue": queue,
            "invocation_id": msg.id or "",
            "dequeue_count": int(msg.dequeue_count or 0),
        }
        log.warning("message poisoned", extra={"custom_dimensions": dims})

    @contextmanager
    def guard(self, queue: str, msg: func.QueueMessage) -> Iterator[None]:
        try:
            yield
        except Exception as exc:
            # The decision the failure record states too (`ends_in_poison`); a wait that cannot
            # be re-queued (a body in no text encoding) takes the host's retries like the rest.
            dequeue_count = msg.dequeue_count or 1
            delay = retry_delay(exc)
            if delay is not None and self._requeue(queue, msg, delay):
                return
            if ends_in_poison(exc, dequeue_count, self._max) or dequeue_count >= self._max:
                code = error_code(exc)
                reason = code if isinstance(exc, InvalidInput) else f"retries_exhausted:{code}"
                self.poison(queue, msg, reason)
                return
            raise

    def _requeue(self, queue: str, msg: func.QueueMessage, delay: float) -> bool:
        """Send the message again with a visibility delay; False when its body is not text in
        any encoding JSON allows, which then takes the host's retries and, on the last attempt,
        the poison queue with its reason, instead of failing inside this handler."""
        raw = msg.get_body()
        try:
            # Decoded as the handlers' JSON parser reads it (UTF-8, -16 or -32, a byte order
            # mark); re-sent as text, it is the same JSON.
            body = raw.decode(json.detect_encoding(raw))
        except UnicodeDecodeError:
            return False
        self._sender.send(queue, body, visibility_timeout_s=min(int(delay) + 1, MAX_RETRY_DELAY_S))
        return True
