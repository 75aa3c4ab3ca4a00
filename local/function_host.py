"""Drives the registered functions from their own bindings, as the Functions host would.

`func start` cannot run here (Core Tools download from a CDN), so this reads each function's
trigger and bindings from `app.get_functions()` and:
- fires timer triggers when their NCRONTAB schedule (resolved from `%SETTING%`) comes due on a
  simulated clock;
- feeds queue triggers from Azurite in batches of host.json's `batchSize`, base64-decoding as
  the trigger does; on failure makes the message visible again and, past `maxDequeueCount`,
  moves it to `<queue>-poison` as the host does;
- sends what a function set on its queue output bindings (base64, as the host writes them).
Trigger values and output values pass through the azure-functions library's own converters
(`QueueMessageInConverter`, `TimerRequestConverter`, `QueueMessageOutConverter`), with the
trigger metadata the host sends, as Microsoft's worker does.
Messages sent with a visibility delay (throttling back-off) are held until the simulated clock
reaches their time, because Azurite's visibility timeouts run on the wall clock. For the same
reason a message in a `-poison` queue expires on the simulated clock (`expire_messages`): after
the time-to-live the app sent it with, or the queue's default that the host's own move leaves.
"""

from __future__ import annotations

import base64
import contextlib
import inspect
import json
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.functions import meta
from azure.functions.decorators.function_app import Function
from azure.functions.queue import QueueMessageInConverter, QueueMessageOutConverter
from azure.functions.timer import TimerRequestConverter
from azure.storage.queue import QueueServiceClient, TextBase64EncodePolicy

from shared.app.schedules import NCronTab


class Out:
    """The object a function receives for a queue output binding."""

    def __init__(self) -> None:
        self.value: Any = None

    def set(self, value: Any) -> None:
        self.value = value

    def get(self) -> Any:
        return self.value


@dataclass
class Delayed:
    due: datetime
    queue: str
    body: str


#: Azure Storage queues' default message time-to-live, which the host's poison move leaves.
QUEUE_DEFAULT_TTL = timedelta(days=7)


@dataclass
class Expiring:
    due: datetime
    queue: str
    message_id: str
    pop_receipt: str


@dataclass
class HostStats:
    invocations: dict[str, int] = field(default_factory=dict)
    failures: dict[str, int] = field(default_factory=dict)
    poisoned_by_host: int = 0
    expired_poison: int = 0
    #: CPU seconds spent inside function bodies (the app's share of the worker's CPU; the
    #: queue polling and output sends around them are the Functions host's work in Azure).
    function_cpu_s: float = 0.0
    #: (function, CPU seconds) of each invocation, in order.
    invocation_cpu_s: list[tuple[str, float]] = field(default_factory=list)


