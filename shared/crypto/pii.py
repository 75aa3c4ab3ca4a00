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
from collections.abc import Callable, Collection, Iterator, Sequence
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
_REFUSED = "not a layout this code knows"


class RecordLayout(Generic[R]):
    """The fields of a frozen, slotted dataclass (Buyer, Address, OrderPii) in a fixed order,
    each marked personal data or not, and two functions compiled for that order:

    `build(values)` is the record built from a list of decrypted values, each personal one
    wrapped as Pii (tracking included): the same object as the dataclass's constructor given
    `Pii(value)` for those values, for 70 % of its cost (an Address: 1.8 µs against 2.5). A
    frozen dataclass's `__init__` stores every field through `object.__setattr__`; here each
    value goes through its slot's own setter, in straight-line code with no loop
    (dataclasses compiles its `__init__` the same way). `values` may be shorter than the
    layout (layouts grow at the end): the fields after it get their defaults.

    `reveal(record)` is the list of its values in layout order, each Pii as its text: the
    record at the moment of encryption."""

    __slots__ = ("build", "reveal")

    def __init__(self, cls: type[R], names: Sequence[str], plain: Collection[str]) -> None:
        declared = {f.name: f for f in dataclasses.fields(cls)}
        if sorted(names) != sorted(declared):
            raise ValueError(f"a layout of {cls.__name__} names each of its fields once")
        defaults = [declared[name].default for name in names]
        # Fields without a default are the leading ones: older, shorter rows must hold them.
        required = sum(1 for default in defaults if default is dataclasses.MISSING)
        if dataclasses.MISSING in defaults[required:]:
            raise ValueError("a layout lists the required fields first")
        is_pii = [name not in plain for name in names]
        if any(
            pii and default is not None
            for pii, default in zip(is_pii[required:], defaults[required:], strict=True)
        ):
            raise ValueError("a personal field's default is None")
        self.build: Callable[[list[Any]], R] = _compile_build(cls, names, is_pii, required, defaults)
        self.reveal: Callable[[R], list[Any]] = _compile_reveal(names, is_pii)


def _compile(name: str, source: list[str], namespace: dict[str, Any]) -> Any:
    # The source is built from field positions and this module's constants only, never from
    # data: the same technique as dataclasses' generated __init__.
    exec(compile("\n".join(source), f"<RecordLayout.{name}>", "exec"), namespace)  # noqa: S102  # nosec B102
    return namespace[name]


def _compile_build(
    cls: type[R], names: Sequence[str], is_pii: Sequence[bool], required: int, defaults: list[object]
) -> Callable[[list[Any]], R]:
    count = len(names)
    variables = ", ".join(f"v{i}" for i in range(count))
    source = [
        "def build(values):",
        "    if type(values) is not list:",
        "        raise TypeError(_REFUSED)",
        f"    if len(values) != {count}:",
        f"        if not {required} <= len(values) < {count}:",
        "            raise TypeError(_REFUSED)",
        "        values = values + _defaults[len(values):]",
        f"    {variables}, = values",
        "    taint = _taint_get()",
        "    record = _new(_cls)",
    ]
    namespace: dict[str, Any] = {
        "_REFUSED": _REFUSED,
        "_defaults": defaults,
        "_taint_get": _taint_get,
        "_new": _new,
        "_cls": cls,
        "_Pii": Pii,
        "_set_value": _set_value,
    }
    for i, (name, pii) in enumerate(zip(names, is_pii, strict=True)):
        namespace[f"_set{i}"] = cls.__dict__[name].__set__
        if pii:
            source += [
                f"    if v{i} is not None:",
                f"        if type(v{i}) is not str:",
                "            raise TypeError('Pii holds text only')",
                f"        if taint is not None and v{i}:",
                f"            taint.add(v{i})",
                "        pii = _new(_Pii)",
                f"        _set_value(pii, v{i})",
                f"        v{i} = pii",
            ]
        source.append(f"    _set{i}(record, v{i})")
    source.append("    return record")
    return _compile("build", source, namespace)  # type: ignore[no-any-return]


def _compile_reveal(names: Sequence[str], is_pii: Sequence[bool]) -> Callable[[Any], list[Any]]:
    # `names` are the dataclass's own field names (RecordLayout checked them): identifiers.
    source = ["def reveal(record):", *(f"    v{i} = record.{name}" for i, name in enumerate(names))]
    values = ", ".join(
        f"v{i}._value if type(v{i}) is _Pii else v{i}" if pii else f"v{i}" for i, pii in enumerate(is_pii)
    )
    source.append(f"    return [{values}]")
    return _compile("reveal", source, {"_Pii": Pii})  # type: ignore[no-any-return]


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
