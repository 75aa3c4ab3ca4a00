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
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from typing import TYPE_CHECKING, Any, Generic, TypeVar

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

R = TypeVar("R", bound="DataclassInstance")

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


def slotted_record(layout: RecordLayout[R], values: Sequence[object]) -> R:
    """A frozen, slotted record (Buyer, Address) built straight from decrypted values, each
    value whose layout flag is set wrapped as Pii, tracking included. The same object as the
    dataclass's constructor given `Pii(value)` for those values, at about half the cost: a
    frozen dataclass's `__init__` stores every field through `object.__setattr__`, here each
    goes through its slot's own setter, with no list in between. `values` may be shorter than
    the layout (layouts grow at the end); the fields after it get their defaults."""
    if not isinstance(values, list) or not layout.required <= len(values) <= len(layout.fields):
        raise TypeError("not a layout this code knows")
    taint = _taint_get()
    record: R = _new(layout.cls)
    for (set_field, is_pii, _), value in zip(layout.fields, values, strict=False):
        if not is_pii or value is None:
            set_field(record, value)
            continue
        if not isinstance(value, str):
            raise TypeError("Pii holds text only")
        pii = _new(Pii)
        _set_value(pii, value)
        set_field(record, pii)
        if taint is not None and value:
            taint.add(value)
    for set_field, _, default in layout.fields[len(values) :]:
        set_field(record, default)
    return record


class RecordLayout(Generic[R]):
    """The fields of a slotted dataclass in a fixed order, each with its slot's setter, whether
    it is personal data, and its default: what `slotted_record` builds a record from."""

    __slots__ = ("cls", "fields", "required")

    def __init__(self, cls: type[R], names: Sequence[str], plain: Collection[str]) -> None:
        self.cls = cls
        declared = {f.name: f for f in dataclasses.fields(cls)}
        if sorted(names) != sorted(declared):
            raise ValueError(f"a layout of {cls.__name__} names each of its fields once")
        defaults = [declared[name].default for name in names]
        # Fields without a default are the leading ones: older, shorter rows must hold them.
        self.required = sum(1 for default in defaults if default is dataclasses.MISSING)
        if dataclasses.MISSING in defaults[self.required :]:
            raise ValueError("a layout lists the required fields first")
        self.fields: tuple[tuple[Callable[[Any, Any], None], bool, object], ...] = tuple(
            (cls.__dict__[name].__set__, name not in plain, default)
            for name, default in zip(names, defaults, strict=True)
        )


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


# Caches of what is derived from tracked values (the log filter's compiled forms): emptied with
# every invocation's end, so no buyer data outlives the invocations that hold it.
_derived_caches: list[Callable[[], None]] = []


def clear_with_invocations(clear: Callable[[], None]) -> None:
    """Register `clear` for a cache of values derived from tracked PII: it runs whenever a
    `tracking` block ends (also dropping concurrent invocations' entries, which are rebuilt)."""
    _derived_caches.append(clear)


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
        for clear in _derived_caches:
            clear()


def tracked_values() -> frozenset[str]:
    """The PII texts seen so far in the current invocation (empty outside one)."""
    taint = _taint.get()
    return frozenset(taint) if taint else frozenset()
