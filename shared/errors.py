"""Typed errors whose text is a reason code and never personal data.

Every error the app raises on bad input carries a short machine-readable `code` (the value that
lands in telemetry and on a poisoned message) and a fixed human sentence. Neither is built from
input values, so no exception text can leak what was in the input.
"""

from __future__ import annotations


class AppError(Exception):
    """Base of the app's errors. `code` is stable and documented in docs/operations.md."""

    code = "app_error"
    #: True when retrying the same message can succeed (throttling, a dependency down).
    transient = False

    def __init__(self, detail: str = "", *, code: str | None = None) -> None:
        if code is not None:
            self.code = code
        self.detail = detail
        super().__init__(f"{self.code}: {detail}" if detail else self.code)


class SettingsError(AppError):
    code = "settings_invalid"


class InvalidInput(AppError):
    """Input that will never become valid by retrying: poison it with the reason."""

    code = "invalid_input"


class OrderMappingError(InvalidInput):
    code = "order_unmappable"


class IntegrityFailure(AppError):
    """Sealed data that failed authentication (changed, another order's, or under the wrong
    key). Reading it again reads the same bytes: never retried. `shared.orders.integrity` says
    what becomes of the order."""

    code = "integrity_failure"


def never_succeeds(exc: BaseException) -> bool:
    """Whether retrying the message that raised `exc` can never succeed."""
    return isinstance(exc, (InvalidInput, IntegrityFailure))


class TransientError(AppError):
    code = "transient"
    transient = True


def ends_in_poison(exc: BaseException, dequeue_count: int, max_dequeue_count: int) -> bool:
    """Whether a queue message whose handling raised `exc` goes to its poison queue now (as
    `shared.telemetry.message_failures` decides): input that can never succeed at once; a dependency
    that named a wait (throttling) never, since the message is re-queued with that wait;
    anything else on the last attempt host.json allows. A timer (`dequeue_count` 0) has no
    message."""
    if dequeue_count <= 0:
        return False
    if never_succeeds(exc):
        return True
    if retry_delay(exc) is not None:
        return False
    return dequeue_count >= max_dequeue_count


def retry_delay(exc: BaseException) -> float | None:
    """The wait a dependency named (throttling), after which the message is tried again."""
    delay = getattr(exc, "retry_after_s", None) if isinstance(exc, AppError) and exc.transient else None
    return None if delay is None else float(delay)


# --- connection failures of the SDKs, as stable reason codes ---------------------------------
#
# An SDK that loses its connection raises its own class (azure-core's ServiceRequestError when a
# request could not be sent, ServiceResponseError when the answer never came; requests'
# ConnectionError and Timeout; the standard library's ConnectionError and TimeoutError). Those
# class names must never become reason codes: the code names the dependency instead, found from
# the frames the error passed through (innermost first), and it is transient (retrying may
# succeed). This is the one place that mapping lives; `error_code` in
# `shared.telemetry.invocations` applies it to telemetry and poison reasons alike.

#: (module, class) pairs, matched anywhere in the error's class hierarchy.
CONNECTION_FAILURES = frozenset(
    {
        ("azure.core.exceptions", "ServiceRequestError"),
        ("azure.core.exceptions", "ServiceResponseError"),
        ("azure.core.exceptions", "ServiceRequestTimeoutError"),
        ("azure.core.exceptions", "ServiceResponseTimeoutError"),
        ("requests.exceptions", "ConnectionError"),
        ("requests.exceptions", "Timeout"),
        ("urllib3.exceptions", "ProtocolError"),
        ("urllib3.exceptions", "NewConnectionError"),
        ("urllib3.exceptions", "MaxRetryError"),
        ("urllib3.exceptions", "TimeoutError"),
        ("http.client", "RemoteDisconnected"),
        ("http.client", "IncompleteRead"),
        ("builtins", "ConnectionError"),
        ("builtins", "TimeoutError"),
    }
)
#: Module prefixes (the SDK's or the app's adapter's) -> the dependency's reason code.
DEPENDENCY_CODES: tuple[tuple[str, str], ...] = (
    ("azure.cosmos", "store_unavailable"),
    ("shared.storage.document_store", "store_unavailable"),
    ("azure.storage.blob", "blob_unavailable"),
    ("shared.storage.blob_store", "blob_unavailable"),
    ("azure.storage.queue", "queue_unavailable"),
    ("shared.storage.queues", "queue_unavailable"),
    ("azure.keyvault", "key_vault_unavailable"),
    ("shared.crypto.key_vault", "key_vault_unavailable"),
    ("azure.identity", "identity_unavailable"),
    ("karrio", "carrier_unavailable"),
    ("shared.shipping.carriers", "carrier_unavailable"),
    ("shared.ingestion.spapi_gateway", "spapi_unavailable"),
    ("shared.invoices.feeds", "spapi_unavailable"),
    ("boto3", "sqs_unavailable"),
    ("botocore", "sqs_unavailable"),
)
#: A connection failure whose frames name no known dependency.
DEPENDENCY_UNAVAILABLE = "dependency_unavailable"


def _is_connection_failure(exc: BaseException) -> bool:
    return any((cls.__module__, cls.__name__) in CONNECTION_FAILURES for cls in type(exc).__mro__)


def _modules(exc: BaseException) -> list[str]:
    """The modules of the frames `exc` passed through, innermost first."""
    names = []
    tb = exc.__traceback__
    while tb is not None:
        names.append(str(tb.tb_frame.f_globals.get("__name__", "")))
        tb = tb.tb_next
    return names[::-1]


def connection_failure_code(exc: BaseException) -> str | None:
    """The stable reason code of an SDK's connection failure (`exc` or what it was raised from),
    or None when `exc` is no connection failure."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if _is_connection_failure(current):
            for module in _modules(current) + _modules(exc):
                for prefix, code in DEPENDENCY_CODES:
                    if module == prefix or module.startswith(prefix + "."):
                        return code
            return DEPENDENCY_UNAVAILABLE
        current = current.__cause__ or current.__context__
    return None
