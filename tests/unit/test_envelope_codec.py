"""The envelope's fast paths give exactly the verdicts of the plain ones they replace."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import fields

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.domain import Address, Buyer
from shared.envelope import ADDRESS_LAYOUT, BUYER_LAYOUT, EnvelopeMalformed, _loads, _unb64
from shared.pii import Pii, reveal_each, tracking, wrap_each

B64_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=\n "


def test_layouts_are_constructor_order() -> None:
    """Buyer and Address are built positionally from the arrays: a field inserted anywhere but
    the end of the dataclass needs the layout and `_decode` changed together."""
    assert tuple(f.name for f in fields(Buyer))[: len(BUYER_LAYOUT)] == BUYER_LAYOUT
    assert tuple(f.name for f in fields(Address))[: len(ADDRESS_LAYOUT)] == ADDRESS_LAYOUT


@settings(max_examples=3000)
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


def test_wrap_each_is_pii_one_by_one_tracking_included() -> None:
    with tracking() as seen:
        wrapped = wrap_each(["Zoë", None, "DE", "", "Köln"], (True, True, False, True, True))
    assert wrapped == [Pii("Zoë"), None, "DE", Pii(""), Pii("Köln")]
    assert all(type(v) is Pii for v in (wrapped[0], wrapped[3], wrapped[4]))
    assert seen == set()  # cleared on leaving the block, as for Pii()
    with tracking() as seen:
        wrap_each(["Zoë", "DE", ""], (True, False, True))
        assert seen == {"Zoë"}  # plain fields are not personal data and are not tracked
    with pytest.raises(TypeError):
        wrap_each([1], (True,))


def test_reveal_each() -> None:
    assert reveal_each((Pii("Zoë"), None, "DE")) == ["Zoë", None, "DE"]
