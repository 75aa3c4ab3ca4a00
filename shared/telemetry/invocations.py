"""PII-free telemetry: one structured record per function invocation, plus heartbeats.

`AppTelemetry.invocation()` wraps a function body. It opens the invocation's PII taint set
(`shared.crypto.pii.tracking()`), so the redaction filter can remove every buyer value seen meanwhile
from any log line, and on exit emits ONE record on the `fulfilment.telemetry` logger whose
`custom_dimensions` (Application Insights `customDimensions`, Log Analytics `Properties`) are
documented in docs/operations.md. Failures are recorded first, then propagate so the queue
retries and finally poisons the message. An exception whose text holds personal data is first
scrubbed (see `_shareable`), because the Functions host reports the exception text of a failed
invocation outside Python logging.

`configure_telemetry()` attaches the exporter chosen by `TELEMETRY_EXPORTER` to the root logger.
Exporter packages are imported there, not at module import, to keep cold start short.
"""

from __future__ import annotations

import contextvars
import logging
import os
import re
import time
import traceback
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import azure.functions as func

from shared.crypto.pii import tracking
from shared.errors import AppError, SettingsError, connection_failure_code, ends_in_poison
from shared.orders.messages import is_ref
from shared.telemetry.redaction import (
    AMAZON_ORDER_ID,
    install_redaction,
    redact_text,
    redact_value,
    sanitized_exception,
)

if TYPE_CHECKING:
    from shared.settings import Settings

TELEMETRY_LOGGER = "fulfilment.telemetry"
SCHEMA_VERSION = 1
SERVICE_NAME = "mfn-fulfilment"
# Environment settings that stop the exporters' own calls to Microsoft (their usage statistics
# and remote configuration, PII-free but off loopback): the local run and tests set them
# (docs/operations.md says when an operator may want them in Azure).
EXPORTER_CALLS_HOME_OFF = {
    "APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL": "true",
    "APPLICATIONINSIGHTS_CONTROLPLANE_DISABLED": "true",
    "APPLICATIONINSIGHTS_SDKSTATS_DISABLED": "true",
}

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")

Dimension = str | int | float | bool

# Every custom dimension name this module writes (invocation, failure and heartbeat records),
# plus the `count_<name>` family that `InvocationRecorder.count` adds. The Sentinel rules and
# workbook may read only these (tests/unit/test_telemetry_dimensions.py checks infra/ against them).
COUNTER_PREFIX = "count_"
INVOCATION_DIMENSIONS = frozenset(
    {
        "event",
        "schema",
        "operation",
        "invocation_id",
        "order_ref",
        "order_ref_rejected",
        "stage",
        "outcome",
        "duration_ms",
        "dequeue_count",
        "throttle_events",
        "throttle_wait_s",
        "throttled_operations",
    }
)
FAILURE_DIMENSIONS = frozenset({"error_code", "error_type", "error_transient", "poisoned"})
HEARTBEAT_DIMENSIONS = frozenset({"event", "schema", "source", "heartbeat_utc"})
EMITTED_DIMENSIONS = INVOCATION_DIMENSIONS | FAILURE_DIMENSIONS | HEARTBEAT_DIMENSIONS


class InvocationFailed(AppError):
    """Re-raised in place of an exception whose text would carry personal data."""

    code = "invocation_failed"


@dataclass
class InvocationRecorder:
    """What one invocation records; implements `shared.app.runtime.InvocationRecord`."""

    operation: str
    invocation_id: str
    dequeue_count: int
    order_ref: str = ""
    order_ref_rejected: bool = False
    stage_name: str = "start"
    counts: dict[str, int] = field(default_factory=dict)
    throttle_events: int = 0
    throttle_wait_s: float = 0.0
    throttled_operations: list[str] = field(default_factory=list)

    def order(self, ref: str) -> None:
        """The order's pseudonymous reference (an HMAC), never its Amazon order id."""
        # Only a reference is accepted; an Amazon order id (3-7-7 digits) in particular is refused.
        if is_ref(ref) and not AMAZON_ORDER_ID.fullmatch(ref):
            self.order_ref = ref
        else:
            self.order_ref_rejected = True

    def count(self, name: str, value: int) -> None:
        """Add `value` to the counter `name` (a snake_case constant of the calling code)."""
        self.counts[_checked_name(name)] = self.counts.get(name, 0) + int(value)

    def stage(self, name: str) -> None:
        """The step the invocation has reached; a failure reports the last one."""
        self.stage_name = _checked_name(name)

    def throttled(self, operation: str, retry_after_s: float) -> None:
        """An SP-API (or carrier) call answered 429; `operation` is the API operation name."""
        self.throttle_events += 1
        self.throttle_wait_s += max(0.0, float(retry_after_s))
        op = _checked_operation(operation)
        if op not in self.throttled_operations:
            self.throttled_operations.append(op)

    def dimensions(self) -> dict[str, Dimension]:
        dims: dict[str, Dimension] = {
            "event": "invocation",
            "schema": SCHEMA_VERSION,
            "operation": self.operation,
            "invocation_id": self.invocation_id,
            "order_ref": self.order_ref,
            "stage": self.stage_name,
            "dequeue_count": self.dequeue_count,
            "throttle_events": self.throttle_events,
            "throttle_wait_s": round(self.throttle_wait_s, 3),
            "throttled_operations": ",".join(self.throttled_operations),
        }
        if self.order_ref_rejected:
            dims["order_ref_rejected"] = True
        for name, value in sorted(self.counts.items()):
            dims[f"{COUNTER_PREFIX}{name}"] = value
        return dims