class LocalHost:
    def __init__(
        self,
        functions: tuple[Function, ...],
        settings: Mapping[str, str],
        queues: QueueServiceClient,
        host_json: Path,
        clock: Callable[[], datetime],
    ) -> None:
        self._functions = functions
        self._settings = settings
        self._queues = queues
        self._clock = clock
        config = json.loads(host_json.read_text())["extensions"]["queues"]
        self.batch_size = int(config["batchSize"])
        self.max_dequeue = int(config["maxDequeueCount"])
        self.delayed: list[Delayed] = []
        self.expiring: list[Expiring] = []
        self.stats = HostStats()
        #: The function whose body is running, if any (local/call_meter.py attributes calls by it).
        self.invoking: str | None = None
        self._next_fire: dict[str, datetime] = {}
        self._schedules: dict[str, NCronTab] = {}
        for fn in functions:
            trigger = fn.get_trigger()
            if trigger.type == "timerTrigger":
                self._schedules[fn.get_function_name()] = NCronTab.parse(self._resolve(trigger.schedule))

    def _resolve(self, value: str) -> str:
        match = re.fullmatch(r"%(\w+)%", value)
        return self._settings[match.group(1)] if match else value

    def queue_names(self) -> set[str]:
        names = set()
        for fn in self._functions:
            for binding in fn.get_bindings():
                if binding.type in ("queue", "queueTrigger"):
                    names.add(binding.queue_name)
        return names

    def create_queues(self) -> None:
        for name in self.queue_names():
            for queue in (name, f"{name}-poison"):
                with contextlib.suppress(ResourceExistsError):
                    self._queues.create_queue(queue)

    def send(
        self, queue: str, body: str, visibility_timeout_s: int = 0, time_to_live_s: int | None = None
    ) -> None:
        """The app's QueueSender while running locally (see module docstring on delays); a
        time-to-live goes to Azurite as it is, in wall-clock seconds."""
        if visibility_timeout_s:
            self.delayed.append(Delayed(self._clock() + timedelta(seconds=visibility_timeout_s), queue, body))
            return
        self._send(queue, body, time_to_live_s)

    def _send(self, queue: str, body: str, time_to_live_s: int | None = None) -> None:
        sent = self._client(queue).send_message(body, time_to_live=time_to_live_s)
        if queue.endswith("-poison"):
            ttl = timedelta(seconds=time_to_live_s) if time_to_live_s else QUEUE_DEFAULT_TTL
            self.expiring.append(Expiring(self._clock() + ttl, queue, sent.id, sent.pop_receipt))

    def expire_messages(self) -> int:
        """Delete the poison messages whose time-to-live has passed on the simulated clock."""
        now = self._clock()
        due = [e for e in self.expiring if e.due <= now]
        self.expiring = [e for e in self.expiring if e.due > now]
        for e in due:
            with contextlib.suppress(ResourceNotFoundError):
                self._queues.get_queue_client(e.queue).delete_message(e.message_id, e.pop_receipt)
        self.stats.expired_poison += len(due)
        return len(due)

    def _client(self, queue: str) -> Any:
        return self._queues.get_queue_client(queue, message_encode_policy=TextBase64EncodePolicy())

    def release_delayed(self) -> int:
        now = self._clock()
        ready = [d for d in self.delayed if d.due <= now]
        self.delayed = [d for d in self.delayed if d.due > now]
        for d in ready:
            self._client(d.queue).send_message(d.body)
        return len(ready)

    def next_timer_time(self, after: datetime) -> datetime:
        for name, schedule in self._schedules.items():
            if name not in self._next_fire:
                self._next_fire[name] = schedule.next_after(after)
        return min(self._next_fire.values())

    def fire_due_timers(self) -> list[str]:
        now = self._clock()
        fired = []
        for fn in self._functions:
            name = fn.get_function_name()
            if name in self._schedules and self._next_fire.get(name, now + timedelta(days=1)) <= now:
                self._invoke(fn, _timer_request())
                self._next_fire[name] = self._schedules[name].next_after(now)
                fired.append(name)
        return fired

    def drain_queues(self, max_rounds: int = 10_000) -> int:
        """Run queue triggers until every trigger queue is empty. Returns messages handled."""
        handled = 0
        for _ in range(max_rounds):
            progressed = 0
            for fn in self._functions:
                trigger = fn.get_trigger()
                if trigger.type == "queueTrigger":
                    progressed += self._run_batch(fn, trigger.queue_name)
            handled += progressed
            if not progressed:
                return handled
        raise RuntimeError("queues did not drain")

    def _run_batch(self, fn: Function, queue: str) -> int:
        client = self._queues.get_queue_client(queue)
        batch = client.receive_messages(messages_per_page=self.batch_size, max_messages=self.batch_size)
        count = 0
        for raw in batch:
            count += 1
            body = base64.b64decode(raw.content)
            if self._invoke(fn, _queue_message(raw, body)):
                client.delete_message(raw)
            elif raw.dequeue_count >= self.max_dequeue:
                self._send(f"{queue}-poison", body.decode("utf-8", errors="replace"))
                client.delete_message(raw)
                self.stats.poisoned_by_host += 1
            else:
                client.update_message(raw, visibility_timeout=0)
        return count

    def _invoke(self, fn: Function, trigger_value: object) -> bool:
        name = fn.get_function_name()
        user_fn = fn.get_user_function()
        trigger_name = fn.get_trigger().name
        outputs = {b.name: (b.queue_name, Out()) for b in fn.get_bindings() if b.type == "queue"}
        kwargs: dict[str, object] = {trigger_name: trigger_value}
        kwargs.update({arg: out for arg, (_, out) in outputs.items()})
        missing = set(inspect.signature(user_fn).parameters) - set(kwargs)
        if missing:
            raise RuntimeError(f"{name}: no binding for {sorted(missing)}")
        self.stats.invocations[name] = self.stats.invocations.get(name, 0) + 1
        started = time.thread_time()
        self.invoking = name
        try:
            user_fn(**kwargs)
        except Exception:
            self.stats.failures[name] = self.stats.failures.get(name, 0) + 1
            return False
        finally:
            self.invoking = None
            cpu = time.thread_time() - started
            self.stats.function_cpu_s += cpu
            self.stats.invocation_cpu_s.append((name, cpu))
        for queue, out in outputs.values():
            for value in _output_messages(out.get()):
                self._client(queue).send_message(value)
        return True


def _timer_request() -> Any:
    """A timer trigger's value, decoded by the library from the JSON the host sends."""
    payload = json.dumps({"IsPastDue": False, "ScheduleStatus": {}, "Schedule": {"AdjustForDST": True}})
    return TimerRequestConverter.decode(meta.Datum(payload, "json"), trigger_metadata=None)


def _queue_message(raw: Any, body: bytes) -> Any:
    """A queue trigger's value, decoded by the library from the body and trigger metadata."""

    def timestamp(value: datetime | None) -> meta.Datum | None:
        return meta.Datum(value.isoformat(), "string") if value else None

    metadata = {
        "Id": meta.Datum(raw.id, "string"),
        "DequeueCount": meta.Datum(raw.dequeue_count, "int"),
        "PopReceipt": meta.Datum(raw.pop_receipt, "string"),
        "InsertionTime": timestamp(raw.inserted_on),
        "ExpirationTime": timestamp(raw.expires_on),
        "NextVisibleTime": timestamp(raw.next_visible_on),
    }
    present = {key: datum for key, datum in metadata.items() if datum is not None}
    return QueueMessageInConverter.decode(meta.Datum(body, "bytes"), trigger_metadata=present)


def _output_messages(value: Any) -> list[str]:
    """What the host writes for a queue output binding's value, encoded by the library."""
    if value is None:
        return []
    datum = QueueMessageOutConverter.encode(value, expected_type=None)
    if datum.type == "json":
        decoded = json.loads(datum.value)
        items = decoded if isinstance(decoded, list) else [decoded]
        return [item if isinstance(item, str) else item["body"] for item in items]
    return [datum.value if isinstance(datum.value, str) else datum.value.decode("utf-8")]
