"""`make run`'s local shipping rules cover the orders it is given, whatever their marketplace, and
its self-check of Amazon's notifications tells a repeat from a loss."""

from typing import Any

from local.pipeline import MARKETPLACE_COUNTRIES, shipping_rules
from local.run import notification_problems


def _order(country: str) -> dict[str, object]:
    return {
        "recipient": {"deliveryAddress": {"countryCode": country}},
        "orderItems": [{"product": {"sellerSku": "SKU-1"}}],
    }


def test_every_ship_to_country_of_the_given_orders_has_a_rule() -> None:
    assert "AT" not in MARKETPLACE_COUNTRIES.values()
    rules = shipping_rules([_order("AT"), _order("SE"), _order("DE")])
    for rule in rules["rules"]:
        assert {"AT", "SE", "DE"} <= set(rule["countries"]), rule["name"]
    assert set(rules["skus"]) == {"SKU-1"}


def _via_sqs(**counts: int) -> dict[str, Any]:
    clean = {
        "sentToSqsByAmazon": 51,
        "movedByDrain": 51,
        "deletedFromSqs": 51,
        "ingestedNotifications": 51,
        "leftInSqs": 0,
        "deadLettered": 0,
    }
    return {**clean, **counts}


def test_notifications_moved_again_after_a_failed_delete_are_not_a_problem() -> None:
    """The flake of issue 24: 62 moved for 51 sent, the repeats dropped by ingestion."""
    assert notification_problems(_via_sqs(movedByDrain=62, deletedFromSqs=51)) == []


def test_a_notification_lost_or_left_behind_is_still_a_problem() -> None:
    assert notification_problems(_via_sqs(movedByDrain=62, ingestedNotifications=50)) == [
        "ingest_notification did not finish each notification sent exactly once"
    ]
    assert notification_problems(_via_sqs(leftInSqs=1)) == ["notifications left in SQS or dead-lettered"]
    assert notification_problems(_via_sqs(deadLettered=1)) == ["notifications left in SQS or dead-lettered"]
    assert notification_problems(_via_sqs(movedByDrain=50)) == [
        "fewer notifications moved than Amazon sent to SQS"
    ]
    assert notification_problems(_via_sqs(sentToSqsByAmazon=0, movedByDrain=0, ingestedNotifications=0)) == [
        "Amazon's stand-in sent no ORDER_CHANGE notification"
    ]
