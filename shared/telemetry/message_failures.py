"""What happens to a queue message whose processing fails, so that nothing is lost silently.

- Input or sealed data that can never succeed (`never_succeeds`): the message goes to
  `<queue>-poison` at once, wrapped with its reason code, and the trigger completes.
- A dependency asking us to wait (a transient error carrying `retry_after_s`, such as SP-API
  throttling): the message is re-queued with that visibility delay, and the trigger completes.
  Nothing sleeps inside a function.
- Any other failure: re-raised, so the queue retries it; on the last attempt allowed by
  host.json (`maxDequeueCount`) it is poisoned with its reason instead of being dropped by the
  runtime without one.

Poison records carry the reason code, the source queue, the message id and the dequeue count,
and the body scrubbed by allow-list (`NOT_PERSONAL`): ids, types, timestamps and counts stay,
every other value becomes its size and a digest. The same
fields, without the body, go to telemetry as a warning whose `Properties.event` is `poison`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol

import azure.functions as func

from shared.errors import ends_in_poison, never_succeeds, retry_delay
from shared.orders.messages import REF_PATTERN, REQUEST_ID_PATTERN
from shared.settings import POISON_MESSAGE_DAYS
from shared.telemetry.invocations import SCHEMA_VERSION, error_code

MAX_DEQUEUE_COUNT = 5  # equals host.json extensions.queues.maxDequeueCount (a test checks it)
MAX_RETRY_DELAY_S = 7 * 24 * 3600  # Azure Storage queues' visibility timeout limit
POISON_TTL_S = POISON_MESSAGE_DAYS * 24 * 3600  # set on every poison record: counted in the bound

log = logging.getLogger("fulfilment.messages")

# The poison record's custom dimensions (Log Analytics `Properties`): `invocation_id` is the
# message id, as on the telemetry records of its attempts, so a rule can follow one message.
# Only `custom_dimensions` reaches Application Insights; other `extra` keys are dropped.
POISON_DIMENSIONS = frozenset({"event", "schema", "reason_code", "queue", "invocation_id", "dequeue_count"})


class QueueSender(Protocol):
    """Sends a text message (base64 on the wire, as triggers expect) to a named queue; None
    for `time_to_live_s` leaves the queue's default (7 days)."""

    def send(
        self, queue: str, body: str, visibility_timeout_s: int = 0, time_to_live_s: int | None = None
    ) -> None: ...


# The poison record keeps a value only under a key that the app's own messages
# (`shared.orders.messages`, the privacy requests) or Amazon's notification envelope
# (OrderChangeNotification.json: its top level, metadata, summary and items) define as not
# personal, and only when the value has that key's shape: an id, a type or enum, a timestamp,
# a count or a flag. Keys are compared without case, underscores or hyphens. Every other value
# (free text, an unknown key, a wrong shape) becomes its size and a digest, keyed per process
# so a short value (a postal code) cannot be found by trying every candidate.
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
_ENUM = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")
_TIME = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}(T[0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,9})?)?(Z|[+-][0-9]{2}:?[0-9]{2})?)?"
)
_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]{0,63}")
ID, ENUM, TIME, REF, REQUEST = "id", "enum", "time", "ref", "request"
_SHAPES: dict[str, re.Pattern[str]] = {
    ID: _ID,
    ENUM: _ENUM,
    TIME: _TIME,
    REF: REF_PATTERN,
    REQUEST: REQUEST_ID_PATTERN,
}
NOT_PERSONAL: dict[str, str] = {
    # the app's own messages
    "ref": REF,
    "kind": ENUM,
    "requestid": REQUEST,
    "type": ENUM,
    # Amazon's notification envelope and its metadata
    "notificationversion": ID,
    "notificationtype": ENUM,
    "payloadversion": ID,
    "eventtime": TIME,
    "applicationid": ID,
    "subscriptionid": ID,
    "publishtime": TIME,
    "notificationid": ID,
    # the ORDER_CHANGE payload: ids, enums, timestamps, counts
    "notificationlevel": ENUM,
    "sellerid": ID,
    "amazonorderid": ID,
    "orderchangetype": ENUM,
    "timeoforderchange": TIME,
    "marketplaceid": ID,
    "orderstatus": ENUM,
    "purchasedate": TIME,
    "fulfillmenttype": ENUM,
    "ordertype": ENUM,
    "numberofitemsshipped": ENUM,
    "numberofitemsunshipped": ENUM,
    "earliestdeliverydate": TIME,
    "latestdeliverydate": TIME,
    "earliestshipdate": TIME,
    "latestshipdate": TIME,
    "cancelnotifydate": TIME,
    "orderprograms": ENUM,
    "shippingprograms": ENUM,
    "easyshipshipmentstatus": ENUM,
    "electronicinvoicestatus": ENUM,
    "orderitemid": ID,
    "sellersku": ID,
    "supplysourceid": ID,
    "orderitemstatus": ENUM,
    "quantity": ENUM,
    "quantityshipped": ENUM,
    "isbuyerrequestedcancel": ENUM,
    "itemearliestdeliverydate": TIME,
    "itemlatestdeliverydate": TIME,
}
_NESTED_JSON = ("{", "[")
_DIGEST_KEY = secrets.token_bytes(32)


