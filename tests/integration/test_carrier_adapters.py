"""Each karrio adapter against its stand-in: label, replay, track, void, and faults mapped to
the app's errors."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from local import carrier_servers
from shared.crypto.pii import Pii
from shared.shipping.carriers import (
    AddressProblem,
    CarrierError,
    CarrierTimeout,
    CarrierUnavailable,
    LabelRequest,
    Parcel,
    Recipient,
    ShipFrom,
    ShipmentRef,
)
from shared.shipping.carriers.karrio_adapter import KarrioCarrier
from tests.worlds.handoff import CREDENTIALS

pytestmark = pytest.mark.integration

SERVICES = {"usps": "usps_ground_advantage", "fedex": "fedex_ground", "ups": "ups_ground"}
SHIP_FROM = ShipFrom(
    "Dispatch", "1 Dock St", "Seattle", "98101", "US", state_or_region="WA", phone="2065550100"
)


def request(key: str, service: str, country: str = "US") -> LabelRequest:
    recipient = Recipient(
        name=Pii("Jane Doe"),
        line1=Pii("2 Main St"),
        city=Pii("Austin"),
        postal_code=Pii("78701"),
        country_code=country,
        state_or_region=Pii("TX"),
        phone=Pii("5125550100"),
    )
    return LabelRequest(
        idempotency_key=key,
        service=service,
        ship_from=SHIP_FROM,
        parcel=Parcel(Decimal("0.6"), Decimal(20), Decimal(15), Decimal(10)),
        ship_date=date(2026, 1, 5),
        recipient=recipient,
    )


@pytest.fixture(scope="module")
def servers() -> Iterator[carrier_servers.CarrierServers]:
    with carrier_servers.running() as running:
        yield running


@pytest.mark.parametrize("name", ["usps", "fedex", "ups"])
def test_label_replay_track_void_and_faults(servers: carrier_servers.CarrierServers, name: str) -> None:
    standin = servers.all()[name]
    carrier = KarrioCarrier(name, CREDENTIALS[name], base_url=standin.base_url, replay_safe=True)
    base = standin.purchases
    req = request(f"{name}-key-000000000001", SERVICES[name])

    label = carrier.create_label(req)
    assert label.document.startswith(b"%PDF") and label.tracking_number
    assert carrier.create_label(req).tracking_number == label.tracking_number
    assert standin.purchases == base + 1

    shipment = ShipmentRef(label.shipment_id, label.tracking_number)
    assert (carrier.track(shipment).status, carrier.track(shipment).event_at) == (
        "delivered",
        datetime(2026, 1, 10, 10, 0, tzinfo=UTC),  # the stand-ins' delivery event, as karrio reads it
    )
    assert carrier.cancel_label(shipment) is True
    assert label.shipment_id in standin.voided

    standin.fail_next(1)
    with pytest.raises(CarrierUnavailable):
        carrier.create_label(req)
    standin.reject_next(1)
    with pytest.raises(AddressProblem) as rejected:
        carrier.create_label(req)
    assert rejected.value.code == "address_rejected"
    assert standin.purchases == base + 1


@pytest.mark.parametrize("name", ["usps", "fedex", "ups"])
def test_a_label_whose_answer_was_lost_is_a_timeout_and_the_same_key_finds_it(
    servers: carrier_servers.CarrierServers, name: str
) -> None:
    """The carrier sells the label and the connection closes before its answer: the outcome is
    unknown (CarrierTimeout, so shipping keeps the intent), and asking again with the same key
    returns that label instead of a second one."""
    standin = servers.all()[name]
    carrier = KarrioCarrier(name, CREDENTIALS[name], base_url=standin.base_url, replay_safe=True)
    base = standin.purchases
    req = request(f"{name}-key-000000000004", SERVICES[name])
    standin.lose_answers_next(1)
    with pytest.raises(CarrierTimeout):
        carrier.create_label(req)
    assert standin.purchases == base + 1
    label = carrier.create_label(req)
    assert standin.purchases == base + 1 and label.tracking_number in standin.labels.values()


@pytest.mark.parametrize("name", ["usps", "fedex", "ups"])
def test_only_a_503_or_a_refusal_proves_a_purchase_bought_nothing(
    servers: carrier_servers.CarrierServers, name: str
) -> None:
    """A 500 to a purchase, or a label sold and answered with a page karrio cannot read, may
    have bought a label: the outcome is unknown (the intent is kept). A 503 is the carrier
    declining to take the request on: unavailable, and the intent may be cleared."""
    standin = servers.all()[name]
    carrier = KarrioCarrier(name, CREDENTIALS[name], base_url=standin.base_url, replay_safe=True)
    req = request(f"{name}-key-000000000005", SERVICES[name])
    standin.fail_next(1, status=500)
    with pytest.raises(CarrierTimeout):
        carrier.create_label(req)
    standin.fail_next(1, status=503)
    with pytest.raises(CarrierUnavailable) as down:
        carrier.create_label(req)
    assert not isinstance(down.value, CarrierTimeout)
    base = standin.purchases
    standin.lose_answers_next(1, garbled=True)
    with pytest.raises(CarrierTimeout):
        carrier.create_label(req)
    assert standin.purchases == base + 1
    assert carrier.create_label(req).tracking_number in standin.labels.values()
    assert standin.purchases == base + 1


@pytest.mark.parametrize(
    ("name", "returned_at"),
    [
        ("fedex", datetime(2026, 1, 10, 10, 0, tzinfo=UTC)),
        ("ups", datetime(2026, 1, 12, 8, 0, tzinfo=UTC)),
    ],
)
def test_a_parcel_returned_to_the_shipper_tracks_as_returned_never_delivered(
    servers: carrier_servers.CarrierServers, name: str, returned_at: datetime
) -> None:
    standin = servers.all()[name]
    carrier = KarrioCarrier(name, CREDENTIALS[name], base_url=standin.base_url, replay_safe=True)
    label = carrier.create_label(request(f"{name}-key-000000000003", SERVICES[name]))
    assert standin.mark_returned(label.tracking_number)
    info = carrier.track(ShipmentRef(label.shipment_id, label.tracking_number))
    assert (info.status, info.event_at) == ("returned", returned_at)


def test_usps_outside_the_us_is_country_unsupported(servers: carrier_servers.CarrierServers) -> None:
    carrier = KarrioCarrier("usps", CREDENTIALS["usps"], base_url=servers.usps.base_url)
    req = request("usps-key-000000000002", SERVICES["usps"], country="DE")
    with pytest.raises(AddressProblem) as err:
        carrier.create_label(req)
    assert err.value.code == "country_unsupported"


def test_unreachable_carrier_is_transient() -> None:
    carrier = KarrioCarrier("fedex", CREDENTIALS["fedex"], base_url="http://127.0.0.1:9")
    with pytest.raises(CarrierUnavailable):
        carrier.create_label(request("fedex-key-00000000003", "fedex_ground"))


def test_loopback_settings_override_only_the_host() -> None:
    from shared.shipping.carriers.karrio_adapter import _settings_class

    settings = _settings_class("usps")(client_id="c", client_secret="s", base_url="http://127.0.0.1:1")
    assert settings.server_url == "http://127.0.0.1:1"
    assert _settings_class("usps")(client_id="c", client_secret="s").server_url == "https://apis.usps.com"
    assert (
        _settings_class("ups")(client_id="c", client_secret="s", test_mode=True).server_url
        == "https://wwwcie.ups.com"
    )


@pytest.mark.parametrize("name", ["usps", "fedex", "ups"])
def test_authenticate_asks_the_carrier_for_a_token_and_says_why_it_fails(
    servers: carrier_servers.CarrierServers, name: str
) -> None:
    """`ops preflight`'s authentication call: one OAuth token request, its refusal or silence."""
    standin = servers.all()[name]
    KarrioCarrier(name, CREDENTIALS[name], base_url=standin.base_url).authenticate()
    assert standin.requests[-1].method == "POST" and "token" in standin.requests[-1].path
    standin.refuse_credentials = True
    try:
        with pytest.raises(CarrierError) as refused:
            KarrioCarrier(name, CREDENTIALS[name], base_url=standin.base_url).authenticate()
    finally:
        standin.refuse_credentials = False
    assert refused.value.code == f"carrier_refused_{name}"
    with pytest.raises(CarrierUnavailable):
        KarrioCarrier(name, CREDENTIALS[name], base_url="http://127.0.0.1:9").authenticate()


def test_authenticate_names_credentials_that_lack_a_field(servers: carrier_servers.CarrierServers) -> None:
    partial = {k: v for k, v in CREDENTIALS["fedex"].items() if k != "secret_key"}
    with pytest.raises(CarrierError) as incomplete:
        KarrioCarrier("fedex", partial, base_url=servers.fedex.base_url).authenticate()
    assert incomplete.value.code == "carrier_credentials_incomplete_fedex"


@pytest.mark.parametrize("name", ["usps", "fedex", "ups"])
def test_one_oauth_token_serves_many_labels(servers: carrier_servers.CarrierServers, name: str) -> None:
    standin = servers.all()[name]
    carrier = KarrioCarrier(name, CREDENTIALS[name], base_url=standin.base_url, replay_safe=True)
    before = len(standin.requests)
    for n in range(5):
        carrier.create_label(request(f"{name}-token-{n:012d}", SERVICES[name]))
    paths = [r.path for r in standin.requests[before:]]
    assert sum("token" in p for p in paths) == 1
    assert sum(carrier_servers._is_label_path(p) for p in paths) == 5
