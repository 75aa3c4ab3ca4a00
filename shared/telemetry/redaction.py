"""Log redaction that no code path can forget: a filter on the root logger and on every handler.

Design notes: docs/operations.md ("Design notes: `shared.telemetry.redaction`")."""

from __future__ import annotations

import functools
import json
import logging
import re
import traceback
import unicodedata
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping
from types import TracebackType
from urllib.parse import quote, quote_plus

from shared.crypto.pii import REDACTED, Pii, clear_with_invocations, tracked_values

# Loggers that log payloads, URLs or tokens at DEBUG/INFO (sp_api logs access tokens and whole
# responses): only their warnings and errors are worth keeping.
NOISY_LOGGERS = (
    "sp_api",
    "urllib3",
    "requests",
    "azure",
    "karrio",
    "msal",
    "opencensus",
    "opentelemetry",
)

_STANDARD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
}

#: An Amazon order id (3-7-7 digits). Not buyer data, but the trail must not hold it: telemetry
#: carries the pseudonymous reference instead (`shared.orders.reference`).
AMAZON_ORDER_ID = re.compile(r"(?<!\d)\d{3}-\d{7}-\d{7}(?!\d)")
_EMAIL = re.compile(r"[\w.!#$%&'*+/=?^`{|}~-]+(?:@|%40)[\w-]+(?:\.[\w-]+)+")
# Digit groups joined by spaces, dots, dashes, slashes or brackets, optionally led by "+" (also
# straight after a colon: "tel:+1-...", "Phone:+44...") and followed by an extension ("x12",
# "ext. 12"). `_mask_phone` judges the number without its extension: 7 to 15 digits, not a
# date, time or IPv4 address, a slash only after a leading "0" or "+" (an area code: a count
# like "1200/1500" is not a phone), a bare run of digits only when led by "+" or "0".
_PHONE = re.compile(
    r"(?:(?<![\w.+:/-])|(?<=:)(?=\+))"
    r"(?P<number>(?:\+|00)?\(?\d{1,15}\)?(?:[ ./-]{1,2}\(?\d{1,15}\)?){0,6})"
    r"(?:\s?(?:[xX]|[eE]xt\.?)\s?\d{1,6})?(?![\w:-]|\.\d)"
)
_NOT_PHONE = re.compile(r"^\d{4}-\d{2}-\d{2}$|^\d{1,4}/\d{1,2}/\d{1,4}$|^\d{1,3}(?:\.\d{1,3}){3}$|^\d+\.\d+$")
_STREET_SUFFIX = (
    r"street|st|road|rd|avenue|ave|lane|ln|drive|dr|boulevard|blvd|way|court|ct|place|pl|"
    r"terrace|close|crescent|square|sq|highway|hwy|parkway|pkwy|gardens|grove|row|mews|circle|cir"
)
_STREET_PREFIX = (
    r"rue|avenue|av|via|viale|piazza|calle|avenida|av\.|rua|chemin|boulevard|plaza|paseo|ulica|ul\."
)
_ADDRESS = re.compile(
    rf"\b\d{{1,5}}[a-z]?(?:[-/]\d{{1,5}})?,?\s+(?:[^\W\d_][\w'’.-]*\s+){{0,4}}(?:{_STREET_SUFFIX})\b\.?"
    rf"|\b(?:{_STREET_PREFIX})\s+(?:[\w'’.-]+\s+){{0,4}}?\d{{1,5}}[a-z]?\b"
    rf"|\b\d{{1,5}}[a-z]?,?\s+(?:{_STREET_PREFIX})\s+(?:[\w'’-]+\s*){{1,4}}"
    r"|\b[^\W\d_]+(?:(?:straße|strasse|weg|gasse|allee|platz|damm|laan|gracht|straat|vej|gatan)\s+|str\.\s*)"
    r"\d{1,5}[a-z]?\b"
    r"|\bp\.?\s?o\.?\s+box\s+\d+"
    r"|\b(?:apt|apartment|suite|unit|flat)(?:\.\s*|\s+)#?\d+[a-z]?\b"
    r"|\b[a-z]{1,2}\d[a-z\d]?\s+\d[a-z]{2}\b",
    re.IGNORECASE,
)

_TOKEN_SPLIT = re.compile(r"[\W_]+")
_MIN_TOKEN = 3


_MIN_PHONE_DIGITS = 7
_MAX_COUNTRY_CODE_DIGITS = 3


def _digit_forms(value: str) -> set[str]:
    """A phone number as systems echo it: digits only, and (for an international number)
    without its country code, which is 1 to 3 digits long."""
    digits = "".join(c for c in value if c.isascii() and c.isdigit())
    if len(digits) < _MIN_PHONE_DIGITS:
        return set()
    forms = {digits}
    if value.lstrip().startswith(("+", "00")):
        national = digits.removeprefix("00") if value.lstrip().startswith("00") else digits
        for cut in range(1, _MAX_COUNTRY_CODE_DIGITS + 1):
            if len(national) - cut >= _MIN_PHONE_DIGITS:
                forms.add(national[cut:])
    return forms