def _shape(key: object) -> str | None:
    if not isinstance(key, str):
        return None
    return NOT_PERSONAL.get(key.replace("_", "").replace("-", "").lower())


def _digest(value: object) -> str:
    """A value's size and keyed digest: two equal values in one instance's records compare equal."""
    data = json.dumps(value, ensure_ascii=False).encode("utf-8", errors="replace")
    digest = hashlib.blake2b(data, key=_DIGEST_KEY, digest_size=16).hexdigest()
    return f"<{len(data)} bytes, digest {digest}>"


def _scrub(value: Any, shape: str | None = None, depth: int = 0) -> Any:
    """`value` as kept on a poison record, `shape` being what its key allows (None: nothing)."""
    if depth > 32:
        return _digest(value)
    if isinstance(value, dict):
        return {
            (k if isinstance(k, str) and _KEY.fullmatch(k) else _digest(k)): _scrub(v, _shape(k), depth + 1)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_scrub(v, shape, depth + 1) for v in value]
    if isinstance(value, str):
        if value.lstrip().startswith(_NESTED_JSON):
            # A notification wrapped as text in another message is judged key by key too.
            try:
                nested = json.loads(value)
            except (ValueError, RecursionError):
                return _digest(value)
            if isinstance(nested, (dict, list)):
                return json.dumps(_scrub(nested, None, depth + 1), separators=(",", ":"), ensure_ascii=False)
        if shape is not None and _SHAPES[shape].fullmatch(value):
            return value
        return _digest(value)
    if value is None or (shape is not None and isinstance(value, (bool, int, float))):
        return value
    return _digest(value)


def _unreadable(body: bytes) -> str:
    """What is kept of a body that is not JSON: its size and digest, never its text (keys that
    would mark its personal data cannot be found in it)."""
    # Keyed like `_digest`: a plain hash of a short body (a postal code) is reversed by trying
    # every candidate.
    keyed = hmac.new(_DIGEST_KEY, body, hashlib.sha256).hexdigest()
    return f"<not JSON: {len(body)} bytes, sha256 hmac {keyed}>"


def scrubbed_body(body: bytes) -> str:
    """The body kept on a poison record: everything needed to replay or diagnose it, without
    the personal data some messages carry (a poison queue outlives the order's retention).
    Parsed from the bytes, as the handlers parse it (UTF-8, UTF-16 or UTF-32, with or without
    a byte order mark)."""
    try:
        return json.dumps(_scrub(json.loads(body)), separators=(",", ":"), ensure_ascii=False)
    except (ValueError, RecursionError):
        # Not JSON, or nested deeper than the stack allows to parse or to walk.
        return _unreadable(body)


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
        body = json.dumps(record, separators=(",", ":"))
        self._sender.send(poison_queue(queue), body, time_to_live_s=POISON_TTL_S)
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
                reason = code if never_succeeds(exc) else f"retries_exhausted:{code}"
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
