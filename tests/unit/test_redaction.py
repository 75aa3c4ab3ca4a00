"""The redaction filter: taint removal, pattern masks, and every part of a log record."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from urllib.parse import quote

import pytest

from shared.crypto.pii import REDACTED, Pii, tracking
from shared.telemetry import redaction
from shared.telemetry.redaction import install_redaction, redact_text, sanitized_exception
from tests.log_capture import Capture


@pytest.fixture
def capture() -> Iterator[Capture]:
    handler = Capture()
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    install_redaction()
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)


@pytest.mark.parametrize(
    "text",
    [
        "call +44 20 7946 0958 now",
        "tel: (555) 010-0199.",
        "07700 900123",
        "+447700900123",
        "+1-202-555-0143",
        "+33 6 12 34 56 78",
        "tel:+1-206-555-0143",
        "Phone:+12065550143",
        "call +1 206-555-0143x12",
        "Tel. 030/1234567",
        "mail zq.x'o+1@ex-ample.co.uk ok",
        "ship to 4821 Vlorkant Street",
        "12 rue de la Paix",
        "Hauptstraße 5",
        "London SW1A 1AA",
        "PO Box 123",
        "Flat 3b",
    ],
)
def test_patterns_are_masked(text: str) -> None:
    assert REDACTED in redact_text(text)


@pytest.mark.parametrize(
    "text",
    [
        "at 2026-01-05 10:00:00 took 1234.5678 ms",
        "host 192.168.100.200:443",
        "key 00000000-0000-0000-0000-000000000000",
        "duration 1234567 ms",
        "ref xK9_ab1c2de-unit5-Aweg1Q",
        "retry 3 of 5",
        "POST /v2.1/track 200",
        "GET /orders/2026/11/30 took 1234567 us",
        "due 30/11/2026 and 2026/11/30",
        "processed 1200/1500 orders",
        "progress 250/1000 (25%)",
        "blob 1048576/2097152 bytes uploaded",
        "label image 1920x1080",
        "batch 1500 x 2000 done",
        "at 10:30:45",
    ],
)
def test_ordinary_log_text_is_left_alone(text: str) -> None:
    assert redact_text(text) == text


def test_tracked_values_and_their_variants_are_removed() -> None:
    with tracking():
        name = Pii("Zqx'urbelo Качмаров")
        text = name.reveal()
        forms = [
            text,
            text.upper(),
            json.dumps({"n": text}),
            quote(text),
            "surname only: Качмаров",
            "urbelo in a sentence",
        ]
        for form in forms:
            out = redact_text(form)
            assert "urbelo" not in out.lower(), form
            assert "Качмаров" not in out, form
            assert "\\u041a" not in out, form
    # Outside the invocation nothing is tracked any more.
    assert redact_text("urbelo") == "urbelo"


def test_tokens_do_not_eat_into_longer_words_or_references() -> None:
    with tracking():
        Pii("Lee 4821")
        assert redact_text("sleep 948213 xLeex") == "sleep 948213 xLeex"
        assert redact_text("Lee-x 4821") == f"{REDACTED}-x {REDACTED}"


def test_filter_covers_propagated_records_extras_stack_and_exceptions(capture: Capture) -> None:
    with tracking():
        email = Pii("vorquat.plimsen@zeqmail.example")
        lib = logging.getLogger("some.library.deep")
        lib.warning("user %s", email.reveal(), extra={"custom_dimensions": {"who": email.reveal()}})
        lib.info("payload", extra={"payload": {"buyer": [email.reveal(), email]}}, stack_info=True)
        try:
            try:
                raise KeyError(email.reveal())
            except KeyError as inner:
                err = RuntimeError(f"lookup failed for {email.reveal()}")
                err.add_note(f"note {email.reveal()}")
                raise err from inner
        except RuntimeError:
            lib.exception("failed")
    text = capture.text()
    assert "vorquat" not in text and "plimsen" not in text and "zeqmail" not in text
    failed = capture.records[-1]
    assert failed.exc_info is not None
    assert type(failed.exc_info[1]).__name__ == "RuntimeError"
    assert isinstance(failed.exc_info[1].__cause__, redaction.RedactedException)
    assert "KeyError" in (failed.exc_text or "")
    assert capture.records[0].custom_dimensions == {"who": REDACTED}  # type: ignore[attr-defined]


def test_handlers_added_later_are_covered_at_the_next_install() -> None:
    late = Capture()
    logger = logging.getLogger("late.library")
    logger.addHandler(late)
    logger.propagate = False
    try:
        install_redaction()
        with tracking():
            secret = Pii("Qorvantix")
            logger.error("saw %s", secret.reveal())
        assert "Qorvantix" not in late.text()
    finally:
        logger.removeHandler(late)
        logger.propagate = True


def test_noisy_loggers_are_pinned_to_warning() -> None:
    logging.getLogger("sp_api").setLevel(logging.DEBUG)
    install_redaction()
    for name in ("sp_api", "urllib3", "azure", "karrio", "requests"):
        assert logging.getLogger(name).getEffectiveLevel() >= logging.WARNING, name


def test_install_is_idempotent() -> None:
    install_redaction()
    install_redaction()
    root = logging.getLogger()
    assert root.filters.count(redaction.redaction_filter()) == 1
    for handler in root.handlers:
        assert handler.filters.count(redaction.redaction_filter()) == 1


def test_sanitized_exception_keeps_type_name_and_traceback() -> None:
    with tracking():
        addr = Pii("4821 Vlorkant Street")
        try:
            raise ValueError(f"bad {addr.reveal()}")
        except ValueError as exc:
            clone = sanitized_exception(exc)
            assert type(clone).__name__ == "ValueError"
            assert clone.__traceback__ is exc.__traceback__
            assert "Vlorkant" not in str(clone)
            assert clone.args == (f"bad {REDACTED}",)


def test_last_resort_handler_is_covered(capsys: pytest.CaptureFixture[str]) -> None:
    install_redaction()
    assert logging.lastResort is not None
    with tracking():
        secret = Pii("Quendravil")
        record = logging.LogRecord("nobody", logging.WARNING, __file__, 1, "saw %s", (secret.reveal(),), None)
        logging.lastResort.handle(record)
    err = capsys.readouterr().err
    assert "saw" in err
    assert "Quendravil" not in err


def test_no_buyer_data_stays_cached_after_the_invocation() -> None:
    """The compiled forms of an invocation's values are cached for its log lines, and dropped
    when the invocation ends: a long-lived worker keeps no buyer data between invocations."""
    with tracking():
        Pii("Zoë Müller-Łukasiewicz")
        assert "Zoë" not in redact_text("shipped to Zoë Müller-Łukasiewicz")
        assert redaction._taint.cache_info().currsize >= 1
    assert redaction._taint.cache_info().currsize == 0


@pytest.mark.parametrize(
    ("value", "echoed"),
    [
        ("Zoë Großmann", "ZOË GROSSMANN"),  # upper-cased: "ß" becomes "SS"
        ("İlkay Gündoğan", "İLKAY GÜNDOĞAN"),  # "İ" folds to two characters
        ("Weißdornstraße 117", "weissdornstrasse 117"),
        ("Zoë Åberg", "Zoe\u0308 A\u030aberg"),  # decomposed accents (NFD)
        ("+1 206-555-0143", "12065550143"),  # a phone's bare digits
        ("+1 206-555-0143", "2065550143"),  # ... without its country code
        ("0044 20 7946 0958", "2079460958"),
    ],
)
def test_tracked_values_are_found_in_the_forms_systems_echo_them(value: str, echoed: str) -> None:
    with tracking():
        Pii(value)
        out = redact_text(f"carrier says: recipient {echoed} not found (code 7)")
    assert out.startswith("carrier says: recipient ") and out.endswith(" not found (code 7)")
    for part in echoed.split():
        assert part not in out, out