def _variants(value: str) -> set[str]:
    """The forms in which a value, or a distinctive part of it, reaches a log line: itself in
    either Unicode normal form (composed or decomposed accents), its distinctive tokens, a
    phone's bare digits, and the JSON and URL escapes of all of them."""
    forms = {value, unicodedata.normalize("NFC", value), unicodedata.normalize("NFD", value)}
    forms |= _digit_forms(value)
    for token in _TOKEN_SPLIT.split(value):
        # Short Latin tokens ("St", "2") are not distinctive; any non-ASCII token is (a CJK
        # surname is often one character).
        if len(token) >= _MIN_TOKEN or (token and not token.isascii()):
            forms.add(token)
    for form in list(forms):
        forms.add(json.dumps(form)[1:-1])
        forms.add(quote(form, safe=""))
        forms.add(quote_plus(form, safe=""))
    return {f for f in forms if f}


def _ascii_alnum(char: str) -> bool:
    return char.isascii() and char.isalnum()


class _Taint:
    """Finds the forms of an invocation's PII values in text, caselessly (Unicode case folding:
    "WEISSDORNSTRASSE" is "Weißdornstraße" upper-cased).

    Plain substring search, not one big regular expression: the set changes with every
    invocation, and compiling a case-insensitive alternation of a hundred Unicode forms costs
    milliseconds each time, while `str.find` over short log lines costs microseconds."""

    def __init__(self, forms: set[str]) -> None:
        # Longest first, so a whole value is removed before any of its tokens.
        self._forms = sorted({f.casefold() for f in forms}, key=len, reverse=True)

    def sub(self, text: str) -> str:
        folded, origin = _folded(text)
        spans = sorted(self._spans(folded))
        if not spans:
            return text
        out: list[str] = []
        position = 0
        for folded_begin, folded_end in spans:
            begin, end = origin(folded_begin), origin(folded_end - 1) + 1
            if end <= position:
                continue
            if begin >= position:
                out.append(text[position:begin])
                out.append(REDACTED)
            position = end
        out.append(text[position:])
        return "".join(out)

    def _spans(self, folded: str) -> Iterator[tuple[int, int]]:
        for form in self._forms:
            # A form that starts or ends with an ASCII letter or digit must not be glued to
            # another one there: "1234" leaves "912345" alone, and a name token cannot eat into
            # a base64url order reference.
            head, tail = _ascii_alnum(form[0]), _ascii_alnum(form[-1])
            begin = folded.find(form)
            while begin != -1:
                end = begin + len(form)
                glued = (head and begin > 0 and _ascii_alnum(folded[begin - 1])) or (
                    tail and end < len(folded) and _ascii_alnum(folded[end])
                )
                if not glued:
                    yield begin, end
                begin = folded.find(form, begin + 1)


def _folded(text: str) -> tuple[str, Callable[[int], int]]:
    """`text` case-folded, and the map from a folded position back to the original one. A few
    characters fold to more than one ("ß" to "ss"); only then is the map built."""
    folded = text.casefold()
    if len(folded) == len(text):  # no character folded to two or more: positions agree
        return folded, lambda position: position
    origin = [i for i, char in enumerate(text) for _ in char.casefold()]
    return folded, origin.__getitem__


@functools.lru_cache(maxsize=16)
def _taint(values: frozenset[str]) -> _Taint | None:
    forms: set[str] = set()
    for value in values:
        forms |= _variants(value)
    return _Taint(forms) if forms else None


# The cache holds buyer data (the values and their forms): it goes when an invocation ends.
clear_with_invocations(_taint.cache_clear)


def _mask_phone(match: re.Match[str]) -> str:
    number = match.group("number")
    digits = sum(c.isdigit() for c in number)
    if digits < 7 or digits > 15 or _NOT_PHONE.match(number.strip()):
        return match.group(0)
    led = number.lstrip("(").startswith(("0", "+"))
    # A bare run of digits, or digits split by a slash, is a phone only when led by "+" or "0"
    # (an id, a count or a ratio is not).
    if (number.isdigit() or "/" in number) and not led:
        return match.group(0)
    return REDACTED


def redact_text(text: str) -> str:
    """`text` without this invocation's PII values and without e-mail, phone, address and
    Amazon order id patterns."""
    taint = _taint(tracked_values())
    if taint is not None:
        text = taint.sub(text)
    text = AMAZON_ORDER_ID.sub(REDACTED, text)
    text = _EMAIL.sub(REDACTED, text)
    text = _ADDRESS.sub(REDACTED, text)
    return _PHONE.sub(_mask_phone, text)