def _checked_name(name: str) -> str:
    if not _NAME.match(name):
        raise ValueError("telemetry names are snake_case constants")
    return name


def _checked_operation(name: str) -> str:
    if not re.match(r"^[A-Za-z][A-Za-z0-9_.]{0,63}$", name):
        raise ValueError("throttled operation must be an API operation name")
    return name


_current: contextvars.ContextVar[InvocationRecorder | None] = contextvars.ContextVar(
    "telemetry_invocation", default=None
)


def current_invocation() -> InvocationRecorder | None:
    """The recorder of the invocation running in this context (services record throttling
    and stages here without having it passed down); None outside one."""
    return _current.get()


def record_stage(name: str) -> None:
    """The running invocation's step or outcome (a reason code); nothing outside one."""
    record = _current.get()
    if record is not None:
        record.stage(name)


def record_count(name: str, value: int = 1) -> None:
    """Add to a counter of the running invocation (a reason code, never data); nothing
    outside one."""
    record = _current.get()
    if record is not None:
        record.count(name, value)


def error_code(exc: BaseException) -> str:
    """The documented reason code of an AppError; for an SDK's connection failure the code of
    the dependency it lost (`shared.errors.connection_failure_code`: never a library's class
    name); the class name of any other exception (a bug in our code)."""
    if isinstance(exc, AppError):
        return exc.code
    return connection_failure_code(exc) or type(exc).__name__


def _new_id() -> str:
    return str(uuid.uuid4())


class AppTelemetry:
    """Implements `shared.app.runtime.Telemetry`.

    `timer` measures durations (monotonic seconds), `new_id` names invocations that have no
    queue message, `max_dequeue_count` mirrors host.json `extensions.queues.maxDequeueCount`
    so a failure on the last attempt is flagged `poisoned`."""

    def __init__(
        self,
        *,
        logger: logging.Logger | None = None,
        timer: Callable[[], float] = time.perf_counter,
        new_id: Callable[[], str] = _new_id,
        max_dequeue_count: int = 5,
    ) -> None:
        self._logger = logger or logging.getLogger(TELEMETRY_LOGGER)
        if self._logger.level == logging.NOTSET or self._logger.level > logging.INFO:
            self._logger.setLevel(logging.INFO)
        self._timer = timer
        self._new_id = new_id
        self._max_dequeue_count = max_dequeue_count

    @contextmanager
    def invocation(
        self, operation: str, message: func.QueueMessage | None = None
    ) -> Iterator[InvocationRecorder]:
        install_redaction()  # cheap; covers handlers added since the last invocation
        recorder = InvocationRecorder(
            operation=_checked_name(operation),
            invocation_id=(message.id if message is not None and message.id else None) or self._new_id(),
            dequeue_count=int(getattr(message, "dequeue_count", None) or 0),
        )
        token = _current.set(recorder)
        started = self._timer()
        try:
            with tracking():
                try:
                    yield recorder
                except Exception as exc:
                    self._emit_failure(recorder, started, exc)
                    shareable = _shareable(exc)
                    if shareable is exc:
                        raise
                    raise shareable from None
                self._emit(recorder, started, "success")
        finally:
            _current.reset(token)

    def heartbeat(self, now: datetime, source: str = "timer") -> None:
        """A liveness record: Sentinel alerts when none arrives for longer than the schedule."""
        self._logger.info(
            "heartbeat %s",
            _checked_name(source),
            extra={
                "custom_dimensions": {
                    "event": "heartbeat",
                    "schema": SCHEMA_VERSION,
                    "source": source,
                    "heartbeat_utc": now.isoformat(),
                }
            },
        )

    def _emit_failure(self, recorder: InvocationRecorder, started: float, exc: Exception) -> None:
        code = error_code(exc)
        poisoned = ends_in_poison(exc, recorder.dequeue_count, self._max_dequeue_count)
        extra: dict[str, Dimension] = {
            "error_code": code,
            "error_type": type(exc).__name__,
            "error_transient": bool(getattr(exc, "transient", False))
            or connection_failure_code(exc) is not None,
            "poisoned": poisoned,
        }
        clone = sanitized_exception(exc)
        exc_info = (type(clone), clone, clone.__traceback__)
        self._emit(recorder, started, "failure", extra=extra, exc_info=exc_info)

    def _emit(
        self,
        recorder: InvocationRecorder,
        started: float,
        outcome: str,
        *,
        extra: Mapping[str, Dimension] | None = None,
        exc_info: Any = None,
    ) -> None:
        extra = extra or {}
        dims = recorder.dimensions()
        dims["outcome"] = outcome
        dims["duration_ms"] = round((self._timer() - started) * 1000.0, 3)
        dims.update(extra)
        suffix = f" {extra['error_code']}" if "error_code" in extra else ""
        self._logger.log(
            logging.ERROR if exc_info else logging.INFO,
            "%s %s%s",
            recorder.operation,
            outcome,
            suffix,
            exc_info=exc_info,
            extra={"custom_dimensions": dims},
        )


