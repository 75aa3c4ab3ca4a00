"""`make run ORDERS=` with orders from every marketplace in Amazon's models ships every order that
is not cancelled (issue 24, item 8).

The marketplaces are read from the models beside the repository: every marketplace id they name
(`AmazonModels.marketplace_ids`) and the marketplace of every Amazon shipping business the
Shipping v2 model enumerates. The test writes an orders file with ready orders from each (each
country's currency and postal code shape, none in the UAE), runs it through `local.run.main`
(what `make run ORDERS=` calls), and reads the run's summary.json.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from local import run, sample_orders
from local.amazon_models import AmazonModels, ModelsMissing, load_models
from shared.shipping.carriers.amazon_business import BUSINESS_IDS

pytestmark = pytest.mark.integration
PER_MARKETPLACE = 2


def _model_marketplaces(models: AmazonModels) -> list[str]:
    header = next(
        p
        for p in models.models["shippingV2.json"]["paths"]["/shipping/v2/shipments/rates"]["post"][
            "parameters"
        ]
        if isinstance(p, dict) and p.get("name") == "x-amzn-shipping-business-id"
    )
    by_business = {business: marketplace for marketplace, business in BUSINESS_IDS.items()}
    return sorted(models.marketplace_ids() | {by_business[b] for b in header["enum"]})


def _orders(marketplaces: list[str]) -> list[dict[str, Any]]:
    orders: list[dict[str, Any]] = []
    for n, marketplace in enumerate(marketplaces):
        orders += sample_orders.generate(
            PER_MARKETPLACE,
            seed=2400 + n,
            start=datetime(2026, 10, 1, tzinfo=UTC),
            span=timedelta(hours=6),
            marketplaces=(marketplace,),
            afn_share=0.0,
            statuses={"UNSHIPPED": 1.0},
        )
    return orders


def test_orders_from_every_marketplace_in_amazons_models_all_ship(tmp_path: Path) -> None:
    try:
        models = load_models()
    except ModelsMissing:
        pytest.skip("Amazon's models are not beside the repository")
    marketplaces = _model_marketplaces(models)
    assert len(marketplaces) >= 14  # the models name 7, the shipping businesses 10, 3 in both
    assert not set(marketplaces) - set(sample_orders.ALL_MARKETPLACES), "a marketplace without a country"
    orders = _orders(marketplaces)
    assert Counter(o["salesChannel"]["marketplaceId"] for o in orders) == dict.fromkeys(
        marketplaces, PER_MARKETPLACE
    )
    addresses = {
        o["recipient"]["deliveryAddress"]["countryCode"]: o["recipient"]["deliveryAddress"] for o in orders
    }
    assert "postalCode" not in addresses["AE"]  # the UAE has no postal codes
    assert addresses["GB"]["postalCode"][-4] == " " and "-" in addresses["JP"]["postalCode"]
    orders_file = tmp_path / "orders.json"
    orders_file.write_text(json.dumps({"orders": orders}))

    code = run.main(["--orders", str(orders_file), "--out", str(tmp_path / "out")])

    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    counts = summary["orders"]
    cancelled = counts["cancelled"]
    assert code == 0
    assert cancelled == summary["scenarios"]["cancelled"] > 0
    assert counts["needs_attention"] == 0 and counts["needsPerson"] == {}
    assert counts["shipped"] == counts["confirmedAtAmazon"] == len(orders) - cancelled
    assert counts["invoiced"] == counts["delivered"] + counts["returned"] == len(orders) - cancelled