def redact_value(value: object) -> object:
    """A JSON-like value with every string redacted; any other object becomes redacted text."""
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Pii):
        return REDACTED
    if isinstance(value, Mapping):
        return {redact_text(str(k)): redact_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [redact_value(v) for v in value]
    return redact_text(str(value))


class RedactedException(Exception):
    """Stand-in for a logged exception: same type name, traceback and chain, redacted text."""


_STAND_INS: dict[type[BaseException], type[RedactedException]] = {}


def _stand_in_type(original: type[BaseException]) -> type[RedactedException]:
    # Same name, so AppExceptions.type and rendered tracebacks still tell operators what failed.
    stand_in = _STAND_INS.get(original)
    if stand_in is None:
        stand_in = type(
            original.__name__,
            (RedactedException,),
            {"__module__": original.__module__, "__qualname__": original.__qualname__},
        )
        _STAND_INS[original] = stand_in
    return stand_in


def _safe_str(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception:  # a broken __str__ must not break logging
        return type(exc).__name__


def sanitized_exception(exc: BaseException, _seen: set[int] | None = None) -> RedactedException:
    """A stand-in for `exc` and its cause/context chain whose messages and notes are redacted.

    ExceptionGroup members are not carried over (their text would escape redaction)."""
    seen = _seen if _seen is not None else set()
    seen.add(id(exc))
    clone = _stand_in_type(type(exc))(redact_text(_safe_str(exc)))
    clone.__traceback__ = exc.__traceback__
    for note in getattr(exc, "__notes__", ()):
        clone.add_note(redact_text(str(note)))
    if exc.__cause__ is not None and id(exc.__cause__) not in seen:
        clone.__cause__ = sanitized_exception(exc.__cause__, seen)
    if exc.__context__ is not None and id(exc.__context__) not in seen:
        clone.__context__ = sanitized_exception(exc.__context__, seen)
    clone.__suppress_context__ = exc.__suppress_context__
    return clone


def format_sanitized(exc: BaseException) -> str:
    """The traceback text of `exc` as it may appear in a log: redacted messages, redacted again."""
    return redact_text("".join(traceback.format_exception(sanitized_exception(exc))).rstrip("\n"))


ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]


class RedactionFilter(logging.Filter):
    """Rewrites each record in place (once, whichever handler sees it first); never drops one."""

    def __init__(self) -> None:
        super().__init__("")
        self._done: weakref.WeakSet[logging.LogRecord] = weakref.WeakSet()

    def filter(self, record: logging.LogRecord) -> bool:
        if record in self._done:
            return True
        _redact_record(record)
        self._done.add(record)
        return True


def _message(record: logging.LogRecord) -> str:
    try:
        return record.getMessage()
    except Exception:  # malformed %-args: keep the template, drop the args
        return str(record.msg)


def _redact_record(record: logging.LogRecord) -> None:
    record.msg = redact_text(_message(record))
    record.args = None
    for key in list(vars(record)):
        if key not in _STANDARD_ATTRS:
            setattr(record, key, redact_value(getattr(record, key)))
    if record.stack_info:
        record.stack_info = redact_text(record.stack_info)
    exc_info = record.exc_info
    if exc_info and exc_info[1] is not None:
        clone = sanitized_exception(exc_info[1])
        record.exc_info = (type(clone), clone, clone.__traceback__)
        record.exc_text = format_sanitized(exc_info[1])
    elif record.exc_text:
        record.exc_text = redact_text(record.exc_text)


_FILTER = RedactionFilter()


def redaction_filter() -> RedactionFilter:
    """The process-wide filter (one instance, so its once-per-record memo is shared)."""
    return _FILTER


def _all_handlers() -> Iterable[logging.Handler]:
    yield from logging.getLogger().handlers
    for logger in list(logging.Logger.manager.loggerDict.values()):
        if isinstance(logger, logging.Logger):
            yield from logger.handlers


def install_redaction() -> None:
    """Put the filter on the root logger and on every handler now attached; pin noisy loggers.

    Idempotent and cheap: call it after adding a handler and at the start of each invocation."""
    root = logging.getLogger()
    if _FILTER not in root.filters:
        root.addFilter(_FILTER)
    # lastResort prints records to stderr when a logger finds no handler at all.
    last_resort = [logging.lastResort] if logging.lastResort is not None else []
    for handler in [*_all_handlers(), *last_resort]:
        if _FILTER not in handler.filters:
            handler.addFilter(_FILTER)
    for name in NOISY_LOGGERS:
        noisy = logging.getLogger(name)
        if noisy.level == logging.NOTSET or noisy.level < logging.WARNING:
            noisy.setLevel(logging.WARNING)


def quiet_loggers(prefixes: Iterable[str]) -> None:
    """Pin the loggers of libraries that log whole requests and answers at DEBUG (bodies hold
    buyer data) to WARNING: each named logger and every sub-logger already created, since some
    set their own level at import."""
    names = tuple(prefixes)
    for name in list(logging.Logger.manager.loggerDict):
        if name.split(".")[0] in names:
            logging.getLogger(name).setLevel(logging.WARNING)
    for name in names:
        logging.getLogger(name).setLevel(logging.WARNING)
