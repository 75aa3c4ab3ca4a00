"""A value type for personal data that can never print its content.

Every buyer field (name, address lines, phone, e-mail) is held as `Pii` from the moment it is
parsed or decrypted. `repr`, `str`, `format` and logging all show `<redacted>`; the only way to
the text is `reveal()`, which code calls at the last moment (encrypting, handing to a carrier,
rendering an invoice). Each value is also recorded in a context-local taint set, so the log
redaction filter can remove it from any record emitted during the same invocation, whatever
library emitted it.
"""

from __future__ import annotations

import contextvars
import dataclasses
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any

REDACTED = "<redacted>"

# Values seen during the current invocation; None outside one (then nothing is tracked, so a
# long-lived process does not accumulate personal data in memory).
_taint: contextvars.ContextVar[set[str] | None] = contextvars.ContextVar("pii_taint", default=None)
_taint_get = _taint.get


class Pii:
    """A personal-data string. Prints as `<redacted>` everywhere; `reveal()` returns the text."""

    __slots__ = ("_value",)
    _value: str

    def __init__(self, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError("Pii holds text only")
        _set_value(self, value)
        taint = _taint_get()
        if taint is not None and value:
            taint.add(value)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Pii is immutable")

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return REDACTED

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return REDACTED

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Pii) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Pii", self._value))

    def __bool__(self) -> bool:
        return bool(self._value)

    def __len__(self) -> int:
        return len(self._value)

    def __reduce__(self) -> str | tuple[Any, ...]:
        # Pickling would carry the value out of the type's protection.
        raise TypeError("Pii cannot be pickled")

    def __getstate__(self) -> object:
        raise TypeError("Pii cannot be serialised")


# The slot's own setter: what `object.__setattr__` ends in, without the name lookup. Pii's
# `__setattr__` refuses every assignment, so only this module writes the slot.
_set_value = Pii.__dict__["_value"].__set__
_new = object.__new__


def wrap_each(values: Iterable[object], wrap: Iterable[bool]) -> list[Any]:
    """`Pii(value)` for each value whose `wrap` flag is set (None stays None), the others as
    they are. The same as calling Pii one by one, tracking included, at a fraction of the cost
    for a whole record: one context lookup, no constructor call per value."""
    taint = _taint_get()
    out: list[Any] = []
    append = out.append
    for value, is_pii in zip(values, wrap, strict=False):
        if value is None or not is_pii:
            append(value)
            continue
        if not isinstance(value, str):
            raise TypeError("Pii holds text only")
        pii = _new(Pii)
        _set_value(pii, value)
        append(pii)
        if taint is not None and value:
            taint.add(value)
    return out


def reveal_each(values: Iterable[object]) -> list[Any]:
    """Each Pii's text, other values as they are: a record's fields at the moment of encryption."""
    return [value._value if isinstance(value, Pii) else value for value in values]


def pii_or_none(value: object) -> Pii | None:
    """Wrap a JSON value as Pii; empty or missing becomes None."""
    if value is None:
        return None
    text = str(value).strip()
    return Pii(text) if text else None


def json_default(value: object) -> object:
    """`json.dumps(..., default=json_default)`: Pii serialises as `<redacted>`, dataclasses as
    their fields (shallowly, so their Pii fields come back here), sets as lists."""
    if isinstance(value, Pii):
        return REDACTED
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if isinstance(value, (datetime, date, Decimal, Enum)):
        return str(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


@contextmanager
def tracking() -> Iterator[set[str]]:
    """Track every Pii created inside the block (one function invocation)."""
    values: set[str] = set()
    token = _taint.set(values)
    try:
        yield values
    finally:
        _taint.reset(token)
        values.clear()


def tracked_values() -> frozenset[str]:
    """The PII texts seen so far in the current invocation (empty outside one)."""
    taint = _taint.get()
    return frozenset(taint) if taint else frozenset()
