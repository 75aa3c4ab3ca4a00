"""The Azure clients skip requests' per-call scan of the environment only when no proxy is set."""

from __future__ import annotations

import pytest
from azure.core.pipeline.transport import RequestsTransport

from shared.app.composition import _cosmos_transport, http_options


def test_without_a_proxy_the_environment_is_read_once_here() -> None:
    assert http_options({"PATH": "/bin", "FUNCTIONS_WORKER_RUNTIME": "python"}) == {"use_env_settings": False}


def test_the_ca_bundle_requests_would_have_read_is_passed_explicitly() -> None:
    assert http_options({"REQUESTS_CA_BUNDLE": "/certs/ca.pem"}) == {
        "use_env_settings": False,
        "connection_verify": "/certs/ca.pem",
    }


@pytest.mark.parametrize("name", ["HTTPS_PROXY", "http_proxy", "ALL_PROXY", "NO_PROXY"])
def test_a_configured_proxy_keeps_the_default(name: str) -> None:
    assert http_options({name: "http://proxy.example:3128", "REQUESTS_CA_BUNDLE": "/c.pem"}) == {}


def test_the_transport_takes_the_options() -> None:
    transport = RequestsTransport(**http_options({}))
    transport.open()
    try:
        assert transport.session is not None and transport.session.trust_env is False
    finally:
        transport.close()


def test_cosmos_keeps_reading_a_ca_bundle_it_must_verify_with() -> None:
    """Cosmos sends its own `connection_verify` with each request, which would hide a bundle
    given to the transport: it keeps the default transport then."""
    assert _cosmos_transport(http_options({"REQUESTS_CA_BUNDLE": "/c.pem"}), verify_tls=True) is None
    assert _cosmos_transport(http_options({"HTTPS_PROXY": "http://p:3128"}), verify_tls=True) is None
    for transport in (
        _cosmos_transport(http_options({}), verify_tls=True),
        _cosmos_transport(http_options({"REQUESTS_CA_BUNDLE": "/c.pem"}), verify_tls=False),
    ):
        assert isinstance(transport, RequestsTransport)
