"""The envelope's fast paths give exactly the verdicts of the plain ones they replace."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.crypto.envelope import ADDRESS_LAYOUT, EnvelopeMalformed, _dumps, _loads, _unb64
from shared.crypto.pii import Pii, RecordLayout, tracking
from shared.orders.domain import Address, Buyer

B64_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=\n "


ADDRESS = RecordLayout(Address, ADDRESS_LAYOUT, {"country_code", "address_type"})


def test_a_layout_names_every_field_once_required_ones_first() -> None:
    with pytest.raises(ValueError, match="each of its fields"):
        RecordLayout(Buyer, ("name", "email", "company"), ())
    with pytest.raises(ValueError, match="each of its fields"):
        RecordLayout(Buyer, ("name", "email", "company", "vat_id", "name"), ())
    with pytest.raises(ValueError, match="required fields first"):
        RecordLayout(Address, ("line2", *(n for n in ADDRESS_LAYOUT if n != "line2")), ())
    # A row too short to hold a personal field gets its default, which is never wrapped.
    with pytest.raises(ValueError, match="default is None"):
        RecordLayout(Labelled, ("text", "label"), ())
    assert RecordLayout(Labelled, ("text", "label"), {"label"}).build(["x"]) == Labelled(Pii("x"))


@dataclass(frozen=True, slots=True)
class Labelled:
    text: Pii
    label: str = "plain"


def test_build_is_the_dataclass_built_from_wrapped_values() -> None:
    row = ["Zoë", "Hauptstraße 1", "Köln", "50667", "DE", None, None, "", None, None, "+49 1", "Residential"]
    with tracking() as seen:
        built = ADDRESS.build(row)
        assert seen == {"Zoë", "Hauptstraße 1", "Köln", "50667", "+49 1"}  # plain fields untracked
    flags = [name not in {"country_code", "address_type"} for name in ADDRESS_LAYOUT]
    expected = Address(
        **{
            n: Pii(v) if f and v is not None else v
            for n, f, v in zip(ADDRESS_LAYOUT, flags, row, strict=True)
        }
    )
    assert built == expected
    assert type(built.name) is Pii and built.company == Pii("") and built.country_code == "DE"
    with pytest.raises(AttributeError):
        built.city = Pii("Bonn")  # type: ignore[misc]  # still frozen


def test_build_reads_older_shorter_rows_and_refuses_others() -> None:
    short = ADDRESS.build(["Zoë", "Weg 1", "Köln", "50667", "DE"])
    assert short == Address(Pii("Zoë"), Pii("Weg 1"), Pii("Köln"), Pii("50667"), "DE")
    for bad in (
        ["Zoë", "Weg 1", "Köln", "50667"],
        ["x"] * 13,
        ("Zoë", "Weg 1", "Köln", "50667", "DE"),
        [1] * 5,
    ):
        with pytest.raises(TypeError):
            ADDRESS.build(bad)  # type: ignore[arg-type]


@settings(max_examples=1000)  # 10x the default over strings of at most 14 characters
@given(
    st.text(st.sampled_from(B64_CHARS), max_size=14)
    | st.binary(max_size=20).map(lambda b: base64.b64encode(b).decode())
)
def test_base64_accepted_exactly_when_canonical(text: str) -> None:
    try:
        data = binascii.a2b_base64(text, strict_mode=True)
        canonical = base64.b64encode(data).decode() == text
    except binascii.Error:
        canonical = False
    if canonical:
        assert _unb64({"x": text}, "x") == base64.b64decode(text)
    else:
        with pytest.raises(EnvelopeMalformed):
            _unb64({"x": text}, "x")


@given(
    st.text(max_size=40) | st.from_regex(r"\s*\[\s*\"[a-z]*\"\s*(,\s*null\s*)?\]\s*[a-z]?", fullmatch=True)
)
def test_loads_has_the_verdict_of_json_loads(text: str) -> None:
    try:
        expected: object = json.loads(text)
    except ValueError:
        with pytest.raises(ValueError):
            _loads(text)
        return
    assert _loads(text) == expected


def test_reveal_gives_each_field_in_layout_order_pii_as_text() -> None:
    address = Address(Pii("Zoë"), Pii("Weg 1"), Pii("Köln"), Pii("50667"), "DE", phone=Pii("+49 1"))
    expected = ["Zoë", "Weg 1", "Köln", "50667", "DE", None, None, None, None, None, "+49 1", None]
    assert ADDRESS.reveal(address) == expected
    assert ADDRESS.build(ADDRESS.reveal(address)) == address


JSON_VALUES = st.recursive(
    st.none() | st.text(), lambda inner: st.lists(inner, max_size=5), max_leaves=20
).filter(lambda value: isinstance(value, list))


@given(JSON_VALUES)
def test_dumps_writes_what_the_json_module_writes(value: list[object]) -> None:
    assert _dumps(value) == json.dumps(value, separators=(",", ":")).encode("ascii")