def _carries_pii(exc: BaseException) -> bool:
    rendered = "".join(traceback.format_exception(exc))
    return redact_text(rendered) != rendered


def _shareable(exc: Exception) -> Exception:
    """`exc` as it may leave the invocation: unchanged when its rendered text is clean;
    otherwise scrubbed in place (same type and attributes, so the queue failure policy still
    sees its class, code and retry delay; chain dropped), or, when its text is computed from
    attributes we cannot scrub, an `InvocationFailed` with the same code."""
    if not _carries_pii(exc):
        return exc
    exc.args = tuple(redact_value(arg) for arg in exc.args)
    if isinstance(exc, AppError):
        exc.detail = redact_text(exc.detail)
    notes = getattr(exc, "__notes__", None)
    if isinstance(notes, list):
        exc.__notes__ = [redact_text(str(note)) for note in notes]
    exc.__cause__ = None
    exc.__suppress_context__ = True
    if not _carries_pii(exc):
        return exc
    failed = InvocationFailed(f"{type(exc).__name__}; text withheld", code=error_code(exc))
    failed.transient = bool(getattr(exc, "transient", False))
    return failed


# ---- exporters ---------------------------------------------------------------------------


@dataclass
class TelemetryExport:
    """The exporter attached to the root logger; `flush()` before a process ends or a test asserts."""

    exporter: str
    handler: logging.Handler | None
    _flush: Callable[[float], None]
    _close: Callable[[], None]

    def flush(self, timeout_s: float = 10.0) -> None:
        self._flush(timeout_s)

    def shutdown(self) -> None:
        if self.handler is not None:
            logging.getLogger().removeHandler(self.handler)
        self._close()


def configure_telemetry(
    settings: Settings,
    *,
    offline_storage: bool = True,
    export_interval_s: float = 5.0,
) -> TelemetryExport:
    """Attach the `settings.telemetry_exporter` exporter to the root logger and install redaction.

    Call once per process (the composition root). `offline_storage` keeps envelopes that failed
    to send on local disk for a later retry (they are PII-free by then); tests turn it off."""
    kind = settings.telemetry_exporter
    connection = settings.appinsights_connection_string
    logging.getLogger(TELEMETRY_LOGGER).setLevel(logging.INFO)
    if kind == "none":
        install_redaction()
        return TelemetryExport("none", None, lambda _t: None, lambda: None)
    if not connection:
        raise SettingsError(
            f"APPLICATIONINSIGHTS_CONNECTION_STRING is required when TELEMETRY_EXPORTER is {kind}"
        )
    if kind == "opentelemetry":
        export = _opentelemetry(connection, offline_storage, export_interval_s)
    elif kind == "opencensus":
        export = _opencensus(connection, offline_storage, export_interval_s)
    else:
        raise SettingsError("TELEMETRY_EXPORTER must be opentelemetry, opencensus or none")
    if export.handler is not None:
        logging.getLogger().addHandler(export.handler)
    install_redaction()
    return export


def _opentelemetry(connection: str, offline_storage: bool, interval_s: float) -> TelemetryExport:
    # The exporter alone, not the azure-monitor-opentelemetry distro: see docs/operations.md.
    from azure.monitor.opentelemetry.exporter import AzureMonitorLogExporter
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
    from opentelemetry.sdk.resources import Resource

    provider = LoggerProvider(resource=Resource.create({"service.name": SERVICE_NAME}))
    exporter = AzureMonitorLogExporter(
        connection_string=connection, disable_offline_storage=not offline_storage
    )
    provider.add_log_record_processor(
        BatchLogRecordProcessor(exporter, schedule_delay_millis=int(interval_s * 1000))
    )
    handler = _OtelLogHandler(provider)

    def flush(timeout_s: float) -> None:
        provider.force_flush(int(timeout_s * 1000))

    return TelemetryExport("opentelemetry", handler, flush, provider.shutdown)


