"""No domain object holding PII ever prints it: repr, str, format, logging, json."""

import json
import logging
import pickle
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.crypto.pii import REDACTED, Pii, json_default, tracked_values, tracking
from shared.orders.domain import Address, Buyer, FulfillmentStatus, Order, OrderItem
from shared.orders.record import OrderPii

# Bracketed by characters nothing else prints, so finding the value can only mean a leak.
secret_text = st.text(min_size=1, max_size=40).map(lambda s: f"\u27e6{s}\u27e7")


def _order(value: str) -> Order:
    address = Address(
        name=Pii(value),
        line1=Pii(value),
        city=Pii(value),
        postal_code=Pii(value),
        country_code="DE",
        phone=Pii(value),
    )
    return Order(
        order_id="123-0000000-0000000",
        seller_id="S",
        marketplace_id="M",
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
        last_updated_at=datetime(2026, 1, 1, tzinfo=UTC),
        fulfillment_status=FulfillmentStatus.UNSHIPPED,
        fulfilled_by="MERCHANT",
        items=(OrderItem("1", "B0", "SKU", "Title", 1, None),),
        buyer=Buyer(name=Pii(value), email=Pii(value)),
        ship_to=address,
    )


@given(secret_text)
def test_no_rendering_shows_pii(value: str) -> None:
    order = _order(value)
    objects = [order, order.buyer, order.ship_to, OrderPii.of(order), Pii(value)]
    for obj in objects:
        percent = "%s %r" % (obj, obj)  # noqa: UP031 - the logging style itself
        for rendered in (repr(obj), str(obj), f"{obj}", f"{obj!r}", percent):
            assert value not in rendered
        assert value not in json.dumps({"x": obj}, default=json_default)
    assert format(Pii(value), ">30") == REDACTED


@given(secret_text)
def test_logging_args_show_redacted(value: str) -> None:
    record = logging.LogRecord(
        "t", logging.INFO, __file__, 1, "buyer %s at %r", (Pii(value), _order(value)), None
    )
    assert value not in record.getMessage()
    assert REDACTED in record.getMessage()


def test_pii_cannot_be_pickled_or_mutated() -> None:
    with pytest.raises(TypeError):
        pickle.dumps(Pii("x"))
    with pytest.raises(AttributeError):
        Pii("x")._value = "y"  # type: ignore[misc]


def test_values_are_tracked_only_inside_an_invocation() -> None:
    Pii("outside")
    assert tracked_values() == frozenset()
    with tracking():
        Pii("inside")
        assert tracked_values() == {"inside"}
    assert tracked_values() == frozenset()


def test_json_without_default_fails_without_the_value() -> None:
    with pytest.raises(TypeError) as info:
        json.dumps(Pii("secret-value-xyz"))
    assert "secret-value-xyz" not in str(info.value)
