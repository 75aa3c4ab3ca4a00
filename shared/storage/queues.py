"""Sending to Azure Storage queues the way queue triggers read them (base64 text)."""

from __future__ import annotations

from azure.storage.queue import QueueClient, QueueServiceClient, TextBase64EncodePolicy


class StorageQueues:
    """Implements `shared.telemetry.message_failures.QueueSender` over one storage account."""

    def __init__(self, service: QueueServiceClient) -> None:
        self._service = service
        self._clients: dict[str, QueueClient] = {}

    def client(self, queue: str) -> QueueClient:
        if queue not in self._clients:
            # Triggers decode base64 by default (host.json messageEncoding): encode to match.
            self._clients[queue] = self._service.get_queue_client(
                queue, message_encode_policy=TextBase64EncodePolicy()
            )
        return self._clients[queue]

    def send(
        self, queue: str, body: str, visibility_timeout_s: int = 0, time_to_live_s: int | None = None
    ) -> None:
        self.client(queue).send_message(
            body, visibility_timeout=visibility_timeout_s or None, time_to_live=time_to_live_s
        )