def _opencensus(connection: str, offline_storage: bool, interval_s: float) -> TelemetryExport:
    from opencensus.ext.azure.log_exporter import AzureLogHandler

    handler: logging.Handler = AzureLogHandler(
        connection_string=connection,
        enable_local_storage=offline_storage,
        export_interval=interval_s,
        credential=_entra_credential(os.environ.get(AUTHENTICATION_SETTING, "")),
    )
    handler.setLevel(logging.INFO)
    # OpenCensus names the role after the script; use the same role as the OpenTelemetry path.
    handler.add_telemetry_processor(_set_role)  # type: ignore[attr-defined]

    def flush(timeout_s: float) -> None:
        # AzureLogHandler.flush() returns at once when its queue is empty, even while its worker
        # is still sending the last batch; a sync event queued behind that batch waits for it.
        from opencensus.common.schedule import QueueEvent

        event = QueueEvent("flush")
        handler._queue.put(event, block=True, timeout=timeout_s)  # type: ignore[attr-defined]
        event.wait(timeout_s)

    return TelemetryExport("opencensus", handler, flush, handler.close)


# Application Insights with local authentication off takes Entra ID tokens only; the Bicep sets
# this to "Authorization=AAD" (optionally ";ClientId=<user-assigned identity>").
AUTHENTICATION_SETTING = "APPLICATIONINSIGHTS_AUTHENTICATION_STRING"


def _entra_credential(setting: str) -> Any:
    """The managed identity OpenCensus must be handed to sign its ingestion (the OpenTelemetry
    exporter reads the setting itself; without it, every OpenCensus batch would be refused),
    or None when the setting does not ask for Entra ID."""
    parts = dict(part.split("=", 1) for part in setting.split(";") if "=" in part)
    if parts.get("Authorization") != "AAD":
        return None
    from azure.identity import ManagedIdentityCredential

    return ManagedIdentityCredential(client_id=parts.get("ClientId"))


def _set_role(envelope: Any) -> bool:
    envelope.tags["ai.cloud.role"] = SERVICE_NAME
    return True


class _OtelLogHandler(logging.Handler):
    """Turns a logging record into an OpenTelemetry log record with `custom_dimensions` as flat
    attributes (the exporter makes them customDimensions). Written against the public Logs API
    rather than opentelemetry-instrumentation-logging's handler, which would also export every
    other attribute of the record and nest `custom_dimensions` as one string."""

    def __init__(self, provider: Any) -> None:
        super().__init__(logging.INFO)
        self._provider = provider
        self._loggers: dict[str, Any] = {}

    def emit(self, record: logging.LogRecord) -> None:
        try:
            from opentelemetry._logs import LogRecord

            logger = self._loggers.get(record.name)
            if logger is None:
                logger = self._loggers[record.name] = self._provider.get_logger(record.name)
            logger.emit(
                LogRecord(
                    timestamp=int(record.created * 1e9),
                    observed_timestamp=time.time_ns(),
                    severity_text=record.levelname,
                    severity_number=_severity(record.levelno),
                    body=record.getMessage(),
                    attributes=_attributes(record),
                )
            )
        except Exception:
            self.handleError(record)


def _severity(levelno: int) -> Any:
    from opentelemetry._logs import SeverityNumber

    if levelno >= logging.CRITICAL:
        return SeverityNumber.FATAL
    if levelno >= logging.ERROR:
        return SeverityNumber.ERROR
    if levelno >= logging.WARNING:
        return SeverityNumber.WARN
    if levelno >= logging.INFO:
        return SeverityNumber.INFO
    return SeverityNumber.DEBUG


def _attributes(record: logging.LogRecord) -> dict[str, Dimension]:
    attributes: dict[str, Dimension] = {}
    dims = getattr(record, "custom_dimensions", None)
    if isinstance(dims, Mapping):
        for key, value in dims.items():
            attributes[str(key)] = value if isinstance(value, (str, int, float, bool)) else str(value)
    if record.exc_info and record.exc_info[1] is not None:
        exc = record.exc_info[1]
        attributes["exception.type"] = type(exc).__name__
        attributes["exception.message"] = str(exc)
        attributes["exception.stacktrace"] = record.exc_text or "".join(traceback.format_exception(exc))
    return attributes
