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
    if isinstance(exc, InvalidInput):
        return True
    if retry_delay(exc) is not None:
        return False
    return dequeue_count >= max_dequeue_count


def retry_delay(exc: BaseException) -> float | None:
    """The wait a dependency named (throttling), after which the message is tried again."""
    delay = getattr(exc, "retry_after_s", None) if isinstance(exc, AppError) and exc.transient else None
    return None if delay is None else float(delay)
