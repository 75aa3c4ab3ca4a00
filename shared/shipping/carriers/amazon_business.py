"""Which Amazon shipping business (`x-amzn-shipping-business-id`) serves each marketplace.

Shipping API v2 takes the business as a header whose allowed values Amazon's model lists
(`shippingV2.json`, parameter `x-amzn-shipping-business-id`, in
https://github.com/amzn/selling-partner-api-models/blob/main/models/shipping-api-model/shippingV2.json;
reference: https://developer-docs.amazon.com/amazon-shipping/docs/shipping-api-v2-reference):
AmazonShipping_US, _IN, _UK, _UAE, _SA, _EG, _IT, _ES, _FR and _JP, one per country. Each is
mapped here to the marketplace of that country (marketplace ids:
https://developer-docs.amazon.com/sp-api/docs/marketplace-ids). A marketplace without one
(Germany, the Netherlands, Canada, ...) has no Buy Shipping business: rules that would send its
orders to Buy Shipping are refused when they are loaded (`shared.shipping.rules`).
"""

from __future__ import annotations

from collections.abc import Mapping

BUSINESS_IDS: Mapping[str, str] = {
    "ATVPDKIKX0DER": "AmazonShipping_US",  # United States
    "A21TJRUUN4KGV": "AmazonShipping_IN",  # India
    "A1F83G8C2ARO7P": "AmazonShipping_UK",  # United Kingdom
    "A2VIGQ35RCS4UG": "AmazonShipping_UAE",  # United Arab Emirates
    "A17E79C6D8DWNP": "AmazonShipping_SA",  # Saudi Arabia
    "ARBP9OOSHTCHU": "AmazonShipping_EG",  # Egypt
    "APJ6JRA9NG5V4": "AmazonShipping_IT",  # Italy
    "A1RKKUPIHCS9HS": "AmazonShipping_ES",  # Spain
    "A13V1IB3VIYZZH": "AmazonShipping_FR",  # France
    "A1VC38T7YXB528": "AmazonShipping_JP",  # Japan
}


def business_id(marketplace_id: str) -> str | None:
    """The marketplace's Amazon shipping business, or None where Buy Shipping has none."""
    return BUSINESS_IDS.get(marketplace_id)
