"""A client replaced or forgotten while another thread is using it is closed only once that
thread is done with it (issue 20 review): the SP-API gateway's clients are closed on drop, and
a request in flight on a closed client would fail."""

from __future__ import annotations

import threading
from types import SimpleNamespace
from typing import Any

import pytest

from shared.crypto.secrets import CREDENTIALS_MAX_AGE_S, RenewedClients
from shared.ingestion import spapi_gateway
from shared.ingestion.spapi_gateway import SpApiGateway
from tests.builders import amazon_seller_settings

WAIT_S = 10


class Client:
    def __init__(self, name: str) -> None:
        self.name = name
        self.in_use = 0
        self.closed = False
        self.closed_in_use = False

    def close(self) -> None:
        self.closed_in_use = self.closed_in_use or self.in_use > 0
        self.closed = True


def test_a_client_replaced_while_a_thread_borrows_it_is_closed_when_that_thread_is_done() -> None:
    clock = [0.0]
    clients: RenewedClients[str, Client] = RenewedClients(
        lambda key: Client(f"{key}@{clock[0]:g}"), monotonic=lambda: clock[0], on_drop=Client.close
    )
    borrowed, release = threading.Event(), threading.Event()
    seen: list[Client] = []

    def slow_call() -> None:
        with clients.borrow("S1") as client:
            seen.append(client)
            borrowed.set()
            release.wait(WAIT_S)

    first = threading.Thread(target=slow_call)
    first.start()
    assert borrowed.wait(WAIT_S)
    clock[0] = CREDENTIALS_MAX_AGE_S
    second: list[Client] = []
    other = threading.Thread(target=lambda: second.append(clients("S1")))
    other.start()
    other.join(WAIT_S)
    clients.forget()  # and forgotten too: still in use, still open
    assert second[0] is not seen[0] and not seen[0].closed
    release.set()
    first.join(WAIT_S)
    assert seen[0].closed and second[0].closed


def test_a_client_nobody_borrows_is_closed_at_once_when_replaced_or_forgotten() -> None:
    clock = [0.0]
    clients: RenewedClients[str, Client] = RenewedClients(
        Client, monotonic=lambda: clock[0], on_drop=Client.close
    )
    with clients.borrow("S1") as first:
        pass
    assert not first.closed
    clock[0] = CREDENTIALS_MAX_AGE_S
    with clients.borrow("S1") as second:
        assert first.closed and not second.closed
    clients.forget()
    assert second.closed


class SlowOrders:
    """python-amazon-sp-api's Orders client whose getOrder waits until the test lets it answer."""

    made: list[SlowOrders] = []  # noqa: RUF012 - the clients made, in order
    calling = threading.Event()
    answer = threading.Event()

    def __init__(self, marketplace: Any, **kwargs: Any) -> None:
        self.in_use = 0
        self.closed_in_use = False
        SlowOrders.made.append(self)

    def get_order(self, order_id: str, **kwargs: Any) -> Any:
        self.in_use += 1
        try:
            if len(SlowOrders.made) == 1:
                SlowOrders.calling.set()
                SlowOrders.answer.wait(WAIT_S)
            return SimpleNamespace(payload={"order": {"orderId": order_id}}, headers={})
        finally:
            self.in_use -= 1

    def close(self) -> None:
        self.closed_in_use = self.closed_in_use or self.in_use > 0


def test_the_gateway_never_closes_a_client_a_call_in_flight_is_using(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(spapi_gateway, "Orders", SlowOrders)
    clock = [0.0]
    monkeypatch.setattr(spapi_gateway, "time", SimpleNamespace(monotonic=lambda: clock[0]))
    SlowOrders.made, SlowOrders.calling, SlowOrders.answer = [], threading.Event(), threading.Event()
    settings = amazon_seller_settings()
    # pragma: allowlist nextline secret
    creds = {"lwa_app_id": "app", "lwa_client_secret": "s", "refresh_token": "Atzr|t"}
    gateway = SpApiGateway(settings, lambda seller_id: creds)
    slow = threading.Thread(target=lambda: gateway.get_order("S1", "111-1"))
    slow.start()
    assert SlowOrders.calling.wait(WAIT_S)
    clock[0] = CREDENTIALS_MAX_AGE_S  # the next call replaces the client the slow call holds
    assert gateway.get_order("S1", "111-2").order == {"orderId": "111-2"}
    gateway.forget("S1")
    SlowOrders.answer.set()
    slow.join(WAIT_S)
    assert len(SlowOrders.made) == 2
    assert not any(client.closed_in_use for client in SlowOrders.made)
